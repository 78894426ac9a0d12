"""One run per table at a time, many tables at once, and row locks that live for one batch only."""

from __future__ import annotations

import time

import psycopg
import pytest

from background import BackgroundCall, hold_rows, wait_until, waiting_for_locks
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot


def backend_of(conn: psycopg.Connection, app: str) -> int | None:
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active'", (app,)
    ).fetchone()
    return None if row is None else int(row[0])


def rows_done(conn: psycopg.Connection, table: str = "tickets") -> int:
    row = conn.execute(
        "SELECT coalesce(max(rows_done), 0) FROM token_rotation.progress WHERE table_name = to_regclass(%s)",
        (table,),
    ).fetchone()
    return int(row[0]) if row else 0


def test_second_call_on_the_same_table_is_refused_at_once_naming_the_holder(
    dsn: str, conn: psycopg.Connection
) -> None:
    """While one CALL rotates a table, a CALL from another session fails at once with SQLSTATE 55006 and
    says which backend holds the table; the first run is unharmed and finishes exactly once."""
    make_table(conn, rows=2000)
    before = snapshot(conn)
    first = BackgroundCall(
        dsn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '0.05s', p_quiet => true)",
        "rotator-1",
    ).start()
    wait_until(lambda: rows_done(conn) > 0)
    holder = backend_of(conn, "rotator-1")
    assert holder is not None
    started = time.monotonic()
    with pytest.raises(psycopg.errors.ObjectInUse) as refused:
        conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    assert time.monotonic() - started < 5.0  # "at once", with room for a busy 2-core machine
    assert "already being rotated" in str(refused.value)
    assert f"backend {holder} (rotator-1" in (refused.value.diag.message_detail or "")
    assert "token_rotation.cancel" in (refused.value.diag.message_hint or "")
    assert first.join().error is None
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_different_tables_rotate_at_the_same_time(dsn: str, conn: psycopg.Connection) -> None:
    """Two tables are rotated by two sessions at once: both runs are active together (each waits mid-run
    for a row the application holds in it) and both finish exactly once."""
    make_table(conn, "tickets", rows=1500)
    make_table(conn, "orders", rows=1500)
    before_t, before_o = snapshot(conn, "tickets"), snapshot(conn, "orders")
    app = psycopg.connect(dsn)
    app.execute("SELECT 1 FROM tickets WHERE id = 750000 FOR UPDATE")
    app.execute("SELECT 1 FROM orders WHERE id = 750000 FOR UPDATE")
    call = "CALL token_rotation.rotate('{}', p_batch_size => 100, p_lock_timeout => '60s', p_quiet => true)"
    t1 = BackgroundCall(dsn, call.format("tickets"), "rotator-t").start()
    t2 = BackgroundCall(dsn, call.format("orders"), "rotator-o").start()
    wait_until(
        lambda: waiting_for_locks(conn, "rotator-t") + waiting_for_locks(conn, "rotator-o") == 2,
        what="both rotations waiting mid-run",
    )
    both = conn.execute(
        "SELECT count(*) FROM token_rotation.progress WHERE workers = 1 AND state = 'active'"
        " AND rows_done = 700 AND sessions = workers"  # sessions: workers' old name, kept a release
    ).fetchone()
    app.rollback()
    app.close()
    assert both == (2,)
    assert t1.join().error is None and t2.join().error is None
    assert_rotated_exactly_once(conn, before_t, last_run_id(conn, "tickets"), "tickets")
    assert_rotated_exactly_once(conn, before_o, last_run_id(conn, "orders"), "orders")


def test_row_locks_live_for_one_batch_only(dsn: str, conn: psycopg.Connection) -> None:
    """During a run, an application can lock any row outside the current batch at once: between batches
    the rotation holds no row lock at all."""
    make_table(conn, rows=2000)
    rotation = BackgroundCall(
        dsn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '0.2s', p_quiet => true)",
        "rotator-locks",
    ).start()
    wait_until(lambda: rows_done(conn) >= 300)
    locked_all = False
    with psycopg.connect(dsn) as app:
        for _ in range(50):
            try:
                app.execute("SET LOCAL lock_timeout = '50ms'")
                count = app.execute(
                    "SELECT count(*) FROM (SELECT id FROM tickets FOR UPDATE) AS l"
                ).fetchone()
                app.rollback()
                assert count == (2000,)
                locked_all = True
                break
            except psycopg.errors.LockNotAvailable:
                app.rollback()
        assert 0 < rows_done(conn) < 2000, "the run was not in progress while the application locked rows"
    assert locked_all, "the application never got every row lock during the run"
    assert rotation.join().error is None


