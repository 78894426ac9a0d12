"""Behaviour that had no test: the uninstall guard while a rotation runs, a CALL on another column of a table
with an open run, the sampled slice plan through a real run, and how the CLI chooses its database
(--dsn over DATABASE_URL over PG*) and names its sessions (TOKEN_ROTATION_APPLICATION_NAME)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from token_rotation import migrate

from background import ROOT, BackgroundCall, cli_env, hold_rows, run_cli, wait_until, waiting_for_locks
from helpers import (
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
)

BLOCKED_CALL = (
    "CALL token_rotation.rotate('tickets', p_batch_size => 50, p_lock_timeout => '60s', p_quiet => true)"
)


def test_uninstall_is_refused_while_a_rotation_runs_and_changes_nothing(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`token-rotation uninstall` while a CALL rotates a table (waiting mid-run for an application's row
    lock) fails, saying a rotation is running; the tool stays installed at the same revision, and the
    rotation goes on to finish exactly once."""
    make_table(conn, rows=1000)
    before = snapshot(conn)
    revision = migrate.installed_revision(dsn)
    assert revision is not None
    holder = hold_rows(dsn, 10)
    call = BackgroundCall(dsn, BLOCKED_CALL, "tr-uninstall-guard").start()
    wait_until(lambda: waiting_for_locks(conn, "tr-uninstall-guard") == 1, what="the CALL in batch 10")
    assert assert_mid_run(conn, 1000) == 450
    refused = run_cli(dsn, "uninstall", timeout=60)
    assert refused.returncode == 3, refused.stdout  # object_in_use: another run holds the table
    assert "a token rotation is running" in refused.stderr
    assert migrate.installed_revision(dsn) == revision
    assert conn.execute("SELECT to_regclass('token_rotation.runs') IS NOT NULL").fetchone() == (True,)
    assert assert_checkpoints_match_the_data(conn, before) == 450
    holder.rollback()
    holder.close()
    assert call.join().error is None, call.error
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_call_on_another_column_is_refused_while_the_table_has_an_open_run(
    conn: psycopg.Connection,
) -> None:
    """With a run of column token open (stopped by p_max_batches), a CALL for another uuid column of the
    same table fails with 55006 naming the open run's column and how to end it; that column keeps every
    value; the open run then finishes exactly once."""
    make_table(conn, rows=600)
    conn.execute("ALTER TABLE tickets ADD COLUMN other_token uuid NOT NULL DEFAULT gen_random_uuid()")
    before = snapshot(conn)
    others = snapshot(conn, token_column="other_token").tokens
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_max_batches => 2, p_quiet => true)"
    )
    with pytest.raises(psycopg.errors.ObjectInUse) as refused:
        conn.execute("CALL token_rotation.rotate('tickets', p_column => 'other_token', p_quiet => true)")
    assert "has an open run on column token" in str(refused.value)
    assert "token_rotation.cancel" in (refused.value.diag.message_hint or "")
    unchanged = snapshot(conn, token_column="other_token").tokens == others
    assert unchanged  # (a bare boolean: pytest would print the compared tokens)
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (1,)
    assert assert_checkpoints_match_the_data(conn, before) == 200
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    # other_token is an ordinary column of this run: the snapshot's digest of the other columns covers it
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_sampled_slice_plan_rotates_every_row_exactly_once(conn: psycopg.Connection) -> None:
    """A table the planner believes has 30 million rows (pg_class.reltuples; 20,000 in truth, spread over
    many pages by fillfactor 10) is planned from a block sample: estimated row counts, slices at sampled
    quantiles. Three CALLs work its three slices and every row is rotated exactly once."""
    make_table(conn, rows=20_000)
    conn.execute("ALTER TABLE tickets SET (fillfactor = 10)")
    conn.execute("VACUUM FULL tickets")
    conn.execute("ANALYZE tickets")
    conn.execute("UPDATE pg_class SET reltuples = 30000000 WHERE oid = 'tickets'::regclass")
    before = snapshot(conn)
    call = "CALL token_rotation.rotate('tickets', p_batch_size => 2000, p_workers => 3, p_quiet => true)"
    conn.execute(call)
    run_id = last_run_id(conn)
    plan = conn.execute(
        "SELECT r.rows_expected_exact, r.rows_expected, count(s.*), count(DISTINCT s.hi)"
        " FROM token_rotation.runs r JOIN token_rotation.slices s USING (run_id)"
        " WHERE run_id = %s GROUP BY r.rows_expected_exact, r.rows_expected",
        (run_id,),
    ).fetchone()
    assert plan == (False, 30_000_000, 3, 3)
    conn.execute(call)
    conn.execute(call)
    assert_rotated_exactly_once(conn, before, run_id)


