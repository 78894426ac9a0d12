"""Faults on purpose, at the SQL level: backends terminated, a server crash, row locks held by the
application, concurrent application load, the tool's tables not writable. Every test ends with the same
check after resuming: helpers.assert_rotated_exactly_once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from background import (
    BackgroundCall,
    backends,
    batches_done,
    finish_run,
    hold_rows,
    terminate,
    wait_until,
    waiting_for_locks,
)
from helpers import (
    Snapshot,
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
)
from roles import temporary_role
from servers import BINARIES, bindir_of, dedicated_server, start, stop

ROWS = 3000


def rotate_call(batch: int = 50, sleep: str = "0.01s", **extra: object) -> str:
    """The CALL the tests interrupt: small batches and a short sleep, so a run lasts a second or two."""
    args = "".join(f", {k} => {v}" for k, v in extra.items())
    return (
        f"CALL token_rotation.rotate('tickets', p_batch_size => {batch}, p_sleep => '{sleep}',"
        f" p_quiet => true{args})"
    )


# --- pg_terminate_backend -----------------------------------------------------------------------------------


def rows_done(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(sum(rows_done), 0) FROM token_rotation.slices").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("batch", [2, 31, 60], ids=["early", "middle", "last-batch"])
def test_terminated_backend_keeps_its_committed_batches_and_the_next_call_resumes(
    dsn: str, conn: psycopg.Connection, batch: int
) -> None:
    """pg_terminate_backend of the rotating backend in the middle of a batch (the 2nd, 31st or last, each
    waiting for a row the application holds) loses no committed batch and keeps no uncommitted one; the next
    CALL resumes (no "already running") and covers every key once."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    holder = hold_rows(dsn, batch)
    call = BackgroundCall(dsn, rotate_call(sleep="0", p_lock_timeout="'60s'"), "tr-fault-terminate").start()
    wait_until(lambda: waiting_for_locks(conn, "tr-fault-terminate") == 1, what=f"the CALL in batch {batch}")
    assert assert_mid_run(conn, ROWS) == (batch - 1) * 50
    (pid,) = backends(conn, "tr-fault-terminate")
    terminate(conn, pid)
    holder.rollback()
    holder.close()
    call.join()
    assert isinstance(call.error, psycopg.OperationalError)
    assert conn.execute("SELECT state FROM token_rotation.runs").fetchone() == ("active",)
    assert rows_done(conn) == (batch - 1) * 50
    assert_checkpoints_match_the_data(conn, before)
    conn.execute(rotate_call(sleep="0"))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_terminated_backend_between_two_batches_loses_nothing(dsn: str, conn: psycopg.Connection) -> None:
    """pg_terminate_backend while the CALL sleeps between batches (p_sleep of a minute, so it is surely
    asleep, as pg_stat_activity shows, when terminated): same guarantees."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    call = BackgroundCall(dsn, rotate_call(sleep="60s"), "tr-fault-sleeping").start()

    def asleep_after_a_batch() -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tr-fault-sleeping'"
            " AND wait_event = 'PgSleep'"
        ).fetchone()
        return row == (1,) and batches_done(conn) >= 1

    wait_until(asleep_after_a_batch, what="the CALL asleep between batches")
    assert assert_mid_run(conn, ROWS) == 50
    (pid,) = backends(conn, "tr-fault-sleeping")
    terminate(conn, pid)
    call.join()
    assert isinstance(call.error, psycopg.OperationalError)
    assert assert_checkpoints_match_the_data(conn, before) == 50
    conn.execute(rotate_call(sleep="0"))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.parametrize("victims", [1, 3], ids=["one-of-three", "all-three"])
def test_terminated_workers_leave_their_slices_resumable(
    dsn: str, conn: psycopg.Connection, victims: int
) -> None:
    """With three workers (three sessions CALLing with p_workers => 3, slices of 1,000 rows), each waiting in
    the middle of its slice, terminating one or all of them keeps each slice's committed batches; the
    survivors finish their slices, later CALLs finish the rest."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    holder = hold_rows(dsn, 10, 30, 50)
    calls = [
        BackgroundCall(
            dsn, rotate_call(sleep="0", p_workers=3, p_lock_timeout="'60s'"), f"tr-fault-w{i}"
        ).start()
        for i in range(3)
    ]
    wait_until(
        lambda: sum(waiting_for_locks(conn, c.application_name) for c in calls) == 3,
        what="three workers in the middle of their slices",
    )
    for call in calls[:victims]:
        (pid,) = backends(conn, call.application_name)
        terminate(conn, pid)
    holder.rollback()
    holder.close()
    for call in calls:
        call.join()
    assert all(isinstance(c.error, psycopg.OperationalError) for c in calls[:victims])
    assert all(c.error is None for c in calls[victims:])
    assert conn.execute("SELECT count(*) FROM token_rotation.slices WHERE NOT done").fetchone() == (victims,)
    assert_checkpoints_match_the_data(conn, before)
    finish_run(conn, rotate_call(sleep="0", p_workers=3))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_cancelled_statement_stops_cleanly_and_the_next_call_resumes(
    dsn: str, conn: psycopg.Connection
) -> None:
    """pg_cancel_backend (what Ctrl-C in psql sends) ends the CALL with SQLSTATE 57014 and a hint to CALL
    again; the batch in flight is rolled back, the run stays open and resumes from its checkpoint."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    holder = hold_rows(dsn, 10)
    call = BackgroundCall(dsn, rotate_call(sleep="0", p_lock_timeout="'60s'"), "tr-fault-cancel").start()
    wait_until(lambda: waiting_for_locks(conn, "tr-fault-cancel") == 1, what="the CALL in batch 10")
    (pid,) = backends(conn, "tr-fault-cancel")
    conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
    call.join()
    holder.rollback()
    holder.close()
    assert isinstance(call.error, psycopg.errors.QueryCanceled)
    assert "again to resume" in (call.error.diag.message_hint or "")
    state, error = conn.execute("SELECT state, last_error FROM token_rotation.runs").fetchone()  # type: ignore[misc]
    assert state == "active" and error.startswith("57014")
    assert rows_done(conn) == 9 * 50
    assert_checkpoints_match_the_data(conn, before)
    conn.execute(rotate_call(sleep="0"))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_paused_run_whose_worker_dies_stays_paused_and_resumes_when_asked(
    dsn: str, conn: psycopg.Connection
) -> None:
    """pause(), then the waiting worker is terminated: the run stays paused (not stuck in between, its slice
    free); a new CALL waits while it is paused, and unpause() lets that CALL finish the run exactly once."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    call = BackgroundCall(dsn, rotate_call(sleep="0.05s"), "tr-fault-paused").start()
    wait_until(lambda: batches_done(conn) >= 3, what="batches committed")
    conn.execute("SELECT token_rotation.pause('tickets')")
    wait_until(lambda: throttled(conn) == "paused", what="the worker waiting, paused")
    paused_at = batches_done(conn)
    (pid,) = backends(conn, "tr-fault-paused")
    terminate(conn, pid)
    call.join()
    assert conn.execute("SELECT state FROM token_rotation.runs").fetchone() == ("paused",)
    assert_checkpoints_match_the_data(conn, before)
    again = BackgroundCall(dsn, rotate_call(sleep="0"), "tr-fault-paused-again").start()
    wait_until(lambda: len(backends(conn, "tr-fault-paused-again")) == 1, what="the new CALL")
    (new_pid,) = backends(conn, "tr-fault-paused-again")
    wait_until(
        lambda: (
            conn.execute(
                "SELECT throttled FROM token_rotation.slices WHERE backend_pid = %s", (new_pid,)
            ).fetchone()
            == ("paused",)
        ),
        what="the new CALL's own slice waiting, paused",
    )
    assert batches_done(conn) == paused_at
    conn.execute("SELECT token_rotation.unpause('tickets')")
    again.join()
    assert again.error is None
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_statement_timeout_of_the_callers_role_stops_the_call_cleanly(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A statement_timeout set on the caller (a role or database default, here the session) cancels the
    long CALL like Ctrl-C: 57014, the reason in DETAIL, committed batches kept; CALLs resume until done."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    # 1.5 s: the CALL is in its batches by then, even on a loaded machine (60 batches of 0.1 s: 6 s)
    conn.execute("SET statement_timeout = '1500ms'")
    with pytest.raises(psycopg.errors.QueryCanceled) as stopped:
        conn.execute(rotate_call(sleep="0.1s"))
    assert "statement timeout" in (stopped.value.diag.message_detail or "")
    assert 0 < rows_done(conn) < ROWS
    assert_checkpoints_match_the_data(conn, before)
    conn.execute("RESET statement_timeout")
    conn.execute(rotate_call(sleep="0"))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_tokens_that_keep_colliding_stop_the_call_without_quoting_a_token(conn: psycopg.Connection) -> None:
    """A batch whose new token collides every time (forced by a trigger) is retried, then the CALL stops
    with 23505 and no DETAIL (PostgreSQL's would quote the token); once the cause is gone, CALL resumes."""
    make_table(conn, rows=1000)
    before = snapshot(conn)
    conn.execute("""
        CREATE FUNCTION force_collision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = 550000 THEN
                NEW.token := (SELECT token FROM tickets WHERE id = 1000000);
            END IF;
            RETURN NEW;
        END $$""")
    conn.execute(
        "CREATE TRIGGER force_collision BEFORE UPDATE ON tickets"
        " FOR EACH ROW EXECUTE FUNCTION force_collision()"
    )
    with pytest.raises(psycopg.errors.UniqueViolation) as stopped:
        conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    diag = stopped.value.diag
    assert "collided" in (diag.message_primary or "")
    quotes_a_token = "Key (" in str(stopped.value) or before.tokens["1000000"] in str(stopped.value)
    assert not quotes_a_token  # (a bare boolean: pytest would print a compared token)
    assert rows_done(conn) == 500
    assert_checkpoints_match_the_data(conn, before)
    conn.execute("DROP TRIGGER force_collision ON tickets")
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.parametrize(
    "key_type, key_expr",
    [
        ("timestamp", "timestamp '2026-01-01' + g * interval '1 day'"),
        ("date", "date '2026-01-01' + g"),
        ("double precision", "g / 3.0"),
    ],
)
def test_a_resume_under_other_session_settings_reads_the_checkpoint_the_same_way(
    conn: psycopg.Connection, key_type: str, key_expr: str
) -> None:
    """Checkpoints are keys stored as text: a run started under DateStyle 'SQL, DMY' (checkpoint 05/03, the
    5th of March) and resumed under 'SQL, MDY' (where 05/03 is the 3rd of May), or with float keys printed
    with fewer digits, still covers every key exactly once: the procedure pins the settings it depends on."""
    make_table(conn, rows=400, key_type=key_type, key_expr=key_expr)
    before = snapshot(conn)
    conn.execute("SET DateStyle = 'SQL, DMY'")
    conn.execute("SET extra_float_digits = 0")
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 63, p_max_batches => 1, p_quiet => true)"
    )
    conn.execute("SET DateStyle = 'SQL, MDY'")
    conn.execute("SET extra_float_digits = -10")
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 63, p_quiet => true)")
    conn.execute("RESET DateStyle")
    conn.execute("RESET extra_float_digits")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


