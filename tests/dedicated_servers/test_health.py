"""The health throttles on a real server of their own (one per module, on the embedded PostgreSQL 18 and on
the machine's PostgreSQL 15 binaries), with WAL archiving on and a 1 s autovacuum naptime: a WAL archive
queue that builds up mid-run stops the run until the archiver drains it; a role that may not read the queue
waits, saying which GRANT fixes it, until it is granted; an autovacuum worker on the table holds a run with
--pause-on-autovacuum until it ends. Each run then finishes, every row rotated exactly once. The replica
throttles (replay lag, an unprivileged role's replica lag) are in tests/dedicated_servers/test_replica.py."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from background import (
    BackgroundCall,
    assert_held,
    progress_reasons,
    reap,
    run_cli,
    spawn_cli,
    wait_until,
    wait_while_running,
)
from helpers import (
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    rows_done,
    snapshot,
    throttled,
)
from roles import grant_recipe, temporary_role
from servers import Server, dedicated_server_fixture, dsn_at

pytestmark = [pytest.mark.slow, pytest.mark.own_server]

server = dedicated_server_fixture(
    {
        "archive_mode": "on",
        "archive_command": "false",
        "autovacuum_naptime": "1",
        # a session blocked by an autovacuum worker makes it cancel itself after this (1 s by default)
        "deadlock_timeout": "100ms",
        "max_prepared_transactions": "2",
    }
)


@pytest.fixture
def admin(server: Server) -> Iterator[psycopg.Connection]:
    """A superuser's autocommit connection to the dedicated server."""
    with psycopg.connect(server.dsn, autocommit=True) as connection:
        yield connection


def archive_queue(conn: psycopg.Connection) -> int:
    """WAL files waiting to be archived (.ready), as the server lists them."""
    row = conn.execute("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'").fetchone()
    assert row is not None
    return int(row[0])


def set_archive_command(conn: psycopg.Connection, command: str) -> None:
    """ALTER SYSTEM SET archive_command and reload; returns once this session runs with it (the archiver got
    the same SIGHUP from the postmaster, and adopts it before it archives the next file)."""
    conn.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
    conn.execute("SELECT pg_reload_conf()")
    wait_until(
        lambda: conn.execute("SELECT current_setting('archive_command')").fetchone() == (command,),
        what=f"archive_command {command!r}",
    )


def fill_archive_queue(conn: psycopg.Connection, files: int) -> None:
    """Completes `files` WAL segments (a commit record, then pg_switch_wal()) that the failing
    archive_command leaves waiting, and waits until the server lists them."""
    queued = archive_queue(conn)
    for _ in range(files):
        conn.execute("SELECT txid_current()")  # WAL since the last switch, else pg_switch_wal() does nothing
        conn.execute("SELECT pg_switch_wal()")
    wait_until(lambda: archive_queue(conn) >= queued + files, what=f"{files} more WAL files waiting")


def drained(conn: psycopg.Connection) -> None:
    """archive_command succeeds again ('true'); returns once the archiver has emptied the queue."""
    set_archive_command(conn, "true")
    wait_until(lambda: archive_queue(conn) == 0, what="the archiver to drain the queue")


