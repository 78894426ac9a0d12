"""A run that goes on, retuned and held from outside: set_options() (and `token-rotation set`) taken at the
next batch, hold() (and `token-rotation hold`), the CLI's --throttle-query, and the health limits on the test
server itself (no replica, archiving off: they let the run go; a role without pg_monitor waits and is told
which grant it lacks). Replicas, the archiver and autovacuum for real: test_health.py, test_replica.py."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from background import BackgroundCall, run_cli, spawn_cli, wait_until
from helpers import assert_rotated_exactly_once, last_run_id, make_table, rows_done, snapshot
from roles import grant_recipe, temporary_role

SLOW_CALL = "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '50ms', p_quiet => true)"


def throttled(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT coalesce(throttled, '') FROM token_rotation.progress ORDER BY run_id DESC"
    ).fetchone()
    return str(row[0]) if row else ""


def batch_sizes(conn: psycopg.Connection, run_id: int) -> list[int]:
    rows = conn.execute(
        "SELECT batch_size FROM token_rotation.batches WHERE run_id = %s ORDER BY batch_no", (run_id,)
    ).fetchall()
    return [int(r[0]) for r in rows]


def test_set_options_is_taken_at_the_next_batch_and_kept_by_the_run(
    dsn: str, conn: psycopg.Connection
) -> None:
    """set_options() from another session while a CALL goes on: the worker's next batches have the new size
    and no sleep between them; the NOTICE says what changed; the run keeps the values (runs.options) and
    rotates every row exactly once."""
    make_table(conn, rows=6000)
    before = snapshot(conn)
    call = BackgroundCall(dsn, SLOW_CALL, "tr-retune").start()
    wait_until(lambda: rows_done(conn) >= 500, what="five batches")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SELECT token_rotation.set_options('tickets', p_batch_size => 700, p_sleep => '0')")
    assert notices and "batch_size 100 -> 700" in notices[0] and "sleep 00:00:00.05 -> 00:00:00" in notices[0]
    assert call.join().error is None, call.error
    run_id = last_run_id(conn)
    assert_rotated_exactly_once(conn, before, run_id)
    sizes = batch_sizes(conn, run_id)
    changed = sizes.index(700)
    assert set(sizes[:changed]) == {100} and changed >= 5
    assert set(sizes[changed:-1]) == {700}, sizes  # the last batch may be short
    kept = conn.execute("SELECT options FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert kept is not None and kept[0]["batch_size"] == 700 and kept[0]["sleep"] == "00:00:00"


def test_set_options_refuses_what_it_cannot_change(conn: psycopg.Connection) -> None:
    """No open run, an option that cannot be unset, an out-of-range value: each refused, changing nothing."""
    make_table(conn, rows=1000)
    with pytest.raises(psycopg.errors.NoDataFound, match="has no open run"):
        conn.execute("SELECT token_rotation.set_options('tickets', p_sleep => '1s')")
    conn.execute(SLOW_CALL.replace("p_quiet", "p_max_batches => 1, p_quiet"))
    stored = conn.execute("SELECT options FROM token_rotation.runs").fetchone()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="cannot unset column"):
        conn.execute("SELECT token_rotation.set_options('tickets', p_unset => '{column}')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="must not be negative"):
        conn.execute("SELECT token_rotation.set_options('tickets', p_sleep => '-1s')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="batch size must be between"):
        conn.execute("SELECT token_rotation.set_options('tickets', p_batch_size => 0)")
    assert conn.execute("SELECT options FROM token_rotation.runs").fetchone() == stored


def test_the_set_command_retunes_a_running_run(dsn: str, conn: psycopg.Connection) -> None:
    """`token-rotation set` on a run that goes on prints what changed; --batch-size alone means fixed batches
    (it unsets the target batch time of an adaptive run); on a table without an open run it exits 2."""
    make_table(conn, rows=20_000)
    before = snapshot(conn)
    call = BackgroundCall(  # adaptive batches of 1 ms: the smallest, 100 rows, with a sleep of 50 ms
        dsn, SLOW_CALL.replace("p_quiet", "p_target_batch_time => '1ms', p_quiet"), "tr-set"
    ).start()
    wait_until(lambda: rows_done(conn) >= 300, what="batches")
    same = run_cli(dsn, "set", "--table", "tickets", "--sleep", "50ms")
    assert same.returncode == 0 and "no option changed" in same.stdout, same.stderr
    done = run_cli(dsn, "set", "--table", "tickets", "--batch-size", "900", "--sleep", "0")
    assert done.returncode == 0, done.stderr
    assert "batch_size 100 -> 900" in done.stdout and "target_batch_time 00:00:00.001 -> none" in done.stdout
    assert "its workers take them at their next batch" in done.stdout
    assert call.join().error is None, call.error
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    assert 900 in batch_sizes(conn, last_run_id(conn))
    shown = run_cli(dsn, "status", "--table", "tickets", "--json")
    options = json.loads(shown.stdout.splitlines()[0])["options"]
    assert options["batch_size"] == 900 and options["sleep"] == "00:00:00"
    assert "target_batch_time" not in options
    none = run_cli(dsn, "set", "--table", "tickets", "--sleep", "1s")
    assert none.returncode == 2 and "has no open run" in none.stderr


def test_a_hold_makes_the_workers_wait_until_it_runs_out_or_is_lifted(
    dsn: str, conn: psycopg.Connection
) -> None:
    """hold() while a CALL goes on: the worker waits with the hold's reason (rows stay put) until the hold
    runs out; `token-rotation hold` holds again and, without --reason, lifts it; the run finishes once."""
    make_table(conn, rows=4000)
    before = snapshot(conn)
    call = BackgroundCall(dsn, SLOW_CALL, "tr-hold").start()
    wait_until(lambda: rows_done(conn) >= 300, what="batches")
    conn.execute("SELECT token_rotation.hold('tickets', 'backup running', '2 seconds')")
    wait_until(lambda: throttled(conn) == "backup running", what="the worker held")
    held = rows_done(conn)
    wait_until(lambda: rows_done(conn) > held, what="the hold to run out", timeout=10)
    done = run_cli(dsn, "hold", "--table", "tickets", "--reason", "month end", "--for", "1h")
    assert done.returncode == 0 and "held run" in done.stdout and "month end" in done.stdout, done.stderr
    wait_until(lambda: throttled(conn) == "month end", what="the worker held again")
    assert conn.execute("SELECT held FROM token_rotation.progress").fetchone() == ("month end",)
    lifted = run_cli(dsn, "hold", "--table", "tickets")
    assert lifted.returncode == 0 and "lifted the hold" in lifted.stdout
    assert call.join().error is None, call.error
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="needs a reason"):
        conn.execute("SELECT token_rotation.hold('tickets', ' ')")


def test_the_throttle_query_holds_the_run_while_it_says_wait_or_fails(
    dsn: str, conn: psycopg.Connection
) -> None:
    """--throttle-query: true makes the run wait (its reason in progress), an error or a timeout too (reported
    by class and SQLSTATE), false lets it go on; at the end the driver's hold is lifted."""
    make_table(conn, rows=8000)
    before = snapshot(conn)
    conn.execute("CREATE TABLE public.gate (wait boolean, pause float8)")
    conn.execute("INSERT INTO public.gate VALUES (false, 0)")
    query = "SELECT wait FROM public.gate WHERE pg_sleep(pause) IS NOT NULL"
    proc = spawn_cli(
        dsn, "tr-gate", "rotate", "--table", "tickets", "--batch-size", "100", "--sleep", "50ms",
        "--no-reclaim", "--json", "--progress-interval", "0.2", "--throttle-query", query,
    )  # fmt: skip
    try:
        wait_until(lambda: rows_done(conn) >= 300, what="batches")
        for change, reason in [
            ("wait = true", "throttle query says wait"),
            ("pause = 3, wait = false", "throttle query failed: over its 1000 ms statement_timeout"),
        ]:
            conn.execute(f"UPDATE public.gate SET {change}")
            wait_until(lambda: throttled(conn) == reason, what=reason, timeout=15)  # noqa: B023
            held = rows_done(conn)
            wait_until(lambda: throttled(conn) == reason, what="still waiting")  # noqa: B023
            assert rows_done(conn) == held
        conn.execute("ALTER TABLE public.gate RENAME TO gone")
        failed = "throttle query failed: UndefinedTable (SQLSTATE 42P01)"
        wait_until(lambda: throttled(conn) == failed, what="the failing query")
        conn.execute("ALTER TABLE public.gone RENAME TO gate")
        conn.execute("UPDATE public.gate SET pause = 0, wait = NULL")  # NULL: go
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert '"throttle_query": "throttle query failed: UndefinedTable (SQLSTATE 42P01)"' in out
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    hold = conn.execute("SELECT hold_reason, hold_until FROM token_rotation.runs").fetchone()
    assert hold == (None, None)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT 1", "must return one boolean column"),
        ("SELECT true, false", "must return one boolean column"),
        ("SELECT true FROM generate_series(1, 2)", "must return at most one row"),
        ("SELEKT true", "--throttle-query failed: syntax error"),
        ("SELECT true; DROP TABLE tickets", "--throttle-query failed: syntax error"),
        ("WITH d AS (DELETE FROM tickets RETURNING 1) SELECT true", "data-modifying statement"),
        ("SELECT nextval('public.some_sequence') > 0", "in a read-only transaction"),
        ("SELECT pg_sleep(3) IS NULL", "canceling statement due to statement timeout"),
        ("  ", "--throttle-query is empty"),
    ],
)
def test_a_throttle_query_that_cannot_serve_is_refused_before_any_change(
    dsn: str, conn: psycopg.Connection, query: str, message: str
) -> None:
    """A query that does not return one boolean in at most one row, fails, writes or times out is refused
    (exit 2) before the run starts: no run, no token changed, the table intact."""
    make_table(conn, rows=500)
    conn.execute("CREATE SEQUENCE public.some_sequence")
    before = snapshot(conn)
    done = run_cli(dsn, "rotate", "--table", "tickets", "--throttle-query", query)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert snapshot(conn).tokens == before.tokens
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_health_limits_without_replicas_or_archiving_let_the_run_go(conn: psycopg.Connection) -> None:
    """Every health limit set on a server with no replica, archiving off and no autovacuum on the table:
    each signal is read (0 lag, 0 files) and the run rotates every row exactly once."""
    make_table(conn, rows=2000)
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 300, p_max_replication_lag => 0,"
        " p_max_replay_lag => '0', p_max_archive_queue => 0, p_pause_on_autovacuum => true, p_quiet => true)"
    )
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    signals = conn.execute(
        "SELECT token_rotation_internal.archive_queue(), token_rotation_internal.replay_lag()"
    ).fetchone()
    assert signals == (0, timedelta(0))


def test_a_role_without_pg_monitor_waits_for_the_archive_queue_and_is_told_the_grant(
    dsn: str, conn: psycopg.Connection
) -> None:
    """pg_ls_archive_statusdir() needs pg_monitor: a role without it that sets --max-archive-queue waits,
    its reason naming the grant (not "no queue"); once granted, the run finishes exactly once."""
    make_table(conn, rows=1500)
    before = snapshot(conn)
    with temporary_role(conn, "tr_nomon") as role:
        grant_recipe(conn, role, skip="pg_monitor")
        role_dsn = f"{dsn} user={role}"
        call = BackgroundCall(
            role_dsn,
            "CALL token_rotation.rotate('tickets', p_batch_size => 300, p_max_archive_queue => 10,"
            " p_quiet => true)",
            "tr-nomon",
        ).start()
        wait_until(
            lambda: throttled(conn) == f"WAL archive queue unknown: GRANT pg_monitor TO {role}",
            what="the worker waiting for a queue it cannot read",
        )
        assert rows_done(conn) == 0
        conn.execute(f"GRANT pg_monitor TO {role}")
        assert call.join().error is None, call.error
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
