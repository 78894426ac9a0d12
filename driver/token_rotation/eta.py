"""The ETA of a rotation run, from its progress log: pure functions of numbers, no I/O, no clock.

A run's progress is a series of points (working seconds, rows done, batches done) read from the server.
Working seconds are the run's own clock (`token_rotation.progress.elapsed`: summed over every CALL, pauses and
the gaps between CALLs excluded), never the driver's, so the estimate is right after a resume and for a run
that someone else drives (psql, another terminal).

The rate is a weighted mean of a long-run rate (3/4) and the rate over a recent window (a quarter of the run's
working time, at least a few seconds; 1/4), so that it follows a lasting change of pace while one slow batch
is amortised over the run, as it really is. The long-run
rate leaves out the run's start-up (checking the table, counting and slicing its keys: the working time
before its first batch began, from the log), which would otherwise make every early estimate too slow.
From it comes a predicted finish on the working clock, which is smoothed exponentially with a time constant
of a tenth of the working time so far (short early, when each reading says much, longer later): on a steady
run the prediction is constant, so smoothing adds no lag, while a burst of slow batches moves it gradually.
Nothing is shown before a few batches are in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MIN_BATCHES = 3
WINDOW_FRACTION = 0.25
MIN_WINDOW = 5.0
RECENT_WEIGHT = 0.25
SMOOTHING = 0.1
MAX_SMOOTHING = 30.0
MAX_WINDOW_POINTS = 256


@dataclass(frozen=True)
class Point:
    """One reading of a run's progress: working seconds so far, rows done, batches committed."""

    elapsed: float
    rows: int
    batches: int


@dataclass(frozen=True)
class Estimate:
    """The state of the estimator after some points: the smoothed predicted finish (working seconds,
    None until enough batches are in), the points of the recent window, and the ETA in seconds."""

    finish: float | None = None
    window: tuple[Point, ...] = ()
    eta: float | None = None

    @property
    def last(self) -> Point | None:
        return self.window[-1] if self.window else None


def step(
    state: Estimate,
    point: Point,
    total: int,
    *,
    startup: float = 0.0,
    min_batches: int = MIN_BATCHES,
    window_fraction: float = WINDOW_FRACTION,
    min_window: float = MIN_WINDOW,
    smoothing: float = SMOOTHING,
) -> Estimate:
    """The estimate after one more point of a run of `total` rows whose first batch began `startup`
    working seconds into the run."""
    last = state.last
    if last is not None and (point.elapsed < last.elapsed or point.rows < last.rows):
        state, last = Estimate(), None  # another run, or the log was reset: start over
    if last is not None and point.elapsed == last.elapsed and point.rows == last.rows:
        return state  # nothing happened (paused, or polled twice between batches)

    window = _window(state.window, point, window_fraction, min_window)
    if point.rows >= total and total > 0:
        return Estimate(finish=point.elapsed, window=window, eta=0.0)
    if point.batches < min_batches or point.rows <= 0 or point.elapsed <= 0:
        return Estimate(finish=None, window=window, eta=None)

    rate = _rate(window, startup, point)
    if rate <= 0:
        finish = state.finish
    else:
        raw = point.elapsed + max(total - point.rows, 0) / rate
        if state.finish is None or last is None:
            finish = raw
        else:
            tau = min(max(smoothing * point.elapsed, 0.25), MAX_SMOOTHING)
            alpha = 1.0 - math.exp(-max(point.elapsed - last.elapsed, 0.0) / tau)
            finish = state.finish + alpha * (raw - state.finish)
    eta = None if finish is None else max(finish - point.elapsed, 0.0)
    return Estimate(finish=finish, window=window, eta=eta)


def estimate(points: Iterable[Point], total: int, **params: Any) -> Estimate:
    """The estimate after a whole series of points (a fold of `step`)."""
    state = Estimate()
    for point in points:
        state = step(state, point, total, **params)
    return state


def _window(window: tuple[Point, ...], point: Point, fraction: float, min_window: float) -> tuple[Point, ...]:
    """The recent points: those of the last `fraction` of the working time (at least `min_window` s),
    plus one point at or before the start of that window; thinned to at most MAX_WINDOW_POINTS."""
    points = (*window, point)
    start = point.elapsed - max(min_window, fraction * point.elapsed)
    first = 0
    while first + 1 < len(points) and points[first + 1].elapsed <= start:
        first += 1
    points = points[first:]
    if len(points) > MAX_WINDOW_POINTS:
        points = (*points[:-1:2], points[-1])
    return points


def _rate(window: Sequence[Point], startup: float, point: Point) -> float:
    """Rows per working second: the weighted mean of the long-run rate and the recent window's rate."""
    begun = startup if 0 <= startup < point.elapsed else 0.0
    overall = point.rows / (point.elapsed - begun)
    first = window[0]
    span = point.elapsed - max(first.elapsed, begun)
    if span <= 0:
        return overall
    recent = (point.rows - first.rows) / span
    return (1 - RECENT_WEIGHT) * overall + RECENT_WEIGHT * recent


@dataclass(frozen=True)
class Batch:
    """One row of the progress log: when the batch started and finished (epoch seconds), and its rows."""

    started: float
    finished: float
    rows: int


def points_from_log(
    batches: Sequence[Batch], elapsed: float, rows: int, batches_done: int, *, gap_factor: float = 4.0
) -> list[Point]:
    """Points on the working clock for the most recent `batches` of a run (any order), ending at the run's
    current working time `elapsed`, rows and batches done (from the progress view). Used where no series
    of readings exists yet (`status`). Between two consecutive batches the working clock advances by the
    wall-clock gap, unless that gap is much longer than usual (a pause, a resume after hours, a crash):
    then only the batch's own duration counts."""
    ordered = sorted(batches, key=lambda b: b.finished)
    if not ordered:
        return [Point(elapsed, rows, batches_done)]
    gaps = [b.finished - a.finished for a, b in zip(ordered, ordered[1:], strict=False)]
    usual = sorted(gaps)[len(gaps) // 2] if gaps else 0.0
    cap = max(1.0, gap_factor * usual)
    steps = [
        min(gap, max(b.finished - b.started, 0.0)) if gap > cap else gap
        for gap, b in zip(gaps, ordered[1:], strict=True)
    ]
    points = [Point(elapsed, rows, batches_done)]
    t, r, n = elapsed, rows, batches_done
    for batch, dt in zip(reversed(ordered[1:]), reversed(steps), strict=True):
        t, r, n = t - dt, r - batch.rows, n - 1
        points.append(Point(max(t, 0.0), max(r, 0), max(n, 0)))
    points.reverse()
    return points
