"""`rotate` beside other sessions and servers that go away: a run another session works on is followed to
its end (and Ctrl-C only stops following), and a server lost in the middle of a run is reported as that,
with the command that resumes. The CLI runs as a real process, as in test_cli_process.py."""

from __future__ import annotations

import re
import select
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from token_rotation import embedded, migrate

from background import BackgroundCall, backends, batches_done, run_cli, spawn_cli, terminate, wait_until
from helpers import (
    assert_checkpoints_match_the_data,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
)

DBA_CALL = "CALL token_rotation.rotate('public.tickets', p_workers => 2, p_batch_size => 200)"

# The DBA's session is the slow one: each of its batches takes 300 ms more (a statement trigger that sleeps
# for that application_name only). Not p_sleep: a run's options are shared by all its sessions, so the CLI's
# resume would change it for the DBA's CALL too at its next batch.
SLOW_DBA = """
CREATE FUNCTION public.slow_dba() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'dba-psql' THEN
        PERFORM pg_catalog.pg_sleep(0.3);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER slow_dba AFTER UPDATE ON public.tickets FOR EACH STATEMENT EXECUTE FUNCTION public.slow_dba();
"""


def dba_on_slice_one(dsn: str, conn: psycopg.Connection) -> tuple[BackgroundCall, int]:
    """A psql-like session rotating slice 1 of a new two-slice run; returns it and its backend pid once it
    holds the slice and has committed a batch."""
    conn.execute(SLOW_DBA)
    dba = BackgroundCall(dsn, DBA_CALL, "dba-psql").start()
    wait_until(lambda: batches_done(conn) >= 1, what="the DBA's first batch")
    row = conn.execute(
        "SELECT s.slice_no, token_rotation_internal.slice_holder(s.slice_id) FROM token_rotation.slices s"
        " WHERE token_rotation_internal.slice_holder(s.slice_id) IS NOT NULL"
    ).fetchall()
    (pid,) = backends(conn, "dba-psql")
    assert row == [(1, pid)], row
    return dba, pid


