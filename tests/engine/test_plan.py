"""Planning without rotating: token_rotation.plan (rotate --dry-run), plan_slices balance, table_sizes."""

from __future__ import annotations

import time

import psycopg
import pytest

from helpers import make_table, table_checksum

SKEWED_KEYS = (
    # dense runs of keys separated by huge holes, most rows in the upper part of the key space
    "CASE WHEN g <= 500 THEN g::bigint"
    " WHEN g <= 1500 THEN 10000000000 + g * 7"
    " ELSE 900000000000000 + g::bigint * g END"
)


def test_dry_run_with_a_sample_changes_no_token(conn: psycopg.Connection) -> None:
    """plan(p_sample => true) runs a real sample batch and rolls it back: the table checksum is unchanged."""
    make_table(conn, rows=5000)
    before = table_checksum(conn)
    conn.execute(
        "SELECT * FROM token_rotation.plan('tickets', p_batch_size => 1000, p_sample => true)"
    ).fetchall()
    assert table_checksum(conn) == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_dry_run_by_default_locks_no_row_and_a_sample_does(conn: psycopg.Connection, dsn: str) -> None:
    """With the table's first row locked by another session, plan() without a sample goes through; with
    p_sample => true it waits for that lock (and gives up at p_lock_timeout)."""
    make_table(conn, rows=5000)
    with psycopg.connect(dsn) as other:
        other.execute("SELECT 1 FROM tickets ORDER BY id LIMIT 1 FOR UPDATE")
        row = conn.execute(
            "SELECT sample_rows, sample_seconds, estimated_duration"
            " FROM token_rotation.plan('tickets', p_lock_timeout => '100ms')"
        ).fetchone()
        assert row == (0, 0, None)
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute(
                "SELECT * FROM token_rotation.plan('tickets', p_lock_timeout => '100ms', p_sample => true)"
            )


def test_dry_run_reports_rows_slices_batches_and_a_duration(conn: psycopg.Connection) -> None:
    """plan() gives the exact row count, the slices, the batches per slice summed, and with a sample a
    positive estimate."""
    make_table(conn, rows=5000)
    row = conn.execute(
        "SELECT rows_total, rows_exact, slices, batch_size, batches, sample_rows, sample_seconds,"
        " extract(epoch FROM estimated_duration)"
        " FROM token_rotation.plan('tickets', 'token', 1000, 2, p_sample => true)"
    ).fetchone()
    assert row is not None
    rows_total, exact, slices, batch_size, batches, sample_rows, sample_seconds, estimate = row
    assert (rows_total, exact, slices, batch_size, sample_rows) == (5000, True, 2, 1000, 1000)
    assert batches in (5, 6)  # 2500 + 2500 rows, or an uneven split of equal keys
    assert sample_seconds > 0 and estimate >= 0


def test_dry_run_of_an_empty_table_plans_nothing(conn: psycopg.Connection) -> None:
    """An empty table plans zero rows, zero batches and a zero duration."""
    make_table(conn, rows=0)
    row = conn.execute(
        "SELECT rows_total, slices, batches, sample_rows, estimated_duration"
        " FROM token_rotation.plan('tickets')"
    ).fetchone()
    assert row is not None and row[:4] == (0, 0, 0, 0) and row[4].total_seconds() == 0


def test_dry_run_refuses_bad_input_like_rotate(conn: psycopg.Connection) -> None:
    """plan() checks the table and parameters as rotate() does, with the same SQLSTATEs."""
    make_table(conn, rows=10)
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT * FROM token_rotation.plan('tickets', 'nope')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT * FROM token_rotation.plan('tickets', p_batch_size => 0)")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT * FROM token_rotation.plan('tickets', p_workers => 0)")


def test_dry_run_leaves_the_lock_timeout_of_the_session_alone(conn: psycopg.Connection) -> None:
    """The sample's SET LOCAL lock_timeout is rolled back with it, even inside a caller's transaction."""
    make_table(conn, rows=100)
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '7s'")
        conn.execute(
            "SELECT * FROM token_rotation.plan('tickets', p_lock_timeout => '50ms', p_sample => true)"
        ).fetchall()
        assert conn.execute("SHOW lock_timeout").fetchone() == ("7s",)


