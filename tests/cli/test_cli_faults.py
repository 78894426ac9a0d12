"""Faults and wrong input through the command line, as a real process: SIGKILL of the driver at several
points, SIGINT with --json, a second rotation of a busy table (exit 3), a server crash under the driver,
malformed DSN, a server that is down, bad options. Every fault ends with assert_rotated_exactly_once."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from token_rotation import embedded, migrate

from background import (
    BackgroundCall,
    backends,
    hold_rows,
    run_cli,
    spawn_cli,
    wait_until,
    waiting_for_locks,
)
from helpers import (
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
    table_checksum,
)

ROWS = 3000


def json_lines(out: str) -> list[dict[str, Any]]:
    """Every line of --json output parses as one JSON object with an event."""
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all(isinstance(e, dict) and "event" in e for e in events)
    return events


# rotate with batches of 50 that waits as long as needed for a row the application holds
BLOCKABLE_ROTATE = ("rotate", "--table", "tickets", "--batch-size", "50", "--lock-timeout", "60s")


def rows_done_of_mid_run(conn: psycopg.Connection) -> int:
    """At the moment of a fault: the run is proven mid-run from server state (0 < rows done < ROWS)."""
    return assert_mid_run(conn, ROWS)


# --- SIGKILL, SIGINT ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "locked, workers",
    [((2,), 1), ((31,), 1), ((60,), 1), ((10, 30, 50), 3)],
    ids=["early", "middle", "just-before-the-end", "three-workers"],
)
def test_sigkill_of_the_driver_at_any_point_then_rotate_again_finishes_exactly_once(
    dsn: str, conn: psycopg.Connection, locked: tuple[int, ...], workers: int
) -> None:
    """SIGKILL of the driver (no chance to cancel) while its batch waits for a row the application holds:
    in the 2nd, 31st or last (60th) batch, or with three workers each in a different slice. The backends
    notice the lost client within seconds (client_connection_check_interval) even while waiting for the
    lock, the committed checkpoints match the data, and `rotate` again resumes the run and finishes it."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    app = f"tr-sigkill-{locked[0]}-{workers}"
    holder = hold_rows(dsn, *locked)
    proc = spawn_cli(dsn, app, *BLOCKABLE_ROTATE, "--workers", str(workers))
    wait_until(lambda: waiting_for_locks(conn, app) == workers, what="every worker waiting at its kill point")
    at_fault = rows_done_of_mid_run(conn)
    proc.kill()
    proc.communicate(timeout=10)
    killed = time.monotonic()
    wait_until(lambda: not backends(conn, app), timeout=20, what="the backends to notice the lost client")
    assert time.monotonic() - killed < 10
    holder.rollback()
    holder.close()
    run_id = last_run_id(conn)
    assert conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone() == (
        "active",
    )
    assert_checkpoints_match_the_data(conn, before)
    # every batch before the locked one committed (slices of ROWS / workers rows each), that one did not
    expected = sum((batch - 1) * 50 % (ROWS // workers) for batch in locked)
    assert at_fault == expected
    assert conn.execute("SELECT rows_done FROM token_rotation.progress").fetchone() == (expected,)
    again = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "500")
    assert again.returncode == 0, again.stderr
    assert f"resuming run {run_id}" in again.stdout
    assert_rotated_exactly_once(conn, before, run_id)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_or_sigterm_with_json_output_says_interrupted_and_how_to_resume(
    dsn: str, conn: psycopg.Connection, signum: signal.Signals
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM with --json, mid-run (batch 20 waits for a row the application holds):
    exit 130, the last JSON lines are an interrupted event with the resume command and a summary with
    outcome interrupted; stdout is nothing but JSON lines; the checkpoints match the data (19 batches);
    `rotate` resumes and the full check holds."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    holder = hold_rows(dsn, 20)
    app = f"tr-{signum.name.lower()}-json"
    proc = spawn_cli(dsn, app, *BLOCKABLE_ROTATE, "--json")
    wait_until(lambda: waiting_for_locks(conn, app) == 1, what="the driver in batch 20")
    assert rows_done_of_mid_run(conn) == 19 * 50
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    holder.rollback()
    holder.close()
    assert proc.returncode == 130, err
    events = json_lines(out)
    assert [e["event"] for e in events][-2:] == ["interrupted", "summary"]
    assert "rotate --table tickets" in events[-2]["resume"]
    assert events[-1]["outcome"] == "interrupted" and events[-1]["exit_code"] == 130
    assert "Traceback" not in err
    wait_until(lambda: not backends(conn, app), what="the driver's backends gone")
    assert assert_checkpoints_match_the_data(conn, before) == 19 * 50
    again = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "500", "--json")
    assert again.returncode == 0, again.stderr
    assert json_lines(again.stdout)[-1]["outcome"] == "finished"
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


# --- a second rotation of a busy table ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_rotate_of_a_busy_table_exits_3_at_once_and_the_first_is_unharmed(
    dsn: str, conn: psycopg.Connection
) -> None:
    """While one `rotate` works on the table, a second exits 3 within seconds, naming the backend that
    holds the table, in plain text and in --json; the first finishes with exit 0, every row once."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    holder = hold_rows(dsn, 20)
    first = spawn_cli(dsn, "tr-first", *BLOCKABLE_ROTATE)
    wait_until(lambda: waiting_for_locks(conn, "tr-first") == 1, what="the first rotate in batch 20")
    assert rows_done_of_mid_run(conn) == 19 * 50
    (pid,) = backends(conn, "tr-first")
    started = time.monotonic()
    second = run_cli(dsn, "rotate", "--table", "tickets", app="tr-second")
    second_json = run_cli(dsn, "rotate", "--table", "tickets", "--json", app="tr-second")
    assert time.monotonic() - started < 15
    assert second.returncode == 3, second.stderr
    assert "already being rotated" in second.stderr and f"backend {pid}" in second.stderr
    assert second_json.returncode == 3
    assert json_lines(second_json.stdout)[-1]["exit_code"] == 3
    assert assert_checkpoints_match_the_data(conn, before) == 19 * 50  # the refused ones changed nothing
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (1,)
    holder.rollback()
    holder.close()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_rotate_while_a_dba_calls_the_procedure_exits_3(dsn: str, conn: psycopg.Connection) -> None:
    """A DBA's CALL in psql holds the table: `rotate` exits 3 and changes nothing of that run."""
    make_table(conn, rows=ROWS)
    before = snapshot(conn)
    holder = hold_rows(dsn, 20)
    call = BackgroundCall(
        dsn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 50, p_lock_timeout => '60s', p_quiet => true)",
        "tr-dba",
    ).start()
    wait_until(lambda: waiting_for_locks(conn, "tr-dba") == 1, what="the DBA's CALL in batch 20")
    assert rows_done_of_mid_run(conn) == 19 * 50
    busy = run_cli(dsn, "rotate", "--table", "tickets", app="tr-cli-busy")
    assert assert_checkpoints_match_the_data(conn, before) == 19 * 50
    holder.rollback()
    holder.close()
    assert busy.returncode == 3, busy.stderr
    assert "tr-dba" in busy.stderr
    call.join()
    assert call.error is None
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


