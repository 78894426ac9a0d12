"""The one ETA (token_rotation_internal.eta_seconds, run_eta, the progress view's eta): the pure function on
numbers, the recent window read from a progress log, and a real run's log feeding the view. How close the ETA
comes to a real finish on this machine is measured by `make bench-eta` (benchmarks.eta), not by a timed
test."""

from __future__ import annotations

import random
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
        "SELECT token_rotation_internal.eta_seconds(%s, %s, %s, %s, %s, %s, %s)",
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
    row = conn.execute(
        "SELECT token_rotation_internal.eta_seconds(NULL, 1, 3, 1.0, 0, NULL, NULL)"
    ).fetchone()
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
            "SELECT extract(epoch FROM token_rotation_internal.run_eta(%s, %s, %s, %s,"
            " make_interval(secs => %s)))",
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


def progress_eta(conn: psycopg.Connection) -> tuple[float | None, str, int, int]:
    """The progress view's (eta in seconds, state, rows_done, batches_done) of the only run."""
    row = conn.execute(
        "SELECT extract(epoch FROM eta)::float8, state, rows_done, batches_done FROM token_rotation.progress"
    ).fetchone()
    assert row is not None
    return (None if row[0] is None else float(row[0])), row[1], int(row[2]), int(row[3])


def test_a_real_run_shows_the_eta_of_its_own_log_once_it_has_three_batches(conn: psycopg.Connection) -> None:
    """A real run stopped by p_max_batches (no session works on it, so its clock stands still): no ETA after
    2 batches; after 6, the ETA that run_eta() gives for the batches the procedure logged, the same on every
    read, and no shorter than the remaining rows at its fastest batch's rate; none once finished.
    (How close the ETA comes to a real finish on this machine is `make bench-eta`'s job, not a timed
    test's.)"""
    make_table(conn, rows=30_000)
    rotate = (
        "CALL token_rotation.rotate('tickets', p_batch_size => 1000, p_max_batches => %s, p_quiet => true)"
    )
    conn.execute(rotate, (2,))
    assert progress_eta(conn) == (None, "active", 2000, 2)
    conn.execute(rotate, (4,))
    eta, state, done, batches = progress_eta(conn)
    assert (state, done, batches) == ("active", 6000, 6)
    row = conn.execute(
        "SELECT extract(epoch FROM token_rotation_internal.run_eta(run_id, rows_total, rows_done,"
        " batches_done,"
        " elapsed)) FROM token_rotation.progress"
    ).fetchone()
    assert row is not None and eta is not None and eta == pytest.approx(float(row[0]))
    fastest = conn.execute(
        "SELECT max(rows / greatest(extract(epoch FROM finished_at - started_at), 1e-6))"
        " FROM token_rotation.batches"
    ).fetchone()
    assert fastest is not None
    # no rate it can use beats its fastest batch: the 24k rows left take at least that long
    assert eta >= 24_000 / float(fastest[0]) - 0.1
    time.sleep(0.3)
    assert progress_eta(conn)[0] == eta, "a run no session works on must keep its ETA"
    conn.execute(rotate, (100,))
    assert progress_eta(conn) == (None, "finished", 30_000, 30)
