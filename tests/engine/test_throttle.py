"""Throttling: the wait decision (a pure SQL function), the real replication-lag query, and lock timeouts."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from background import BackgroundCall, wait_until
from helpers import (
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    rows_done,
    snapshot,
)

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("options", "lag", "expected"),
    [
        ({}, "SELECT 120 * 1048576::bigint", None),  # not watching replicas
        ({}, "SELECT 1/0", None),  # not watching replicas: an error does not matter
        ({"max_replication_lag": 64 * MB}, "SELECT 10 * 1048576::bigint", None),
        ({"max_replication_lag": 64 * MB}, "SELECT 64 * 1048576::bigint", None),
        ({"max_replication_lag": 64 * MB}, "SELECT 120 * 1048576::bigint", "replica lag 120 MB"),
        ({"max_replication_lag": 0}, "SELECT 1::bigint", "replica lag 1 bytes"),
        ({"max_replication_lag": 64 * MB}, "SELECT 1/0", "replica lag unknown (22012: division by zero)"),
    ],
)
def test_health_reason_follows_the_replica_lag_and_waits_when_it_cannot_be_read(
    conn: psycopg.Connection, options: dict[str, int], lag: str, expected: str | None
) -> None:
    """health_reason waits while the lag exceeds the limit and while the lag cannot be read; it does not
    read the lag when no limit is set."""
    conn.execute(
        "CREATE OR REPLACE FUNCTION token_rotation_internal.replication_lag() RETURNS bigint"
        " LANGUAGE sql VOLATILE"
        f" AS '{lag}'"
    )
    row = conn.execute(
        "SELECT token_rotation_internal.health_reason(%s, ARRAY['pg_class'::regclass])", (Jsonb(options),)
    ).fetchone()
    assert row == (expected,)


def test_a_lag_hidden_by_missing_privileges_names_the_grant(conn: psycopg.Connection) -> None:
    """replication_lag() raising insufficient_privilege (as it does for a role that sees the replicas' rows
    without their positions) makes health_reason wait and say which grant fixes it."""
    conn.execute(
        "CREATE OR REPLACE FUNCTION token_rotation_internal.replication_lag() RETURNS bigint"
        " LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'hidden' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    row = conn.execute(
        "SELECT token_rotation_internal.health_reason('{\"max_replication_lag\": 0}', '{}'), current_user"
    ).fetchone()
    assert row is not None and row[0] == f"replica lag unknown: GRANT pg_monitor TO {row[1]}"


def test_replication_lag_query_runs_on_the_real_server(conn: psycopg.Connection) -> None:
    """replication_lag() runs against pg_stat_replication and the slots; without replicas it is 0 bytes."""
    row = conn.execute("SELECT token_rotation_internal.replication_lag()").fetchone()
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


def test_locked_rows_make_the_batch_retry_with_halved_sizes_then_recover(
    dsn: str, conn: psycopg.Connection
) -> None:
    """An application transaction holding a row of the first batch makes it time out; the worker retries
    with half the batch each time; once the lock is gone it commits a halved batch, then doubles the size
    batch by batch back to the size asked for (e.g. 400, 800, 1600, 3200, 3200), every row exactly once."""
    make_table(conn, rows=20_000)
    before = snapshot(conn)
    app = psycopg.connect(dsn)
    app.execute("SELECT * FROM tickets WHERE id = 10 * 1000 FOR UPDATE")  # a row of the first batch
    call = BackgroundCall(
        dsn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 3200, p_lock_timeout => '100ms',"
        " p_lock_retries => 10, p_quiet => true)",
        "tr-halving",
    ).start()
    wait_until(
        lambda: (
            conn.execute(
                "SELECT substring(max(throttled) FROM 'lock timeout (\\d+) of')::int >= 2"
                " FROM token_rotation.slices"
            ).fetchone()
            == (True,)
        ),
        what="two lock timeouts",
    )
    app.rollback()
    app.close()
    assert call.join().error is None, call.error
    run_id = last_run_id(conn)
    assert_rotated_exactly_once(conn, before, run_id)
    sizes = conn.execute(
        "SELECT batch_size, retries FROM token_rotation.batches WHERE run_id = %s ORDER BY batch_no LIMIT 6",
        (run_id,),
    ).fetchall()
    first_size, retries = sizes[0]
    assert retries >= 2 and first_size == 3200 >> retries
    grown = [r[0] for r in sizes[1:]]
    assert grown == [min(first_size << i, 3200) for i in range(1, 6)]


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


# --- the replica-lag wait, for real inside rotate() -------------------------------------------------------


def fake_replication_lag(conn: psycopg.Connection) -> None:
    """Replaces replication_lag() (same name and signature) by one that reports public.fake_lag.bytes."""
    conn.execute("CREATE TABLE public.fake_lag (bytes bigint)")
    conn.execute("INSERT INTO public.fake_lag VALUES (0)")
    conn.execute(
        "CREATE OR REPLACE FUNCTION token_rotation_internal.replication_lag() RETURNS bigint"
        " LANGUAGE sql VOLATILE"
        " AS 'SELECT bytes FROM public.fake_lag'"
    )


def heartbeat_passes(conn: psycopg.Connection, times: int = 2) -> None:
    """Waits until the waiting worker has checked again `times` times (its slice's heartbeat moves on at
    each check: server state, not a sleep of the test)."""
    for n in range(times):
        row = conn.execute("SELECT max(heartbeat_at) FROM token_rotation.slices").fetchone()
        assert row is not None
        wait_until(lambda: heartbeat_after(conn, row[0]), what=f"heartbeat {n + 1} of the waiting worker")  # noqa: B023


def heartbeat_after(conn: psycopg.Connection, last: object) -> bool:
    row = conn.execute("SELECT max(heartbeat_at) > %s FROM token_rotation.slices", (last,)).fetchone()
    return row == (True,)


LAG_CALL = (
    "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_max_replication_lag => 1048576,"
    " p_quiet => true)"
)


def test_a_replica_lagging_behind_makes_the_run_wait_then_finish(dsn: str, conn: psycopg.Connection) -> None:
    """A lag over p_max_replication_lag (reported by replication_lag()) makes the running CALL stop between
    batches: progress shows the reason and rows done stay put while it lasts; once the lag is gone the run
    goes on and finishes, every row exactly once."""
    make_table(conn, rows=3000)
    before = snapshot(conn)
    fake_replication_lag(conn)
    conn.execute("UPDATE public.fake_lag SET bytes = 200 * 1048576")  # lagging from the start
    call = BackgroundCall(dsn, LAG_CALL, "tr-lag").start()
    wait_until(
        lambda: (
            conn.execute("SELECT throttled FROM token_rotation.progress").fetchone()
            == ("replica lag 200 MB",)
        ),
        what="the run waiting for the replica",
    )
    heartbeat_passes(conn)
    assert rows_done(conn) == 0
    assert conn.execute("SELECT state FROM token_rotation.progress").fetchone() == ("active",)
    conn.execute("UPDATE public.fake_lag SET bytes = 0")
    assert call.join().error is None, call.error
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.parametrize("waiting", ["paused", "replica lag"])
def test_cancel_while_the_run_waits_ends_the_call_and_keeps_every_committed_batch(
    dsn: str, conn: psycopg.Connection, waiting: str
) -> None:
    """cancel() while the worker waits mid-run (paused, or for a lagging replica): the CALL ends without
    error, the run is cancelled with its checkpoints matching the data, and the next CALL starts a new run
    that rotates every row exactly once."""
    make_table(conn, rows=3000)
    before = snapshot(conn)
    fake_replication_lag(conn)
    call = BackgroundCall(dsn, LAG_CALL.replace("p_quiet", "p_sleep => '50ms', p_quiet"), "tr-wait").start()
    wait_until(lambda: rows_done(conn) >= 500, what="batches committed")
    if waiting == "paused":
        conn.execute("SELECT token_rotation.pause('tickets')")
    else:
        conn.execute("UPDATE public.fake_lag SET bytes = 1048577")
    wait_until(
        lambda: (
            conn.execute("SELECT coalesce(throttled, '') FROM token_rotation.progress")
            .fetchone()[0]  # type: ignore[index]
            .startswith(waiting)
        ),
        what=f"the worker waiting: {waiting}",
    )
    done = assert_mid_run(conn, 3000)
    heartbeat_passes(conn, 1)
    assert rows_done(conn) == done
    conn.execute("SELECT token_rotation.cancel('tickets')")
    assert call.join().error is None, call.error
    cancelled = last_run_id(conn)
    state = conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = %s", (cancelled,)).fetchone()
    assert state == ("cancelled",)
    assert assert_checkpoints_match_the_data(conn, before) == done
    conn.execute("UPDATE public.fake_lag SET bytes = 0")
    conn.execute(LAG_CALL)
    assert last_run_id(conn) == cancelled + 1
    assert_rotated_exactly_once(conn, before, cancelled + 1)