def slice_two_done(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT done FROM token_rotation.slices WHERE slice_no = 2").fetchone()
    return row == (True,)


def read_until(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    """The CLI's stdout, line by line, up to the first line that contains `text` (fails after `timeout`)."""
    assert proc.stdout is not None
    seen = ""
    while text not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, f"no {text!r} within {timeout}s; got {seen!r}"
        line = proc.stdout.readline()
        assert line, f"the CLI ended before {text!r}; got {seen!r}"
        seen += line
    return seen


@pytest.mark.slow
def test_rotate_beside_a_psql_session_follows_the_run_to_its_end(dsn: str, conn: psycopg.Connection) -> None:
    """While a psql session works on slice 1 of a two-slice run, `rotate --table tickets` takes slice 2,
    finishes it, says that the run continues in that session (its backend and application_name), follows
    its progress and reports the finish as usual: exit 0, no word of --max-batches."""
    make_table(conn, rows=4000)
    before = snapshot(conn)
    dba, pid = dba_on_slice_one(dsn, conn)
    result = run_cli(dsn, "rotate", "--table", "tickets", "--progress-interval", "0.2")
    dba.join()
    assert dba.error is None
    assert result.returncode == 0, result.stderr
    assert f"run 1 continues in another session: backend {pid} (dba-psql, slice 1" in result.stdout
    assert "following its progress to the end" in result.stdout
    assert "--max-batches" not in result.stdout
    assert re.search(r"rotated 4,000 rows of public\.tickets in \S+ \([\d,]+ rows/s\), run 1", result.stdout)
    after = result.stdout[result.stdout.index("continues in another session") :]
    assert re.search(r"public\.tickets: [\d,]+/4,000 rows \(\d+\.\d%\)", after), "no progress while following"
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.slow
def test_ctrl_c_while_following_stops_following_and_leaves_the_other_session_working(
    dsn: str, conn: psycopg.Connection
) -> None:
    """Ctrl-C while `rotate` only follows a run another session works on: the CLI says it stopped following
    and that the other session's CALL was not cancelled, exits 130; that CALL goes on and finishes the run."""
    make_table(conn, rows=8000)  # the DBA's slice: 20 batches of 200 rows, 300 ms apart
    before = snapshot(conn)
    dba, pid = dba_on_slice_one(dsn, conn)
    proc = spawn_cli(dsn, "tr-follower", "rotate", "--table", "tickets", "--progress-interval", "0.2")
    try:
        read_until(proc, "continues in another session")
        assert slice_two_done(conn)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "stopped following run 1" in out and "their CALL was not cancelled" in out
    assert "Traceback" not in err
    assert backends(conn, "dba-psql") == [pid]
    state = conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = 1").fetchone()
    assert state == ("active",)
    dba.join(timeout=120)
    assert dba.error is None
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.slow
def test_a_followed_run_cancelled_from_another_session_exits_130_and_says_so(
    dsn: str, conn: psycopg.Connection
) -> None:
    """While `rotate` follows a run a psql session works on, a third session cancels it: the CLI says the run
    was cancelled and that the next rotate starts a new run, exits 130, and says nothing of --max-batches."""
    make_table(conn, rows=8000)
    dba, _ = dba_on_slice_one(dsn, conn)
    proc = spawn_cli(dsn, "tr-follower", "rotate", "--table", "tickets", "--progress-interval", "0.2")
    try:
        read_until(proc, "continues in another session")
        conn.execute("SELECT token_rotation.cancel('public.tickets')")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    dba.join(timeout=60)
    assert proc.returncode == 130, out + err
    assert "run 1 was cancelled (token_rotation.cancel); the next rotate starts a new run" in out
    assert "--max-batches" not in out
    assert conn.execute("SELECT state::text FROM token_rotation.runs WHERE run_id = 1").fetchone() == (
        "cancelled",
    )


@pytest.mark.slow
def test_a_followed_session_that_stops_before_the_end_is_taken_over(
    dsn: str, conn: psycopg.Connection
) -> None:
    """The session `rotate` follows is terminated mid-run: `rotate` sees its slice left free, takes it over,
    finishes the run and reports the finish as usual (exit 0), every row rotated exactly once."""
    make_table(conn, rows=8000)
    before = snapshot(conn)
    dba, pid = dba_on_slice_one(dsn, conn)
    proc = spawn_cli(dsn, "tr-follower", "rotate", "--table", "tickets", "--progress-interval", "0.2")
    try:
        read_until(proc, "continues in another session")
        terminate(conn, pid)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    dba.join()
    assert isinstance(dba.error, psycopg.OperationalError)
    assert proc.returncode == 0, err
    assert "nobody works on run 1 any more: taking over its 1 unfinished slice(s)" in out
    assert "rotated 8,000 rows of public.tickets" in out
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.slow
@pytest.mark.own_server
def test_a_server_lost_mid_run_is_reported_with_the_command_that_resumes(tmp_path: Path) -> None:
    """An immediate shutdown of the server during `rotate --workers 2`: one line says that the connection
    to the server was lost, that every committed batch is kept, and the exact command that resumes; exit 1.
    Once the server is back, that command resumes the run and every row is rotated exactly once."""
    pgdata = tmp_path / "pgdata"
    url = embedded.start(pgdata)
    try:
        migrate.upgrade(url)
        with psycopg.connect(url, autocommit=True) as c:
            make_table(c, rows=20_000)
            before = snapshot(c)
        args = ("rotate", "--table", "tickets", "--workers", "2", "--batch-size", "100", "--sleep", "20ms")
        proc = spawn_cli(url, "tr-lost", *args)
        with psycopg.connect(url, autocommit=True) as c:
            wait_until(lambda: batches_done(c) >= 10, what="ten batches")
            embedded.stop(pgdata, mode="immediate")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, (out, err)
        resume = "token-rotation --dsn '<your DSN>' rotate --table tickets --batch-size 100 --workers 2"
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert re.fullmatch(
            r"error: the connection to the server was lost \([^)]+\); every committed batch is kept; "
            rf"resume with: {re.escape(resume)}",
            lines[0],
        ), lines[0]
        assert "cannot connect" not in err

        url = embedded.start(pgdata)
        with psycopg.connect(url, autocommit=True) as c:  # after crash recovery, before the resume
            # with asynchronous commits the crash may take every batch since the last WAL flush (even all
            # of them), but each only together with its checkpoint and log row
            assert_checkpoints_match_the_data(c, before)
        again = run_cli(url, *resume.split("'<your DSN>' ")[1].split())
        assert again.returncode == 0, again.stderr
        assert "resuming run 1" in again.stdout
        with psycopg.connect(url, autocommit=True) as c:
            assert_rotated_exactly_once(c, before, last_run_id(c))
    finally:
        embedded.stop(pgdata, mode="immediate")