# --- server crash under the driver --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_server_crash_under_the_driver_exits_1_and_rotate_after_restart_resumes(tmp_path: Path) -> None:
    """Immediate shutdown of a dedicated server (wal_writer_delay 10 s: the last asynchronous commits may be
    lost) under a `rotate` that waits mid-run in batch 20: the driver exits 1 with a one-line error (no
    traceback); right after the restart the rows done are at most the 950 committed before the crash and
    the checkpoints match the data; `rotate` resumes the run and the full check holds."""
    pgdata = tmp_path / "pgdata"
    url = embedded.start(pgdata)
    try:
        migrate.upgrade(url)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            c.execute("SELECT pg_reload_conf()")
            make_table(c, rows=ROWS)
            c.execute("CHECKPOINT")
            before = snapshot(c)
            holder = hold_rows(url, 20)
            proc = spawn_cli(url, "tr-crash-cli", *BLOCKABLE_ROTATE)
            wait_until(lambda: waiting_for_locks(c, "tr-crash-cli") == 1, what="the driver in batch 20")
            committed = rows_done_of_mid_run(c)
            assert committed == 19 * 50
            assert embedded.stop(pgdata, mode="immediate"), "the server did not stop"
        out, err = proc.communicate(timeout=60)
        holder.close()
        assert proc.returncode == 1, err
        assert err.startswith("error: ") and "Traceback" not in err
        url = embedded.start(pgdata)
        with psycopg.connect(url, autocommit=True) as c:
            assert c.execute("SELECT state FROM token_rotation.runs").fetchone() == ("active",)
            assert assert_checkpoints_match_the_data(c, before) <= committed
        again = run_cli(url, "rotate", "--table", "tickets", "--batch-size", "500")
        assert again.returncode == 0, again.stderr
        assert "resuming run" in again.stdout
        with psycopg.connect(url, autocommit=True) as c:
            assert_rotated_exactly_once(c, before, last_run_id(c))
    finally:
        embedded.stop(pgdata, mode="immediate")