# --- how the CLI chooses its database and names its sessions ------------------------------------------------


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(env: dict[str, str], *dsn: str) -> subprocess.CompletedProcess[str]:
    """`token-rotation [--dsn DSN] status` with exactly this environment (nothing of the test's own)."""
    args = ["--dsn", dsn[0]] if dsn else []
    return subprocess.run(
        [sys.executable, "-m", "token_rotation", *args, "status"],
        capture_output=True, text=True, env={**cli_env(), **env}, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_dsn_wins_over_database_url_which_wins_over_the_pg_variables(
    dsn: str, conn: psycopg.Connection
) -> None:
    """The database is --dsn, else DATABASE_URL, else the PG* variables: each choice reaches the test's
    database while the ones it outranks point at a port where nothing listens, and the other way round the
    chosen one alone decides (it cannot connect)."""
    make_table(conn, rows=10)
    nowhere = f"postgresql://postgres@127.0.0.1:{unused_port()}/nowhere"
    params = conninfo_to_dict(dsn)
    pg_good = {
        "PGHOST": str(params.get("host", "127.0.0.1")),
        "PGPORT": str(params.get("port", "5432")),
        "PGUSER": str(params.get("user", "postgres")),
        "PGDATABASE": str(params["dbname"]),
        **({"PGPASSWORD": str(params["password"])} if params.get("password") else {}),
    }
    pg_bad = {**pg_good, "PGPORT": str(unused_port())}
    outcomes = {
        "--dsn over DATABASE_URL and PG*": status({"DATABASE_URL": nowhere, **pg_bad}, dsn).returncode,
        "DATABASE_URL over PG*": status({"DATABASE_URL": dsn, **pg_bad}).returncode,
        "PG* alone": status(pg_good).returncode,
        "--dsn unreachable, DATABASE_URL good": status({"DATABASE_URL": dsn, **pg_good}, nowhere).returncode,
        "DATABASE_URL unreachable, PG* good": status({"DATABASE_URL": nowhere, **pg_good}).returncode,
    }
    assert outcomes == {
        "--dsn over DATABASE_URL and PG*": 0,
        "DATABASE_URL over PG*": 0,
        "PG* alone": 0,
        "--dsn unreachable, DATABASE_URL good": 1,
        "DATABASE_URL unreachable, PG* good": 1,
    }


@pytest.mark.parametrize("option", [False, True], ids=["environment", "option-over-environment"])
def test_the_sessions_are_named_by_token_rotation_application_name_unless_the_option_is_given(
    dsn: str, conn: psycopg.Connection, option: bool
) -> None:
    """TOKEN_ROTATION_APPLICATION_NAME names the CLI's sessions in pg_stat_activity (the rotating one and
    the one that follows progress); --application-name wins over it."""
    make_table(conn, rows=2000)
    name = "tr-named-by-option" if option else "tr-named-by-env"
    args = ["--application-name", name] if option else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "token_rotation", "--dsn", dsn, *args,
         "rotate", "--table", "tickets", "--batch-size", "100", "--sleep", "30s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**cli_env(), "TOKEN_ROTATION_APPLICATION_NAME": "tr-named-by-env"},
    )  # fmt: skip
    try:
        query = (
            "SELECT count(*) FILTER (WHERE query LIKE 'CALL token_rotation.rotate%%'), count(*)"
            " FROM pg_stat_activity WHERE application_name LIKE %s"
        )
        wait_until(
            lambda: conn.execute(query, (name + "%",)).fetchone() == (1, 2),
            what=f"the CLI's two sessions named {name}",
        )
        if option:
            other = conn.execute(query, ("tr-named-by-env%",)).fetchone()
            assert other == (0, 0)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 130


def test_the_default_application_name_is_token_rotation(dsn: str, conn: psycopg.Connection) -> None:
    """Without the variable or the option, the sessions are named token-rotation."""
    env = {k: v for k, v in cli_env().items() if k != "TOKEN_ROTATION_APPLICATION_NAME"}
    make_table(conn, rows=10)
    conn.execute("CREATE TABLE seen_names (name text)")
    conn.execute("""
        CREATE FUNCTION record_name() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO seen_names VALUES (current_setting('application_name'));
            RETURN NULL;
        END $$""")
    conn.execute(
        "CREATE TRIGGER record_name BEFORE UPDATE ON tickets"
        " FOR EACH STATEMENT EXECUTE FUNCTION record_name()"
    )
    done = subprocess.run(
        [sys.executable, "-m", "token_rotation", "--dsn", dsn, "rotate", "--table", "tickets"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT DISTINCT name FROM seen_names").fetchall() == [("token-rotation",)]


def test_a_call_that_comes_after_its_run_has_ended_starts_no_new_run(conn: psycopg.Connection) -> None:
    """p_after_run (the CLI's workers pass it): once the run that a CALL was meant for has ended, the CALL
    returns at once, says so, and starts no second run; with no newer run it starts one as usual."""
    make_table(conn, rows=1000)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 400, p_quiet => true)")
    first = last_run_id(conn)
    tokens = snapshot(conn).tokens
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("CALL token_rotation.rotate('tickets', p_after_run => %s)", (first - 1,))
    assert last_run_id(conn) == first and snapshot(conn).tokens == tokens
    assert f"run {first}: public.tickets is finished, nothing left to do" in notices
    conn.execute("CALL token_rotation.rotate('tickets', p_after_run => %s, p_quiet => true)", (first,))
    assert last_run_id(conn) == first + 1