# --- server crash -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.own_server
@pytest.mark.parametrize("version", BINARIES)
@pytest.mark.parametrize("synchronous_commit", [True, False], ids=["sync-commit", "async-commit"])
def test_server_crash_mid_run_resumes_after_restart(
    tmp_path: Path, version: str, synchronous_commit: bool
) -> None:
    """An immediate shutdown of a dedicated server (PostgreSQL 18 and 15) in the middle of a batch (crash
    recovery on restart) keeps checkpoints and data in step, also with p_synchronous_commit => false, which
    (wal_writer_delay at 10 s here) may lose the last committed batches, but only together with their
    checkpoints; the next CALL resumes and covers every key once."""
    bindir = bindir_of(version)
    with dedicated_server(tmp_path, bindir) as made:
        url = made.dsn
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            c.execute("SELECT pg_reload_conf()")
            make_table(c, rows=ROWS)
            c.execute("CHECKPOINT")
            before = snapshot(c)
        holder = hold_rows(url, 30)
        sync = str(synchronous_commit).lower()
        call = BackgroundCall(
            url, rotate_call(sleep="0", p_lock_timeout="'60s'", p_synchronous_commit=sync), "tr-crash"
        ).start()
        with psycopg.connect(url, autocommit=True) as c:
            wait_until(lambda: waiting_for_locks(c, "tr-crash") == 1, what="the CALL in batch 30")
            committed = rows_done(c)
            stop(bindir, made.pgdata)  # -m immediate: a crash, recovered at the next start
        call.join()
        holder.close()
        assert isinstance(call.error, psycopg.OperationalError)
        start(bindir, made.pgdata)
        with psycopg.connect(url, autocommit=True) as c:
            survived = rows_done(c)
            assert survived == committed if synchronous_commit else survived <= committed
            assert c.execute("SELECT state FROM token_rotation.runs").fetchone() == ("active",)
            assert_checkpoints_match_the_data(c, before)
            c.execute(rotate_call(sleep="0"))
            assert_rotated_exactly_once(c, before, last_run_id(c))


