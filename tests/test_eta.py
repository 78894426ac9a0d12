"""The one ETA (token_rotation.eta_seconds, run_eta, the progress view's eta): the pure function on numbers,
the recent window read from a progress log, and a real run whose ETA is checked against its real finish."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import make_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def eta_seconds(
    conn: psycopg.Connection,
    total: int,
    done: int,
    batches: int,
    elapsed: float,
    startup: float = 0.0,
    recent_rows: int | None = None,
    recent_seconds: float | None = None,
) -> float | None:
    row = conn.execute(
        "SELECT token_rotation.eta_seconds(%s, %s, %s, %s, %s, %s, %s)",
        (total, done, batches, elapsed, startup, recent_rows, recent_seconds),
    ).fetchone()
    assert row is not None
    return None if row[0] is None else float(row[0])


def test_steady_numbers_give_the_straight_line(conn: psycopg.Connection) -> None:
    """250k of 1M rows in 10 s, no start-up, no recent window: 30 s to go."""
    assert eta_seconds(conn, 1_000_000, 250_000, 84, 10.0) == pytest.approx(30.0)


def test_start_up_time_is_left_out_of_the_rate(conn: psycopg.Connection) -> None:
    """A run whose first batch began 2 s into it rotated 250k rows in 8 s of batches: 24 s to go, not 30."""
    assert eta_seconds(conn, 1_000_000, 250_000, 84, 10.0, startup=2.0) == pytest.approx(24.0)
    # a start-up as long as the run so far (nonsense) is ignored rather than divided by zero
    assert eta_seconds(conn, 1_000_000, 250_000, 84, 10.0, startup=10.0) == pytest.approx(30.0)


def test_recent_rate_weighs_a_quarter(conn: psycopg.Connection) -> None:
    """Long-run 25k rows/s, the recent window 50k rows/s: the rate is 31.25k rows/s, 24 s for 750k rows."""
    assert eta_seconds(conn, 1_000_000, 250_000, 84, 10.0, 0.0, 100_000, 2.0) == pytest.approx(24.0)


def test_nothing_is_shown_before_three_batches_and_zero_when_done(conn: psycopg.Connection) -> None:
    """Unknown with fewer than 3 batches or no rows yet; 0 once every row is done; NULL inputs give NULL."""
    assert eta_seconds(conn, 300_000, 6000, 2, 0.2) is None
    assert eta_seconds(conn, 300_000, 9000, 3, 0.3) == pytest.approx(9.7)
    assert eta_seconds(conn, 300_000, 0, 3, 0.3) is None
    assert eta_seconds(conn, 30_000, 30_000, 10, 9.0) == 0.0
    assert eta_seconds(conn, 30_000, 31_000, 10, 9.0) == 0.0  # an estimated total overrun
    row = conn.execute("SELECT token_rotation.eta_seconds(NULL, 1, 3, 1.0, 0, NULL, NULL)").fetchone()
    assert row == (None,)


class FakeRun:
    """A run with one slice whose progress log the test writes by hand: batches at chosen wall-clock times."""

    def __init__(self, conn: psycopg.Connection, total: int, started: datetime = T0) -> None:
        make_table(conn, rows=1)
        self.conn, self.total = conn, total
        row = conn.execute(
            "INSERT INTO token_rotation.runs (target, token_column, key_columns, key_types, batch_size,"
            " rows_expected, started_at) VALUES ('tickets', 'token', '{id}', '{bigint}', 3000, %s, %s)"
            " RETURNING run_id",
            (total, started),
        ).fetchone()
        assert row is not None
        self.run_id = int(row[0])
        row = conn.execute(
            "INSERT INTO token_rotation.slices (run_id, slice_no) VALUES (%s, 1) RETURNING slice_id",
            (self.run_id,),
        ).fetchone()
        assert row is not None
        self.slice_id = int(row[0])
        self.rows = self.batches = 0

    def log(self, started: datetime, finished: datetime, rows: int) -> None:
        self.batches += 1
        self.rows += rows
        self.conn.execute(
            "INSERT INTO token_rotation.batches (slice_id, batch_no, run_id, rows, batch_size, started_at,"
            " finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (self.slice_id, self.batches, self.run_id, rows, rows, started, finished),
        )

    def eta(self, elapsed: float) -> float | None:
        """run_eta() for the log so far, at `elapsed` working seconds."""
        row = self.conn.execute(
            "SELECT extract(epoch FROM token_rotation.run_eta(%s, %s, %s, %s, make_interval(secs => %s)))",
            (self.run_id, self.total, self.rows, self.batches, elapsed),
        ).fetchone()
        assert row is not None
        return None if row[0] is None else float(row[0])


def steady(run: FakeRun, start: float, batches: int, rows: int, seconds: float) -> float:
    """Logs `batches` batches of `rows` rows taking `seconds` each from wall-clock second `start`;
    returns the wall-clock second the last one finished."""
    t = start
    for _ in range(batches):
        run.log(T0 + timedelta(seconds=t), T0 + timedelta(seconds=t + seconds), rows)
        t += seconds
    return t


def test_a_steady_log_gives_the_remaining_rows_over_the_rate(conn: psycopg.Connection) -> None:
    """120 batches of 3000 rows every 30 ms (100k rows/s) after a 1 s start-up: 6.4 s for the 640k left."""
    run = FakeRun(conn, 1_000_000)
    steady(run, 1.0, 120, 3000, 0.03)
    assert run.eta(1.0 + 3.6) == pytest.approx(6.4, abs=0.1)


def test_a_long_pause_between_batches_does_not_count_as_working_time(conn: psycopg.Connection) -> None:
    """An hour between two batches of the log (a pause, or a resume the next day) leaves the ETA as it is
    without the gap: the working clock (the view's elapsed) excludes it, and so does the recent window."""
    plain = FakeRun(conn, 1_000_000)
    steady(plain, 0.0, 120, 3000, 0.03)
    expected = plain.eta(3.6)
    conn.execute("DELETE FROM token_rotation.runs")
    paused = FakeRun(conn, 1_000_000)
    steady(paused, 3600.0 + steady(paused, 0.0, 60, 3000, 0.03), 60, 3000, 0.03)
    assert expected is not None and expected == pytest.approx(6.4, abs=0.1)
    assert paused.eta(3.6) == pytest.approx(expected, rel=0.02)


def test_the_recent_window_follows_a_lasting_change_of_pace(conn: psycopg.Connection) -> None:
    """After 20 s at 100k rows/s the run slows to 50k rows/s for 6 s: the ETA rises above the long-run
    straight line, towards the new pace, by the recent quarter's weight."""
    run = FakeRun(conn, 10_000_000)
    end = steady(run, 0.0, 200, 10_000, 0.1)
    steady(run, end, 60, 5_000, 0.1)
    done, elapsed = 2_300_000, 26.0
    long_run = (10_000_000 - done) / (done / elapsed)
    recent = 350_000 / 6.5  # the last quarter of the working time: 5 fast batches and the 60 slow ones
    eta = run.eta(elapsed)
    assert eta is not None and long_run * 1.05 < eta < (10_000_000 - done) / recent
    assert eta == pytest.approx((10_000_000 - done) / (0.75 * done / elapsed + 0.25 * recent), abs=0.1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    total=st.integers(300_000, 3_000_000),
    batch=st.sampled_from([1000, 2000, 3000]),
    rate=st.floats(50_000, 400_000),
    jitter=st.floats(0.0, 0.15),
    startup_share=st.floats(0.0, 0.03),
    seed=st.integers(0, 10_000),
)
def test_predicted_finish_is_within_ten_percent_from_ten_percent_progress_on(
    conn: psycopg.Connection,
    total: int,
    batch: int,
    rate: float,
    jitter: float,
    startup_share: float,
    seed: int,
) -> None:
    """For any steady log (batch times varying up to +-15%, a start-up of up to 3% of the run), run_eta read
    about 20 times from 10% progress on predicts the finish within +-10%."""
    assume(total // batch >= 100)
    conn.execute("DELETE FROM token_rotation.runs")
    rng = random.Random(seed)
    startup = startup_share * total / rate
    durations = [
        min(batch, total - k) / rate * (1 + rng.uniform(-jitter, jitter)) for k in range(0, total, batch)
    ]
    finish = startup + sum(durations)
    run = FakeRun(conn, total)
    t, every = startup, max(len(durations) // 20, 1)
    for k, seconds in enumerate(durations):
        run.log(T0 + timedelta(seconds=t), T0 + timedelta(seconds=t + seconds), min(batch, total - k * batch))
        t += seconds
        if run.rows >= total * 0.1 and run.rows < total and k % every == 0:
            eta = run.eta(t)
            assert eta is not None
            assert abs(t + eta - finish) <= 0.10 * finish, (
                f"at {run.rows} rows: {t + eta:.2f} s vs {finish:.2f} s"
            )


@pytest.mark.slow
def test_a_real_run_finishes_within_ten_percent_of_its_eta(conn: psycopg.Connection, dsn: str) -> None:
    """A real CALL of about 7 s (batches of 500 with a 25 ms sleep, so that two shared cores do not set the
    pace alone), its progress view polled every 50 ms: from 10% of the rows on, every reading's elapsed + eta
    is within 10% of the working time the run really took (plus 0.3 s for the poll and the rounding)."""
    make_table(conn, rows=120_000)
    error: list[BaseException] = []

    def call() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(
                    "CALL token_rotation.rotate('tickets', p_batch_size => 500, p_sleep => '25ms',"
                    " p_quiet => true)"
                )
        except BaseException as exc:  # noqa: BLE001 - asserted below
            error.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    readings: list[tuple[float, float, int, int]] = []
    while thread.is_alive():
        row = conn.execute(
            "SELECT extract(epoch FROM elapsed)::float8, extract(epoch FROM eta)::float8, rows_done,"
            " rows_total FROM token_rotation.progress WHERE state = 'active'"
        ).fetchone()
        if row is not None and row[1] is not None:
            readings.append((row[0], row[1], row[2], row[3]))
        time.sleep(0.05)
    thread.join()
    assert not error, error
    row = conn.execute(
        "SELECT extract(epoch FROM elapsed)::float8, state FROM token_rotation.runs"
    ).fetchone()
    assert row is not None and row[1] == "finished"
    finish = row[0]
    checked = [(e, eta) for e, eta, done, total in readings if done >= 0.1 * total]
    assert len(checked) >= 20, f"only {len(checked)} readings in a {finish:.1f} s run"
    worst = max(checked, key=lambda r: abs(r[0] + r[1] - finish))
    assert abs(worst[0] + worst[1] - finish) <= 0.10 * finish + 0.3, (
        f"at {worst[0]:.2f} s the ETA said {worst[1]:.2f} s more; the run took {finish:.2f} s"
    )