@pytest.mark.slow
def test_two_hundred_thousand_rows_checked_against_a_snapshot(conn: psycopg.Connection) -> None:
    """A 200,000-row table with a unique token index: every row rotated once, nothing else changed."""
    make_table(conn, rows=200_000)
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_batch_ends_found_ahead_keep_exactly_once_when_keys_change_during_the_call(
    dsn: str, conn: psycopg.Connection
) -> None:
    """rotate() finds the ends of the coming batches when its CALL starts. A key deleted ahead of the
    checkpoint (the end of batch 5) makes its batch one row smaller; keys inserted ahead (into batch 7's
    range) make that batch larger and are rotated with it; every row is still rotated exactly once, since
    each UPDATE takes its key range, not a count of rows."""
    make_table(conn, rows=1000)  # keys 1000, 2000, ..., 1,000,000: batches of 100 end at 100000, 200000, ...
    before = snapshot(conn)
    holder = hold_rows(dsn, 3)  # key 125000, in batch 2: the CALL waits there, its ends found ahead
    call = BackgroundCall(
        dsn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_lock_timeout => '60s',"
        " p_quiet => true)",
        "ends-ahead",
    ).start()
    wait_until(lambda: waiting_for_locks(conn, "ends-ahead") == 1, what="the CALL waiting in batch 2")
    assert rows_done(conn) == 100
    conn.execute("DELETE FROM tickets WHERE id = 500000")
    inserted: dict[int, object] = dict(
        conn.execute(
            "INSERT INTO tickets (id, title, status, created_at)"
            " SELECT 600000 + g, 'inserted', 0, now() FROM generate_series(1, 30) g RETURNING id, token"
        ).fetchall()
    )
    holder.rollback()
    holder.close()
    call.join()
    assert call.error is None, call.error
    run_id = last_run_id(conn)
    rows = [
        r[0]
        for r in conn.execute(
            "SELECT rows FROM token_rotation.batches WHERE run_id = %s ORDER BY batch_no", (run_id,)
        )
    ]
    assert rows == [100, 100, 100, 100, 99, 100, 130, 100, 100, 100]
    after: dict[int, object] = dict(
        conn.execute("SELECT id, token FROM tickets WHERE title = 'inserted'").fetchall()
    )
    assert set(after) == set(inserted) and all(after[k] != inserted[k] for k in inserted)
    assert_rotated_exactly_once(conn, before, run_id, deleted_ok=True)


def key_index_scans(conn: psycopg.Connection) -> int:
    """Scans of tickets' primary key so far, this session's own included (flushed to the shared stats)."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # flushed when the session next goes idle
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'tickets_pkey'::regclass"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_batch_ends_are_found_ahead_only_for_the_batches_a_call_may_run(conn: psycopg.Connection) -> None:
    """The look-ahead is limited by what p_max_batches leaves to the CALL: a CALL allowed 5 batches of 10 on
    a slice of 1,000 keys scans the key index about 10 times (5 batch ends, 5 UPDATEs), not once per batch
    end up to the slice's end (about 100)."""
    make_table(conn, rows=1000)
    before = snapshot(conn)
    call = "CALL token_rotation.rotate('tickets', p_batch_size => 10, p_max_batches => {}, p_quiet => true)"
    conn.execute(call.format(1))  # starts the run (its own scans: the key range, the plan)
    start = key_index_scans(conn)
    conn.execute(call.format(5))
    scans = key_index_scans(conn) - start
    assert rows_done(conn) == 60
    assert 5 <= scans <= 15, f"{scans} scans of the key index for 5 batches"
    conn.execute(call.format(1000))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_the_look_ahead_stops_at_its_count_at_its_time_budget_and_at_the_slice_end(
    conn: psycopg.Connection,
) -> None:
    """batch_ends() finds at most p_max_ends ends, stops once p_max_time is spent, and never past the slice's
    upper key: the caps that limits() gives rotate() (lookahead_batches, lookahead_time)."""
    make_table(conn, rows=1000)  # keys 1000, 2000, ..., 1000000

    def ends(max_ends: int, max_time: str) -> list[str | None]:
        row = conn.execute(
            "SELECT e.ends, e.err_state FROM token_rotation_internal.key_range_sql('tickets',"
            " '{id}', 'token') AS k,"
            " token_rotation_internal.batch_ends(k.end_after, k.end_first, NULL, '{1000000}', 10,"
            " %s, %s::interval)"
            " AS e",
            (max_ends, max_time),
        ).fetchone()
        assert row is not None and row[1] is None, row
        return list(row[0])

    assert ends(7, "1 hour") == [f"{{{10_000 * i}}}" for i in range(1, 8)]
    assert ends(10_000, "1 hour") == [f"{{{10_000 * i}}}" for i in range(1, 101)]  # the slice ends at 1000000
    assert ends(10_000, "0") == ["{10000}"]  # the time budget is spent after the first lookup
    limits = conn.execute(
        "SELECT lookahead_batches, lookahead_time FROM token_rotation_internal.limits()"
    ).fetchone()
    assert limits is not None and limits[0] >= 1000 and limits[1].total_seconds() <= 5
