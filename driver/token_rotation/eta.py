"""The ETA of a rotation run, from its progress log: pure functions of numbers, no I/O, no clock.

A run's progress is a series of points (working seconds, rows done, batches done) read from the server.
Working seconds are the run's own clock (`token_rotation.progress.elapsed`: summed over every CALL, pauses and
the gaps between CALLs excluded), never the driver's, so the estimate is right after a resume and for a run
that someone else drives (psql, another terminal).

The rate is the mean of a long-run rate and the rate over a recent window (a fifth of the run's working time,
at least a few seconds), so that it follows a change of pace without jumping on one slow batch. The long-run
rate is measured from the first reading that has a committed batch (an anchor), so that the run's start-up
(checking the table, counting and slicing its keys) does not make every later estimate too slow; until the
anchor is a second old, the whole run's average stands in for it (right after a resume, the history).
From it comes a predicted finish on the working clock, which is smoothed exponentially: on a steady run the
prediction is constant, so smoothing adds no lag, while a burst of slow batches moves the ETA gradually.
Nothing is shown before a few batches are in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_BATCHES = 3
WINDOW_FRACTION = 0.2
MIN_WINDOW = 3.0
SMOOTHING = 3.0
MAX_WINDOW_POINTS = 256
ANCHOR_SPAN = 1.0


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
    anchor: Point | None = None

    @property
    def last(self) -> Point | None:
        return self.window[-1] if self.window else None


def step(
    state: Estimate,
    point: Point,
    total: int,
    *,
    min_batches: int = MIN_BATCHES,
    window_fraction: float = WINDOW_FRACTION,
    min_window: float = MIN_WINDOW,
    smoothing: float = SMOOTHING,
) -> Estimate:
    """The estimate after one more point of a run of `total` rows."""
    last = state.last
    if last is not None and (point.elapsed < last.elapsed or point.rows < last.rows):
        state, last = Estimate(), None  # another run, or the log was reset: start over
    if last is not None and point.elapsed == last.elapsed and point.rows == last.rows:
        return state  # nothing happened (paused, or polled twice between batches)

    window = _window(state.window, point, window_fraction, min_window)
    anchor = state.anchor if state.anchor is not None or point.batches < 1 else point
    if point.rows >= total and total > 0:
        return Estimate(finish=point.elapsed, window=window, eta=0.0, anchor=anchor)
    if point.batches < min_batches or point.rows <= 0 or point.elapsed <= 0:
        return Estimate(finish=None, window=window, eta=None, anchor=anchor)

    rate = _rate(window, anchor, point)
    if rate <= 0:
        finish = state.finish
    else:
        raw = point.elapsed + max(total - point.rows, 0) / rate
        if state.finish is None or last is None:
            finish = raw
        else:
            alpha = 1.0 - math.exp(-max(point.elapsed - last.elapsed, 0.0) / smoothing)
            finish = state.finish + alpha * (raw - state.finish)
    eta = None if finish is None else max(finish - point.elapsed, 0.0)
    return Estimate(finish=finish, window=window, eta=eta, anchor=anchor)


def estimate(points: Iterable[Point], total: int, **params: float) -> Estimate:
    """The estimate after a whole series of points (a fold of `step`)."""
    state = Estimate()
    for point in points:
        state = step(state, point, total, **params)  # type: ignore[arg-type]
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


def _rate(window: Sequence[Point], anchor: Point | None, point: Point) -> float:
    """Rows per working second: the mean of the long-run rate and the recent window's rate."""
    overall = point.rows / point.elapsed
    if anchor is not None and point.elapsed - anchor.elapsed >= ANCHOR_SPAN:
        overall = (point.rows - anchor.rows) / (point.elapsed - anchor.elapsed)
    first = window[0]
    span = point.elapsed - first.elapsed
    if span <= 0:
        return overall
    recent = (point.rows - first.rows) / span
    return (overall + recent) / 2


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