# --- wrong input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, says",
    [
        (("rotate", "--table", "tickets", "--batch-size", "abc"), 2, "--batch-size"),
        (("rotate", "--table", "tickets", "--batch-size", "0"), 2, "--batch-size"),
        (("rotate", "--table", "tickets", "--batch-size", "-1"), 2, "--batch-size"),
        (
            ("rotate", "--table", "tickets", "--batch-size", "1000000000"),
            2,
            "batch size must be between 1 and",
        ),
        (("rotate", "--table", "tickets", "--workers", "0"), 2, "--workers"),
        (("rotate", "--table", "tickets", "--sleep", "soon"), 2, "--sleep"),
        (("rotate", "--table", "no_such_table"), 2, "does not exist"),
        (("rotate", "--table", "tickets; DROP TABLE tickets"), 2, ""),
        (("rotate", "--table", "tickets", "--column", "title"), 2, "not of type uuid"),
        (("rotate", "--table", "tickets_view"), 2, "not a table"),
        (("verify", "--run", "424242"), 2, "run 424242 does not exist"),
    ],
    ids=[
        "batch-abc",
        "batch-0",
        "batch-negative",
        "batch-1e9",
        "workers-0",
        "sleep-soon",
        "unknown-table",
        "injection",
        "not-uuid",
        "view",
        "unknown-run",
    ],
)
def test_wrong_input_exits_2_with_one_line_and_changes_nothing(
    dsn: str, conn: psycopg.Connection, args: tuple[str, ...], code: int, says: str
) -> None:
    """Bad options and bad targets: exit 2, a message that names the problem, no traceback, and neither
    the table nor the tool's tables change."""
    make_table(conn, rows=200)
    conn.execute("CREATE VIEW tickets_view AS SELECT * FROM tickets")
    checksum = table_checksum(conn)
    result = run_cli(dsn, *args)
    assert result.returncode == code, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert table_checksum(conn) == checksum
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


PASSWORD = "Pw-not-for-printing-5e1f"


@pytest.mark.parametrize(
    "dsn, code",
    [
        ("this is not a dsn", 2),
        (f"host=127.0.0.1 port== password={PASSWORD}", 2),
        (f"postgresql://someone:{PASSWORD}@127.0.0.1:notaport/db", 2),
    ],
    ids=["not-a-dsn", "bad-key-value", "bad-url-port"],
)
def test_a_malformed_dsn_exits_2_without_echoing_it(dsn: str, code: int) -> None:
    """A DSN that does not parse: exit 2, 'invalid DSN' and what to pass instead; the DSN (and the
    password in it) is never echoed."""
    result = run_cli(dsn, "rotate", "--table", "tickets", timeout=60)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: invalid DSN (") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "subcommand",
    [("rotate", "--table", "tickets"), ("rotate", "--table", "tickets", "--json"), ("status",), ("verify",)],
)
def test_a_server_that_is_down_exits_1_with_cannot_connect(subcommand: tuple[str, ...]) -> None:
    """A server that is down (nothing listens on the port): exit 1 within seconds, 'cannot connect' and no
    traceback; the password of the DSN appears nowhere."""
    dsn = f"postgresql://someone:{PASSWORD}@127.0.0.1:{free_port()}/db"
    started = time.monotonic()
    result = run_cli(dsn, *subcommand, timeout=60)
    assert time.monotonic() - started < 15
    assert result.returncode == 1, result.stderr
    assert "cannot connect" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
