"""Issue 17, the driver's side: findings 10 (--throttle-query escapes its promise), 11 (secrets and control
characters in what the command line prints) and 4 (the driver's own queries resolved through the caller's
search path). Each test plays the attack and asserts that it fails."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from token_rotation import throttle

from background import ROOT, cli_env, run_cli
from helpers import make_table, snapshot

# shaped like a base64url:16 token (22 characters of A-Z a-z 0-9 - _): the tool's own format
BASE64URL_SECRET = "Q2x1ZS1pbl90aGVfZGFyaw"
SSL_PASSWORD = "Ssl-pw-never-print-me-7d1c"
PASSWORD = "Pw-never-print-me-8e2f"


def run_cli_env(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the database given in DATABASE_URL (as an operator's shell would), run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "token_rotation", *args],
        capture_output=True,
        text=True,
        env=cli_env(DATABASE_URL=database_url),
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
def loot(conn: psycopg.Connection) -> Iterator[str]:
    """public.loot: a table a throttle query must never write to."""
    conn.execute("CREATE TABLE public.loot (n integer)")
    yield "public.loot"


def test_a_throttle_query_that_smuggles_more_statements_is_refused_and_runs_none(
    dsn: str, conn: psycopg.Connection, loot: str
) -> None:
    """A throttle query that closes the driver's wrapper and adds SET, COMMIT and INSERT is refused (exit 2)
    and none of its statements ran: nothing inserted, no run started."""
    make_table(conn, rows=500)
    before = snapshot(conn)
    query = (
        "SELECT false) AS x; SET default_transaction_read_only = off; SET statement_timeout = 0; COMMIT; "
        f"INSERT INTO {loot} VALUES (1); SELECT * FROM (SELECT false"
    )
    done = run_cli(dsn, "rotate", "--table", "tickets", "--throttle-query", query)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--throttle-query failed" in done.stderr
    assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(loot))).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
    assert snapshot(conn).tokens == before.tokens


def test_settings_a_throttle_query_makes_do_not_survive_to_its_next_poll(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A throttle query that calls set_config(..., false) in its one SELECT (statement_timeout 0, a read-write
    default, a marker of its own): its next poll sees none of it, nor does its session afterwards."""
    make_table(conn, rows=10)
    oid = conn.execute("SELECT 'public.tickets'::regclass::oid").fetchone()
    assert oid is not None
    # says wait only if its marker from an earlier poll is still set; sets the marker and the settings
    query = (
        "SELECT coalesce(current_setting('tr_attack.marker', true), '') = 'stayed'"
        " OR set_config('tr_attack.marker', 'stayed', false) IS NULL"
        " OR set_config('statement_timeout', '0', false) IS NULL"
        " OR set_config('default_transaction_read_only', 'off', false) IS NULL"
    )
    gate = throttle.ThrottleQuery(dsn, "tr-attack", query, int(oid[0]))
    try:
        assert gate.check() is False
        assert gate.verdict() == throttle.Verdict(False, None)  # the second poll: the marker is gone
        with gate.conn.cursor() as cur:
            seen = cur.execute(
                "SELECT coalesce(current_setting('tr_attack.marker', true), ''),"
                " current_setting('statement_timeout'), current_setting('default_transaction_read_only')"
            ).fetchone()
        assert seen == ("", "1s", "on")
    finally:
        gate.close(None)
