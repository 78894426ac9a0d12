"""The ETA estimator (token_rotation.eta): a pure function of progress readings, tested without a database."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from token_rotation.eta import Batch, Estimate, Point, estimate, points_from_log, step


def simulate(
    total: int,
    batch: int,
    rate: float,
    *,
    jitter: float = 0.0,
    startup: float = 0.0,
    poll: float = 0.5,
    seed: int = 0,
    slow: tuple[int, float] | None = None,
) -> tuple[list[Point], float]:
    """Readings of a simulated run polled every `poll` working seconds: batch k ends at startup + the sum of
    the durations so far, each batch / rate times (1 +- jitter); `slow` = (batch number, extra seconds).
    Returns the readings and the real finish."""
    rng = random.Random(seed)
    ends: list[tuple[float, int]] = []
    t, done = startup, 0
    while done < total:
        rows = min(batch, total - done)
        t += rows / rate * (1 + rng.uniform(-jitter, jitter))
        if slow and len(ends) == slow[0]:
            t += slow[1]
        done += rows
        ends.append((t, done))
    points: list[Point] = []
    k, tau = 0, poll
    while True:
        while k < len(ends) and ends[k][0] <= tau:
            k += 1
        rows_done = ends[k - 1][1] if k else 0
        points.append(Point(min(tau, ends[-1][0]) if k == len(ends) else tau, rows_done, k))
        if k == len(ends):
            break
        tau += poll
    return points, ends[-1][0]


def errors_from(
    points: list[Point], total: int, finish: float, start_fraction: float = 0.1, startup: float = 0.0
) -> list[float]:
    """Relative error of the predicted finish at every reading from `start_fraction` of the rows on."""
    state, errors = Estimate(), []
    for p in points:
        state = step(state, p, total, startup=startup)
        if start_fraction * total <= p.rows < total:
            assert state.eta is not None, f"no ETA at {p}"
            errors.append((p.elapsed + state.eta - finish) / finish)
    return errors


def test_steady_run_predicts_the_finish_exactly() -> None:
    """On a perfectly steady run the predicted finish is the real one from the first estimate on."""
    points, finish = simulate(1_000_000, 3000, 100_000.0, poll=0.5)
    errors = errors_from(points, 1_000_000, finish, start_fraction=0.05)
    assert errors and max(abs(e) for e in errors) < 0.02


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(300_000, 3_000_000),
    batch=st.sampled_from([500, 1000, 2000, 3000]),
    rate=st.floats(20_000, 400_000),
    jitter=st.floats(0.0, 0.15),
    startup_share=st.floats(0.0, 0.03),
    poll=st.floats(0.2, 1.0),
    seed=st.integers(0, 10_000),
)
def test_predicted_finish_is_within_ten_percent_from_ten_percent_progress_on(
    total: int, batch: int, rate: float, jitter: float, startup_share: float, poll: float, seed: int
) -> None:
    """For any steady run (batch times varying up to +-15%, a start-up of up to 3% of the run), every
    prediction from 10% progress on is within +-10% of the real finish (runs read at least 20 times)."""
    assume(total / rate >= 20 * poll)
    startup = startup_share * total / rate
    points, finish = simulate(total, batch, rate, jitter=jitter, startup=startup, poll=poll, seed=seed)
    errors = errors_from(points, total, finish, startup=startup)
    assert errors, "no reading between 10% and the end"
    assert max(abs(e) for e in errors) <= 0.10, f"worst error {max(errors, key=abs):+.1%}"


def test_nothing_is_shown_before_a_few_batches() -> None:
    """The ETA stays unknown until three batches are committed."""
    state = Estimate()
    for batches in range(3):
        state = step(state, Point(0.1 * (batches + 1), 3000 * batches, batches), 300_000)
        assert state.eta is None
    state = step(state, Point(0.4, 9000, 3), 300_000)
    assert state.eta is not None


def test_resumed_run_has_an_eta_from_its_first_reading() -> None:
    """After a resume the first reading carries the run's history (40 s for 400k of 1M rows), so the
    ETA is known at once and counts the earlier working time: 60 s to go."""
    state = estimate([Point(40.0, 400_000, 134)], 1_000_000)
    assert state.eta == pytest.approx(60.0)


def test_paused_readings_change_nothing() -> None:
    """Readings that repeat the last one (a paused run, whose working clock stops) leave the ETA as is."""
    points, _ = simulate(600_000, 3000, 50_000.0)
    before = estimate(points[:20], 600_000)
    after = estimate(points[:20] + [points[19]] * 50, 600_000)
    assert after == before


def test_one_slow_batch_moves_the_eta_only_gradually() -> None:
    """A batch that stalls 5 s half-way through a 100 s run moves the predicted finish by at most 1 s from
    one reading to the next, and it stays within 10% of the real (delayed) finish."""
    total = 5_000_000
    points, finish = simulate(total, 3000, 50_000.0, poll=0.5, slow=(total // 6000, 5.0))
    state, finishes = Estimate(), []
    for p in points:
        state = step(state, p, total)
        if p.rows >= total * 0.1 and state.finish is not None:
            finishes.append(state.finish)
    jumps = [abs(b - a) for a, b in zip(finishes, finishes[1:], strict=False)]
    assert max(jumps) < 1.0
    assert max(abs(f - finish) for f in finishes) < 0.1 * finish
    assert max(finishes) > 100.5  # it does notice the stall


def test_a_finished_run_has_no_time_left() -> None:
    """Once every row is done the ETA is zero."""
    assert estimate([Point(1.0, 3000, 1), Point(9.0, 30_000, 10)], 30_000).eta == 0.0


def test_a_new_run_starts_the_estimate_over() -> None:
    """A reading whose working time goes backwards (a new run) drops the old state."""
    old = estimate([Point(50.0, 500_000, 200), Point(60.0, 600_000, 240)], 1_000_000)
    new = step(old, Point(1.0, 9000, 3), 100_000)
    assert new.window == (Point(1.0, 9000, 3),)


def steady_log(batches: int, rows: int, seconds: float, start: float = 1_000_000.0) -> list[Batch]:
    return [Batch(start + k * seconds, start + (k + 1) * seconds, rows) for k in range(batches)]


def test_log_points_skip_a_long_pause_between_batches() -> None:
    """Points rebuilt from the log (for `status`) do not count an hour-long gap between two batches as
    working time: the ETA equals that of the same log without the gap."""
    log = steady_log(120, 3000, 0.03)
    gap = [b if k < 60 else Batch(b.started + 3600, b.finished + 3600, b.rows) for k, b in enumerate(log)]
    args = (3.6, 360_000, 120)
    plain = estimate(points_from_log(log, *args), 1_000_000).eta
    paused = estimate(points_from_log(gap, *args), 1_000_000).eta
    assert plain is not None and paused is not None
    assert paused == pytest.approx(plain, rel=0.01)
    assert plain == pytest.approx((1_000_000 - 360_000) / 100_000, rel=0.02)


def test_log_points_end_at_the_runs_current_numbers() -> None:
    """The last rebuilt point is the progress view's own reading (working time, rows, batches)."""
    points = points_from_log(list(reversed(steady_log(10, 100, 1.0))), 42.0, 5000, 50)
    assert points[-1] == Point(42.0, 5000, 50)
    assert [p.rows for p in points] == [5000 - 100 * k for k in range(9, -1, -1)]
    assert points_from_log([], 1.0, 10, 1) == [Point(1.0, 10, 1)]
