"""The adaptive batch size: token_rotation_internal.next_batch_size (a pure SQL function) and rotate() using
it."""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def next_size(
    conn: psycopg.Connection,
    current: int,
    seconds_per_row: float | None,
    target: float,
    lo: int = 100,
    hi: int = 100000,
    step: float = 2.0,
) -> int:
    row = conn.execute(
        "SELECT token_rotation_internal.next_batch_size(%s, %s, %s, %s, %s, %s)",
        (current, seconds_per_row, target, lo, hi, step),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_batch_grows_toward_the_target_by_at_most_the_step(conn: psycopg.Connection) -> None:
    """Batches far faster than the target double (no more); ones far slower halve (no more)."""
    assert next_size(conn, 3000, 0.00002, 0.5) == 6000
    assert next_size(conn, 3000, 0.01, 0.5) == 1500
    assert next_size(conn, 3000, 0.5 / 4000, 0.5) == 4000


def test_unknown_speed_keeps_the_current_size_within_bounds(conn: psycopg.Connection) -> None:
    """Without a measured speed (NULL or 0) the size stays, clamped to [min, max]."""
    assert next_size(conn, 3000, None, 0.5) == 3000
    assert next_size(conn, 3000, 0.0, 0.5) == 3000
    assert next_size(conn, 50, None, 0.5) == 100
    assert next_size(conn, 500000, None, 0.5) == 100000


@FAST
@given(
    current=st.integers(1, 2_000_000),
    seconds_per_row=st.floats(1e-9, 10, allow_nan=False),
    target=st.floats(0.001, 60, allow_nan=False),
    lo=st.integers(1, 1000),
    span=st.integers(0, 200_000),
    step=st.floats(1.1, 4.0),
)
def test_next_size_always_stays_within_bounds_and_the_step(
    conn: psycopg.Connection,
    current: int,
    seconds_per_row: float,
    target: float,
    lo: int,
    span: int,
    step: float,
) -> None:
    """For any speed and target the size is within [min, max], and within the step of the current size
    whenever that is possible inside the bounds."""
    hi = lo + span
    size = next_size(conn, current, seconds_per_row, target, lo, hi, step)
    assert lo <= size <= hi
    assert min(max(current / step, lo), hi) - 1 <= size <= max(min(current * step, hi), lo) + 1


@FAST
@given(
    start=st.integers(100, 100_000),
    seconds_per_row=st.floats(1e-7, 1e-2, allow_nan=False),
    target=st.floats(0.01, 5, allow_nan=False),
)
def test_steady_speed_converges_to_the_size_that_meets_the_target(
    conn: psycopg.Connection, start: int, seconds_per_row: float, target: float
) -> None:
    """At a steady speed the size reaches target/speed (clamped) in log2(distance) steps, then stays."""
    ideal = min(max(target / seconds_per_row, 100), 100000)
    size = start
    for _ in range(12):  # 2**12 > 100000 / 100: any distance within the bounds is covered
        size = next_size(conn, size, seconds_per_row, target)
    assert abs(size - ideal) <= 1
    assert next_size(conn, size, seconds_per_row, target) == size


def test_rotate_with_a_target_batch_time_grows_small_batches(conn: psycopg.Connection) -> None:
    """Starting at 100 rows with a 200 ms target, the batches grow, each at most twice the one before."""
    make_table(conn, rows=20000)
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_target_batch_time => '200ms',"
        " p_quiet => true)"
    )
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    sizes = [r[0] for r in conn.execute("SELECT batch_size FROM token_rotation.batches ORDER BY batch_no")]
    assert sizes[0] == 100 and max(sizes) >= 1600
    assert all(b <= 2 * a for a, b in zip(sizes, sizes[1:], strict=False))


def test_rotate_with_a_target_batch_time_shrinks_slow_batches(conn: psycopg.Connection) -> None:
    """Starting at 5000 rows with a 1 ms target, the batches shrink, each at least half the one before."""
    make_table(conn, rows=12000)
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 5000, p_target_batch_time => '1ms',"
        " p_quiet => true)"
    )
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    sizes = [r[0] for r in conn.execute("SELECT batch_size FROM token_rotation.batches ORDER BY batch_no")]
    assert sizes[0] == 5000 and sizes[1] == 2500 and min(sizes) < 1000
    assert all(b >= a // 2 for a, b in zip(sizes, sizes[1:], strict=False))


def test_a_fixed_batch_size_wins_without_a_target(conn: psycopg.Connection) -> None:
    """Without p_target_batch_time every batch but the last has exactly p_batch_size rows."""
    make_table(conn, rows=2100)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 500, p_quiet => true)")
    sizes = [r[0] for r in conn.execute("SELECT batch_size FROM token_rotation.batches ORDER BY batch_no")]
    assert sizes == [500] * 5


def test_a_bare_call_batches_as_every_way_in_does_and_a_fixed_run_stays_fixed(
    conn: psycopg.Connection,
) -> None:
    """default_options() is the one place of the defaults: a bare CALL (a psql user's) keeps a target of
    10 ms and starts at 1000 rows, as the CLI, Django and schedules do. p_batch_size alone is a fixed size,
    and a bare CALL that resumes such a run keeps it fixed (the default target is not added to it)."""
    make_table(conn, rows=5000)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true, p_max_batches => 1)")
    row = conn.execute(
        "SELECT options->>'target_batch_time', options->>'batch_size' FROM token_rotation.runs"
    )
    assert row.fetchone() == ("00:00:00.01", "1000")
    assert conn.execute("SELECT batch_size FROM token_rotation.batches").fetchall() == [(1000,)]
    conn.execute("SELECT token_rotation.cancel('tickets')")

    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 700, p_quiet => true, p_max_batches => 2)"
    )
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")  # the resume: no option given
    run_id = last_run_id(conn)
    assert_rotated_exactly_once(conn, before, run_id)
    options = conn.execute("SELECT options FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert options is not None and "target_batch_time" not in options[0]
    sizes = [
        r[0]
        for r in conn.execute(
            "SELECT batch_size FROM token_rotation.batches WHERE run_id = %s ORDER BY batch_no", (run_id,)
        )
    ]
    assert sizes == [700] * 8  # the size asked for: the last batch finds 100 rows


@pytest.mark.parametrize("target", ["0", "-1 second"])
def test_a_target_batch_time_that_is_not_positive_is_refused(conn: psycopg.Connection, target: str) -> None:
    """p_target_batch_time must be positive: SQLSTATE 22023 and nothing happens."""
    make_table(conn, rows=10)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("CALL token_rotation.rotate('tickets', p_target_batch_time => %s::interval)", (target,))
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
