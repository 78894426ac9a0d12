"""The command line as a real process, the way psycopg tests Ctrl-C: start `python -m token_rotation` with a
known application_name, find its backends in pg_stat_activity, send the signal, then check the data. Also
the ETA against the real finish, the embedded-server default path, and the live bar on a terminal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from background import backends, cli_env, cli_in_a_terminal, run_cli, spawn_cli, wait_until
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot


def batches(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_cancels_the_calls_at_once_and_rotate_again_resumes_exactly_once(
    dsn: str, conn: psycopg.Connection, signum: signal.Signals
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM mid-run: the driver cancels its server-side CALLs, prints how far it got
    and the command that resumes, and exits 130 within seconds. Running `rotate` again resumes the same
    run and every row is rotated exactly once (verify and the snapshot agree)."""
    make_table(conn, rows=60_000)
    before = snapshot(conn)
    app = f"tr-test-{signum.name.lower()}"
    proc = spawn_cli(
        dsn, app, "rotate", "--table", "tickets", "--workers", "2", "--batch-size", "500", "--sleep", "20ms"
    )
    wait_until(lambda: len(backends(conn, app)) == 2 and batches(conn) >= 6, what="two working backends")
    signalled = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - signalled < 5
    assert (
        "interrupted: run" in out
        and "Resume with: token-rotation --dsn '<your DSN>' rotate --table tickets" in out
    )
    assert "Traceback" not in err
    run_id = last_run_id(conn)
    state, done = conn.execute(
        "SELECT state, rows_done FROM token_rotation.runs WHERE run_id = %s", (run_id,)
    ).fetchone()  # type: ignore[misc]
    assert state == "active" and 0 < done < 60_000

    again = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "2000")
    assert again.returncode == 0, again.stderr
    assert f"resuming run {run_id}" in again.stdout
    assert last_run_id(conn) == run_id
    assert_rotated_exactly_once(conn, before, run_id)
    assert run_cli(dsn, "verify", "--run", str(run_id)).returncode == 0