def test_an_archive_queue_building_up_mid_run_holds_it_until_the_archiver_drains_it(
    server: Server, admin: psycopg.Connection
) -> None:
    """With --max-archive-queue 2, three WAL files left waiting by a failing archive_command mid-run stop the
    run within about a second: its progress (view, --json lines and `status`) says `WAL archive queue` and
    its rows stay put; once archive_command succeeds the archiver drains the queue and the run finishes,
    every row exactly once."""
    table, total = "archive_tickets", 10_000
    drained(admin)
    set_archive_command(admin, "false")
    make_table(admin, table, rows=total)
    before = snapshot(admin, table)
    proc = spawn_cli(
        server.dsn, "tr-archive", "rotate", "--table", table, "--batch-size", "100", "--sleep", "20ms",
        "--max-archive-queue", "2", "--no-reclaim", "--json", "--progress-interval", "0.2",
    )  # fmt: skip
    try:
        wait_while_running(proc, lambda: rows_done(admin, table) >= 500, "batches before the queue builds up")
        fill_archive_queue(admin, 3)
        queued = time.monotonic()
        wait_while_running(
            proc,
            lambda: throttled(admin, table).startswith("WAL archive queue"),
            "the run to wait for the archiver",
        )
        stopped_after = time.monotonic() - queued
        assert_held(admin, total, table)
        status = run_cli(server.dsn, "status", "--json", timeout=30)
        assert '"throttled": "WAL archive queue' in status.stdout, status.stdout
        drained(admin)
        out, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert any(r.startswith("WAL archive queue") for r in progress_reasons(out)), out
    assert stopped_after < 3, f"the run went on for {stopped_after:.1f} s with the queue over its limit"
    assert_rotated_exactly_once(admin, before, last_run_id(admin, table), table)


def test_a_role_that_may_not_read_the_archive_queue_waits_until_granted_pg_monitor(
    server: Server, admin: psycopg.Connection
) -> None:
    """A role with the documented grants but without pg_monitor cannot list pg_wal/archive_status: its CALL
    with p_max_archive_queue waits (the queue is empty: it does not know that), saying `unknown` and the
    GRANT pg_monitor to run in its progress and in a NOTICE; after that GRANT it finishes, exactly once."""
    table, total = "role_tickets", 3000
    drained(admin)
    make_table(admin, table, rows=total)
    before = snapshot(admin, table)
    with temporary_role(admin, "tr_nomonitor") as role:
        grant_recipe(admin, role, skip="public.tickets")  # the recipe's table is another one here
        admin.execute(
            sql.SQL("GRANT SELECT, UPDATE ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role))
        )
        admin.execute(sql.SQL("REVOKE pg_monitor FROM {}").format(sql.Identifier(role)))  # all of it but this
        call = BackgroundCall(
            dsn_at(server.pgdata, role),
            f"CALL token_rotation.rotate('{table}', p_batch_size => 500, p_max_archive_queue => 5)",
            "tr-nomonitor",
        ).start()
        wait_until(
            lambda: not call.running() or "unknown" in throttled(admin, table), what="the run to wait, blind"
        )
        assert call.running(), f"the CALL ended without waiting: {call.error or 'no error'}"
        reason = throttled(admin, table)
        assert reason.startswith("WAL archive queue") and "pg_monitor" in reason and role in reason, reason
        assert_held(admin, total, table)
        admin.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))
        assert call.join().error is None, call.error
    assert any(
        n.startswith(f"run {last_run_id(admin, table)}: waiting: WAL archive queue unknown")
        and "pg_monitor" in n
        for n in call.notices
    ), call.notices
    assert_rotated_exactly_once(admin, before, last_run_id(admin, table), table)


def autovacuum_on(conn: psycopg.Connection, table: str) -> list[int]:
    """Pids of the autovacuum workers processing the table now (pg_stat_progress_vacuum)."""
    rows = conn.execute(
        "SELECT p.pid FROM pg_stat_progress_vacuum p JOIN pg_stat_activity a USING (pid)"
        " WHERE p.relid = to_regclass(%s) AND a.backend_type = 'autovacuum worker'",
        (table,),
    ).fetchall()
    return [int(r[0]) for r in rows]


@pytest.mark.parametrize("least_privilege", [False, True], ids=["superuser", "without-pg_monitor"])
def test_an_autovacuum_worker_on_the_table_holds_a_run_that_pauses_on_autovacuum(
    server: Server, admin: psycopg.Connection, least_privilege: bool
) -> None:
    """An autovacuum worker slowed down to a crawl works on the table (dead tuples, thresholds 0, cost limit
    1): a run with --pause-on-autovacuum waits, its progress saying `autovacuum` with the worker's pid, and
    its rows stay put; once the autovacuum ends (autovacuum_enabled = false makes it cancel itself), the
    run goes on and finishes, every row exactly once. The same for a role with the documented grants but
    without pg_monitor: the worker's relation is read from pg_locks, which needs no privilege."""
    with contextlib.ExitStack() as stack:
        dsn, role = server.dsn, None
        if least_privilege:
            role = stack.enter_context(temporary_role(admin, "tr_vacuum"))
            grant_recipe(admin, role, skip="public.tickets")  # the recipe's table is another one here
            admin.execute(sql.SQL("REVOKE pg_monitor FROM {}").format(sql.Identifier(role)))
            dsn = dsn_at(server.pgdata, role)
        autovacuum_holds_the_run(admin, dsn, "vacuum_tickets", role)


