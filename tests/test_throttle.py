"""Throttling: the wait decision (a pure SQL function), the real replication-lag query, and lock timeouts."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("state", "lag", "max_lag", "error", "expected"),
    [
        ("active", 0, None, None, None),
        ("active", None, None, "XX000", None),  # not watching replicas: an error does not matter
        ("active", 10 * MB, 64 * MB, None, None),
        ("active", 64 * MB, 64 * MB, None, None),
        ("active", 120 * MB, 64 * MB, None, "replica lag 120 MB"),
        ("active", 1, 0, None, "replica lag 1 bytes"),
        ("active", None, 64 * MB, "42501", "replica lag unknown (42501)"),
        ("active", None, 64 * MB, None, "replica lag unknown (no value)"),
        ("paused", 120 * MB, 64 * MB, None, "paused"),
        ("paused", 0, None, None, "paused"),
    ],
)
def test_wait_reason_follows_pause_and_replica_lag(
    conn: psycopg.Connection,
    state: str,
    lag: int | None,
    max_lag: int | None,
    error: str | None,
    expected: str | None,
) -> None:
    """throttle_reason waits while paused, while the lag exceeds the limit, and while the lag is unknown."""
    row = conn.execute(
        "SELECT token_rotation.throttle_reason(%s, %s, %s, %s)", (state, lag, max_lag, error)
    ).fetchone()
    assert row == (expected,)


def test_replication_lag_query_runs_on_the_real_server(conn: psycopg.Connection) -> None:
    """replication_lag() runs against pg_stat_replication and the slots; without replicas it is 0 bytes."""
    row = conn.execute("SELECT token_rotation.replication_lag()").fetchone()
    assert row is not None and row[0] == 0


def test_rotation_watching_replica_lag_runs_when_there_is_no_lag(conn: psycopg.Connection) -> None:
    """With p_max_replication_lag set and no replica behind, the run goes on and rotates every row once."""
    make_table(conn, rows=1200)
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 500, p_max_replication_lag => 0,"
        " p_quiet => true)"
    )
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_locked_rows_make_the_batch_retry_with_halved_sizes(dsn: str, conn: psycopg.Connection) -> None:
    """An application transaction holding row locks makes batches time out; the worker retries with half
    the batch each time, then goes on once the locks are gone, and still rotates every row exactly once."""
    make_table(conn, rows=2000)
    before = snapshot(conn)
    app = psycopg.connect(dsn)
    app.execute("SELECT * FROM tickets WHERE id <= 10 * 1000 FOR UPDATE")  # the first batch's rows
    release = threading.Timer(1.2, app.rollback)
    release.start()
    try:
        conn.execute(
            "CALL token_rotation.rotate('tickets', p_batch_size => 800, p_lock_timeout => '200ms',"
            " p_lock_retries => 10, p_quiet => true)"
        )
    finally:
        release.join()
        app.close()
    run_id = last_run_id(conn)
    assert_rotated_exactly_once(conn, before, run_id)
    first = conn.execute(
        "SELECT batch_size, retries FROM token_rotation.batches WHERE run_id = %s ORDER BY batch_no LIMIT 1",
        (run_id,),
    ).fetchone()
    assert first is not None
    batch_size, retries = first
    assert retries >= 2 and batch_size == max(800 >> retries, 1)


def test_rows_locked_for_too_long_stop_the_call_with_lock_not_available(
    dsn: str, conn: psycopg.Connection
) -> None:
    """After p_lock_retries timeouts the CALL fails with SQLSTATE 55P03; the locked batch is not applied."""
    make_table(conn, rows=500)
    before = snapshot(conn)
    with psycopg.connect(dsn) as app:
        app.execute("SELECT * FROM tickets WHERE id = 1000 FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute(
                "CALL token_rotation.rotate('tickets', p_lock_timeout => '100ms', p_lock_retries => 2,"
                " p_quiet => true)"
            )
        assert time.monotonic() - started < 10
        app.rollback()
    after = snapshot(conn)
    assert after.tokens == before.tokens
    row = conn.execute(
        "SELECT state, rows_done, last_error LIKE '55P03%' FROM token_rotation.runs"
    ).fetchone()
    assert row == ("active", 0, True)