@pytest.mark.slow
def test_sigkill_of_the_driver_stops_its_backend_within_seconds_and_rotate_resumes(
    dsn: str, conn: psycopg.Connection
) -> None:
    """SIGKILL leaves the driver no chance to cancel; client_connection_check_interval makes its backend
    notice the lost client and stop within seconds, so the next `rotate` resumes instead of finding the
    table busy."""
    make_table(conn, rows=60_000)
    before = snapshot(conn)
    app = "tr-test-sigkill"
    proc = spawn_cli(dsn, app, "rotate", "--table", "tickets", "--batch-size", "300", "--sleep", "30ms")
    wait_until(lambda: len(backends(conn, app)) == 1 and batches(conn) >= 5, what="a working backend")
    proc.kill()
    proc.communicate(timeout=10)
    killed = time.monotonic()
    wait_until(lambda: not backends(conn, app), timeout=15, what="the backend to notice the lost client")
    assert time.monotonic() - killed < 10
    again = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "3000")
    assert again.returncode == 0, again.stderr
    assert "resuming run" in again.stdout
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_json_progress_carries_the_views_eta_from_the_third_batch_to_the_finish(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A 30-batch run (a 50 ms sleep after each, so that a 50 ms poll sees most of them): every `progress`
    event from the third batch on carries an ETA, and the working clock never runs backwards; the finish
    says 0 s left. (How close the ETA comes to the real finish is measured by `make bench-eta`.)"""
    make_table(conn, rows=60_000)
    result = run_cli(
        dsn,
        "rotate",
        "--table",
        "tickets",
        "--json",
        "--batch-size",
        "2000",
        "--sleep",
        "50ms",
        "--progress-interval",
        "0.05",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    readings = [e for e in lines if e["event"] == "progress" and e["batches_done"] >= 3]
    assert readings, "no progress event after the third batch"
    assert all(e["eta"] is not None and e["eta"] >= 0 for e in readings), readings
    clock = [e["elapsed"] for e in lines if e["event"] == "progress"]
    assert clock == sorted(clock)
    finished = next(e for e in lines if e["event"] == "finished")
    assert (finished["eta"], finished["rows_done"], finished["state"]) == (0.0, 60_000, "finished")


@pytest.mark.slow
def test_without_any_database_setting_the_embedded_server_is_used_and_every_command_says_so(
    tmp_path: Path,
) -> None:
    """With no --dsn, DATABASE_URL or PG* variable, the commands start the embedded PostgreSQL in the data
    directory on demand, reuse it across commands, and `server stop` stops it; every command that uses it
    says so in one line on stderr, naming the data directory."""
    pgdata = tmp_path / "pgdata"
    env = cli_env(TOKEN_ROTATION_PGDATA=str(pgdata))
    notice = f"no --dsn, DATABASE_URL or PG* variables: using the embedded demo server in {pgdata}\n"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "token_rotation", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip

    try:
        assert cli("server", "url").returncode == 1
        installed = cli("install")
        assert installed.returncode == 0, installed.stderr
        assert str(pgdata) in installed.stdout
        seeded = cli("seed", "--rows", "20000")
        assert seeded.returncode == 0, seeded.stderr
        rotated = cli("rotate", "--table", "tickets", "--batch-size", "5000")
        assert rotated.returncode == 0, rotated.stderr
        assert "rotated 20,000 rows of public.tickets" in rotated.stdout
        verified = cli("verify")
        assert verified.returncode == 0
        status = cli("status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "finished"
        paused = cli("pause", "--table", "tickets")
        assert paused.returncode == 2 and paused.stderr.startswith(notice)
        for result in (installed, seeded, rotated, verified, status):
            assert result.stderr == notice
        assert cli("server", "url").stdout.startswith("postgresql://")
        with_dsn = cli("--dsn", cli("server", "url").stdout.strip(), "status")
        assert with_dsn.returncode == 0 and with_dsn.stderr == ""
    finally:
        stopped = cli("server", "stop")
    assert stopped.stdout.strip() == "stopped"
    assert cli("server", "url").returncode == 1


@pytest.mark.slow
def test_a_terminal_gets_a_live_bar_in_colour_unless_no_color_is_set(
    dsn: str, conn: psycopg.Connection
) -> None:
    """On a terminal `rotate` draws a rich progress bar (rows, percent, rows/s, elapsed, ETA) redrawn in
    place; NO_COLOR removes the colours but keeps the bar."""
    make_table(conn, rows=30_000)
    base = cli_env(TERM="xterm-256color", COLUMNS="160")
    code, coloured = cli_in_a_terminal(
        dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--sleep", "20ms", env=base
    )
    assert code == 0, coloured
    assert "\r" in coloured and "rows/s" in coloured and "ETA" in coloured and "elapsed" in coloured
    assert "\x1b[3" in coloured or "\x1b[9" in coloured  # foreground colours
    assert "rotated 30,000 rows" in coloured
    base.pop("FORCE_COLOR", None)
    code, plain = cli_in_a_terminal(
        dsn,
        "rotate",
        "--table",
        "tickets",
        "--batch-size",
        "1000",
        "--sleep",
        "20ms",
        env={**base, "NO_COLOR": "1"},
    )
    assert code == 0, plain
    assert "ETA" in plain and "rows/s" in plain
    assert "\x1b[3" not in plain and "\x1b[9" not in plain


@pytest.mark.slow
def test_options_not_given_leave_the_procedures_defaults_in_charge(
    dsn: str, conn: psycopg.Connection
) -> None:
    """The CALL the driver sends (as pg_stat_activity shows it) names only the options given on the command
    line, so the procedure's own defaults (synchronous_commit, lock timeout, ...) apply to the rest."""
    make_table(conn, rows=20_000)
    queries = {}
    for app, extra in (
        ("tr-test-defaults", ()),
        ("tr-test-given", ("--synchronous-commit", "--lock-retries", "2")),
    ):
        proc = spawn_cli(
            dsn, app, "rotate", "--table", "tickets", "--batch-size", "200", "--sleep", "20ms", *extra
        )
        call = "SELECT query FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'CALL %%'"
        wait_until(lambda: conn.execute(call, (app,)).fetchone() is not None, what="the CALL")  # noqa: B023
        row = conn.execute(call, (app,)).fetchone()
        assert row is not None
        queries[app] = str(row[0])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    assert '"p_sleep" => pg_catalog.make_interval' in queries["tr-test-defaults"]
    for name in ("p_synchronous_commit", "p_lock_retries", "p_lock_timeout", "p_max_batches"):
        assert name not in queries["tr-test-defaults"]
    assert '"p_synchronous_commit" =>' in queries["tr-test-given"]
    assert '"p_lock_retries" =>' in queries["tr-test-given"]