def autovacuum_holds_the_run(admin: psycopg.Connection, dsn: str, table: str, role: str | None) -> None:
    total = 8000
    admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    make_table(admin, table, rows=total)
    if role is not None:
        admin.execute(
            sql.SQL("GRANT SELECT, UPDATE ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role))
        )
    admin.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(sql.Identifier(table)))
    admin.execute(sql.SQL("UPDATE {} SET status = status + 1").format(sql.Identifier(table)))  # dead tuples
    before = snapshot(admin, table)
    admin.execute(
        sql.SQL(
            "ALTER TABLE {} SET (autovacuum_enabled = true, autovacuum_vacuum_threshold = 0,"
            " autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100,"
            " autovacuum_vacuum_cost_limit = 1)"
        ).format(sql.Identifier(table))
    )
    wait_until(lambda: bool(autovacuum_on(admin, table)), what="an autovacuum worker on the table")
    (pid,) = autovacuum_on(admin, table)
    proc = spawn_cli(
        dsn, "tr-autovacuum", "rotate", "--table", table, "--batch-size", "200", "--sleep", "20ms",
        "--pause-on-autovacuum", "--no-reclaim", "--json", "--progress-interval", "0.2",
    )  # fmt: skip
    try:
        wait_while_running(proc, lambda: throttled(admin, table).startswith("autovacuum"), "the run to wait")
        assert f"pid {pid}" in throttled(admin, table), throttled(admin, table)
        assert_held(admin, total, table)
        assert autovacuum_on(admin, table) == [pid], "the autovacuum ended before the test ended it"
        admin.execute(
            sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(sql.Identifier(table))
        )
        wait_until(lambda: autovacuum_on(admin, table) == [], what="the autovacuum to end")
        out, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert any(r.startswith("autovacuum") for r in progress_reasons(out)), out
    assert_rotated_exactly_once(admin, before, last_run_id(admin, table), table)


def test_a_prepared_transaction_that_holds_the_xmin_horizon_is_named(
    server: Server, admin: psycopg.Connection
) -> None:
    """A prepared transaction keeps VACUUM from reclaiming what the run leaves: the CLI's note after a
    reclaim VACUUM names it by its gid, as token_rotation.xmin_holders() does in psql; once it is rolled
    back, nothing is named."""
    table = "prepared_tickets"
    admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    make_table(admin, table, rows=20_000)
    admin.execute("CREATE TABLE IF NOT EXISTS public.elsewhere (i int)")
    with psycopg.connect(server.dsn, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("INSERT INTO public.elsewhere VALUES (1)")  # an xid
        holder.execute("PREPARE TRANSACTION 'tr-held'")
    try:
        done = run_cli(server.dsn, "rotate", "--table", table, "--reclaim-every", "20", "--batch-size", "500",
                       "--sleep", "50ms", "--json", "--progress-interval", "0.2")  # fmt: skip
        assert done.returncode == 0, done.stderr
        named = [json.loads(line).get("xmin_holders") or "" for line in done.stdout.splitlines()]
        assert any("prepared transaction 'tr-held'" in n for n in named), done.stdout
        row = admin.execute("SELECT token_rotation.xmin_holders(now())").fetchone()
        assert row is not None and "prepared transaction 'tr-held' (prepared at" in row[0], row
    finally:
        admin.execute("ROLLBACK PREPARED 'tr-held'")
    assert admin.execute("SELECT token_rotation.xmin_holders(now())").fetchone() == (None,)