# --- row locks held by the application ----------------------------------------------------------------------

LOCKED_KEY = 1450 * 1000  # bigint keys are g * 1000: row 1450, in the 15th batch of 100


def lock_row(dsn: str, key: int = LOCKED_KEY) -> psycopg.Connection:
    """An application transaction that holds a row lock (SELECT ... FOR UPDATE) until it ends."""
    app = psycopg.connect(dsn, application_name="tr-app")
    app.execute("SELECT 1 FROM tickets WHERE id = %s FOR UPDATE", (key,))
    return app


def throttled(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT coalesce(max(throttled), '') FROM token_rotation.slices").fetchone()
    return str(row[0]) if row else ""


def test_rows_locked_for_a_while_are_waited_for_not_skipped(dsn: str, conn: psycopg.Connection) -> None:
    """A row of a coming batch locked by the application beyond the lock timeout: the rotation backs off,
    retries with smaller batches, and once the lock goes rotates that row too and finishes the run."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    app = lock_row(dsn)
    call = BackgroundCall(
        dsn, rotate_call(batch=100, sleep="0", p_lock_timeout="'100ms'", p_lock_retries=30), "tr-locked"
    ).start()
    wait_until(lambda: throttled(conn).startswith("lock timeout 2 of"), what="two lock timeouts")
    assert conn.execute(
        "SELECT last_key[1]::bigint < %s FROM token_rotation.slices", (LOCKED_KEY,)
    ).fetchone() == (True,)
    assert_mid_run(conn, ROWS)
    assert_checkpoints_match_the_data(conn, before)
    released = conn.execute("SELECT clock_timestamp()").fetchone()
    app.rollback()
    app.close()
    call.join()
    assert call.error is None
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    retried = conn.execute(
        "SELECT finished_at > %s, (SELECT sum(retries) > 0 FROM token_rotation.batches)"
        " FROM token_rotation.batches WHERE after_key[1]::bigint < %s AND last_key[1]::bigint >= %s",
        (released[0], LOCKED_KEY, LOCKED_KEY),  # type: ignore[index]
    ).fetchone()
    assert retried == (True, True)


def test_rows_locked_through_every_retry_stop_the_call_cleanly_and_it_resumes(
    dsn: str, conn: psycopg.Connection
) -> None:
    """Locks held through every retry end the CALL with SQLSTATE 55P03 and a hint; the locked row keeps its
    old token (not skipped: the checkpoint stops before it); the next CALL, once the lock is gone, resumes."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    app = lock_row(dsn)
    started = time.monotonic()
    with pytest.raises(psycopg.errors.LockNotAvailable) as stopped:
        conn.execute(rotate_call(batch=100, sleep="0", p_lock_timeout="'50ms'", p_lock_retries=2))
    assert time.monotonic() - started < 10
    assert "CALL again to resume" in (stopped.value.diag.message_hint or "")
    app.rollback()
    state, error, checkpoint = conn.execute(
        "SELECT r.state, r.last_error, s.last_key[1]::bigint"
        " FROM token_rotation.runs r JOIN token_rotation.slices s USING (run_id)"
    ).fetchone()  # type: ignore[misc]
    assert state == "active" and error.startswith("55P03") and checkpoint < LOCKED_KEY
    done = assert_mid_run(conn, ROWS)
    assert 1400 <= done < 1450  # the 14 batches before the locked row, then halved ones up to it
    assert assert_checkpoints_match_the_data(conn, before) == done
    app.close()
    conn.execute(rotate_call(batch=100, sleep="0"))
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_an_application_that_would_deadlock_with_a_batch_is_not_the_victim(
    dsn: str, conn: psycopg.Connection
) -> None:
    """The application locks a row of a batch, the batch waits for it, then the application updates an
    earlier row of that batch (a deadlock): the application's statement succeeds (the rotation yields, as
    the first waiter it runs the deadlock check first), and the rotation retries the batch and finishes."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    app = lock_row(dsn)
    call = BackgroundCall(
        dsn, rotate_call(batch=100, sleep="0", p_lock_timeout="'10s'"), "tr-deadlock"
    ).start()
    wait_until(
        lambda: (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'tr-deadlock' AND wait_event_type = 'Lock'"
            ).fetchone()
            == (1,)
        ),
        what="the batch waiting for the application's lock",
    )
    assert assert_mid_run(conn, ROWS) == 1400
    assert_checkpoints_match_the_data(conn, before)
    app.execute("UPDATE tickets SET status = status WHERE id = %s", (LOCKED_KEY - 20 * 1000,))
    app.commit()
    app.close()
    call.join()
    assert call.error is None, f"rotation failed: {call.error!r}"
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    retried = conn.execute(
        "SELECT retries FROM token_rotation.batches"
        " WHERE after_key[1]::bigint < %s AND last_key[1]::bigint >= %s",
        (LOCKED_KEY, LOCKED_KEY),
    ).fetchone()
    assert retried is not None and retried[0] >= 1, "no deadlock happened: the batch was not retried"


# --- concurrent application load ----------------------------------------------------------------------------


@pytest.mark.slow
def test_application_load_for_the_whole_run_loses_no_update_and_sees_no_error(
    dsn: str, conn: psycopg.Connection
) -> None:
    """Three application threads insert, update other columns of and delete tickets for the whole run:
    none of their statements fails, none waits more than a few seconds, every update survives, and every
    original row still there is rotated exactly once."""
    rows = 4000
    make_table(conn, rows=rows)
    before = snapshot(conn)
    keys = [g * 1000 for g in range(1, rows + 1)]
    rng = random.Random(5)
    doomed = rng.sample(keys, 400)
    titles: dict[int, str] = {}  # the last title the application wrote to each row
    deleted: set[int] = set()
    errors: list[BaseException] = []
    waits: list[float] = []
    statements = [0]
    rotating = threading.Event()
    rotating.set()

    def app(name: str, step: Callable[[psycopg.Connection, int], None]) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=name) as c:
                for i in range(100_000):  # bounded; ends soon after the rotation
                    if not rotating.is_set():
                        break
                    started = time.monotonic()
                    step(c, i)
                    waits.append(time.monotonic() - started)
                    statements[0] += 1
                    time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    def update(c: psycopg.Connection, i: int) -> None:
        key = rng.choice(keys)
        if key in doomed:
            return
        title = f"updated {i}"
        c.execute("UPDATE tickets SET title = %s, amount = 0 WHERE id = %s", (title, key))
        titles[key] = title

    def insert(c: psycopg.Connection, i: int) -> None:
        key = keys[i % rows] + 1 + i // rows if i % 2 else (rows + 1 + i) * 1000  # between and beyond
        c.execute("INSERT INTO tickets (id, title, status, created_at) VALUES (%s, 'new', 0, now())", (key,))

    def delete(c: psycopg.Connection, i: int) -> None:
        if i < len(doomed):
            c.execute("DELETE FROM tickets WHERE id = %s", (doomed[i],))
            deleted.add(doomed[i])

    threads = [
        threading.Thread(target=app, args=(f"tr-app-{step.__name__}", step), daemon=True)
        for step in (update, insert, delete)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: statements[0] > 100, what="application load")
    call = BackgroundCall(dsn, rotate_call(batch=100, sleep="0.03s"), "tr-under-load").start()
    call.join(120)
    rotating.clear()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), f"{t.name} still running"
    assert call.error is None, f"rotation failed: {call.error!r}"
    assert not errors, f"application errors: {[type(e).__name__ for e in errors]}"
    assert len(titles) > 200 and len(deleted) > 20
    assert max(waits) < 5.0
    got: dict[int, str] = dict(
        conn.execute("SELECT id, title FROM tickets WHERE id = ANY(%s)", (list(titles),)).fetchall()
    )
    lost = [k for k, title in titles.items() if got.get(k) != title]
    assert not lost, f"{len(lost)} application updates lost"
    assert conn.execute("SELECT count(*) FROM tickets WHERE id = ANY(%s)", (list(deleted),)).fetchone() == (
        0,
    )
    # rows the application updated: a new token; every other original row: the full exactly-once check
    now = snapshot(conn)
    assert all(now.tokens[str(k)] != before.tokens[str(k)] for k in titles)
    untouched = Snapshot(
        {k: v for k, v in before.tokens.items() if int(k) not in titles},
        {k: v for k, v in before.others.items() if int(k) not in titles},
    )
    assert_rotated_exactly_once(conn, untouched, last_run_id(conn), deleted_ok=True)


# --- the tool's tables not writable -------------------------------------------------------------------------


@pytest.mark.parametrize("withheld", ["runs", "slices", "batches"])
def test_tool_tables_not_readable_stop_the_call_before_any_token_changes(
    conn: psycopg.Connection, withheld: str
) -> None:
    """A caller who may rotate the table but not read one of the tool's tables (SELECT not granted: rotate()
    reads its run there; it writes them only through the tool's functions) gets a permission error (42501)
    naming that table and pointing to the GRANT recipe; no token changes, no run starts."""
    make_table(conn, rows=500)
    before = snapshot(conn)
    with temporary_role(conn, "tr_fault") as role:
        r = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT SELECT, UPDATE ON tickets TO {}").format(r))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA token_rotation TO {}").format(r))
        readable = [t for t in ("runs", "slices", "batches") if t != withheld]
        conn.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier("token_rotation", t) for t in readable), r
            )
        )
        conn.execute(sql.SQL("SET ROLE {}").format(r))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
        conn.execute("RESET ROLE")
    assert withheld in str(refused.value)
    assert "sql/examples/grants.sql" in (refused.value.diag.message_hint or "")
    unchanged = snapshot(conn).tokens == before.tokens
    assert unchanged  # (a bare boolean: pytest would print the compared tokens)
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