def slice_rows(conn: psycopg.Connection, workers: int, exact_limit: int) -> list[int]:
    """Actual rows per planned slice (counted in the table, whatever the plan estimated)."""
    plan = conn.execute(
        "SELECT lo[1], hi[1] FROM token_rotation_internal.plan_slices('tickets', '{id}', %s,"
        " (SELECT ARRAY[max(id)::text] FROM tickets), %s) ORDER BY slice_no",
        (workers, exact_limit),
    ).fetchall()
    counts = []
    for lo, hi in plan:
        row = conn.execute(
            "SELECT count(*) FROM tickets WHERE (%s::bigint IS NULL OR id > %s::bigint) AND id <= %s::bigint",
            (lo, lo, hi),
        ).fetchone()
        assert row is not None
        counts.append(int(row[0]))
    return counts


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_slices_are_balanced_on_skewed_keys_when_counted_exactly(
    conn: psycopg.Connection, workers: int
) -> None:
    """With large holes in the key space, the largest exactly-planned slice is at most 1.25x the mean."""
    make_table(conn, rows=20000, key_expr=SKEWED_KEYS)
    counts = slice_rows(conn, workers, exact_limit=10**9)
    assert len(counts) == workers and sum(counts) == 20000
    assert max(counts) <= 1.25 * (sum(counts) / workers), counts


@pytest.mark.parametrize("workers", [2, 4])
def test_slices_are_balanced_on_skewed_keys_when_sampled(conn: psycopg.Connection, workers: int) -> None:
    """Past p_exact_limit the plan samples the table; its slices still hold at most 1.25x the mean rows."""
    make_table(conn, rows=60000, key_expr=SKEWED_KEYS)
    exact = conn.execute(
        "SELECT bool_and(exact) FROM token_rotation_internal.plan_slices('tickets', '{id}', 2, '{1}', 1000)"
    ).fetchone()
    assert exact == (False,)
    counts = slice_rows(conn, workers, exact_limit=1000)
    assert sum(counts) == 60000
    assert max(counts) <= 1.25 * (sum(counts) / len(counts)), counts


def test_table_sizes_report_growth_and_dead_tuples_after_a_rotation(conn: psycopg.Connection) -> None:
    """table_sizes() shows table and indexes grown and dead tuples left by a run, none after VACUUM."""
    make_table(conn, rows=3000)
    conn.execute("VACUUM tickets")
    before = conn.execute("SELECT * FROM token_rotation.table_sizes('tickets')").fetchone()
    assert before is not None
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 1000, p_quiet => true)")
    deadline = time.monotonic() + 10
    while True:  # the statistics system reports the dead tuples within a second or so
        after = conn.execute("SELECT * FROM token_rotation.table_sizes('tickets')").fetchone()
        assert after is not None
        if after[4] >= 3000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after[0] > before[0] and after[1] > before[1] and after[2] > before[2]
    assert after[4] >= 3000
    conn.execute("VACUUM (ANALYZE) tickets")
    vacuumed = conn.execute("SELECT dead_tuples, last_vacuum FROM token_rotation.table_sizes('tickets')")
    row = vacuumed.fetchone()
    assert row is not None and row[0] == 0 and row[1] is not None


@pytest.mark.parametrize(("rows", "workers"), [(1, 1), (3, 4), (10, 3), (1000, 1), (1000, 7)])
def test_exact_plan_counts_every_row_once_whatever_the_number_of_workers(
    conn: psycopg.Connection, rows: int, workers: int
) -> None:
    """The exact plan's row counts are the rows in each slice, sum to the table, and make at most N slices."""
    make_table(conn, rows=rows, key_expr=SKEWED_KEYS)
    plan = conn.execute(
        "SELECT rows_expected, exact FROM token_rotation_internal.plan_slices('tickets', '{id}', %s,"
        " (SELECT ARRAY[max(id)::text] FROM tickets)) ORDER BY slice_no",
        (workers,),
    ).fetchall()
    assert all(exact for _, exact in plan)
    assert [r for r, _ in plan] == slice_rows(conn, workers, exact_limit=10**9)
    assert sum(r for r, _ in plan) == rows and 1 <= len(plan) <= min(rows, workers)
