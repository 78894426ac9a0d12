"""Helpers of the fault tests: a CALL running in a thread on its own connection, bounded polling, and
finding a backend by application_name in pg_stat_activity (the psycopg way of interrupting a query)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from helpers import assert_checkpoints_match_the_data as assert_checkpoints_match_the_data
from helpers import rows_done

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BackgroundCall:
    """One statement on its own autocommit connection in a thread; its error (if any) is kept."""

    dsn: str
    statement: str
    application_name: str
    error: BaseException | None = None
    notices: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> BackgroundCall:
        self.thread = threading.Thread(target=self._run, daemon=True, name=self.application_name)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, application_name=self.application_name) as c:
                c.add_notice_handler(lambda d: self.notices.append(d.message_primary or ""))
                c.execute(self.statement)
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: float = 60.0) -> BackgroundCall:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.application_name} still running after {timeout}s"
        return self


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls `condition` every 20 ms until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.02)


def wait_while_running(proc: subprocess.Popen[str], condition: Callable[[], bool], what: str) -> None:
    """wait_until `condition` while the CLI process runs; fails at once, with its stderr, if it ends first."""
    wait_until(lambda: proc.poll() is not None or condition(), what=what)
    if proc.poll() is not None:
        out, err = proc.communicate()
        raise AssertionError(f"the CLI ended ({proc.returncode}) before {what}:\n{err}{out[-2000:]}")


def reap(proc: subprocess.Popen[str]) -> None:
    """Kills the CLI process if it still runs, and collects it (a failed test leaves no worker behind)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def backends(conn: psycopg.Connection, application_name: str) -> list[int]:
    """Pids of the sessions with that application_name (other than `conn` itself)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def batches_done(conn: psycopg.Connection, table: str = "tickets") -> int:
    """Committed batches of the table's newest run (0 before the run exists)."""
    row = conn.execute(
        "SELECT count(b.*) FROM token_rotation.batches b"
        " WHERE b.run_id = (SELECT max(run_id) FROM token_rotation.runs WHERE target = to_regclass(%s))",
        (table,),
    ).fetchone()
    return int(row[0]) if row else 0


def heartbeat(conn: psycopg.Connection, table: str = "tickets") -> datetime:
    """The newest sign of life (a batch, a wait, a retry) of the table's newest run's slices."""
    row = conn.execute(
        "SELECT max(heartbeat_at) FROM token_rotation.slices"
        " WHERE run_id = (SELECT max(run_id) FROM token_rotation.runs WHERE target = to_regclass(%s))",
        (table,),
    ).fetchone()
    assert row is not None and isinstance(row[0], datetime), f"no slice of {table} has a heartbeat"
    return row[0]


def assert_held(conn: psycopg.Connection, total: int, table: str = "tickets", checks: int = 2) -> int:
    """Proves from server state that the table's newest run waits: while its waiting workers check again
    `checks` times (each check moves the slices' heartbeat on), its rows done stay put, below `total`.
    Returns the rows done."""
    done = rows_done(conn, table)
    for n in range(checks):
        last = heartbeat(conn, table)
        wait_until(
            lambda: heartbeat(conn, table) > last,  # noqa: B023
            what=f"check {n + 1} of the waiting workers",
        )
    still = rows_done(conn, table)
    assert still == done < total, f"rows done went from {done} to {still} of {total} while waiting"
    return done


def progress_reasons(stdout: str) -> list[str]:
    """The reasons to wait (`throttled`) that the `--json` progress lines of a CLI run carried, in order."""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e["throttled"] for e in events if e.get("event") == "progress" and e.get("throttled")]


def terminate(conn: psycopg.Connection, pid: int) -> None:
    """pg_terminate_backend, then waits until the backend is gone (its session locks released)."""
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    wait_until(
        lambda: (
            conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (0,)
        ),
        what=f"backend {pid} gone",
    )


def finish_run(conn: psycopg.Connection, call: str, table: str = "tickets", max_calls: int = 20) -> None:
    """CALLs again until the table's newest run is finished (one CALL works one slice); bounded."""
    for _ in range(max_calls):
        conn.execute(call)
        state = conn.execute(
            "SELECT state FROM token_rotation.runs WHERE target = to_regclass(%s)"
            " ORDER BY run_id DESC LIMIT 1",
            (table,),
        ).fetchone()
        if state == ("finished",):
            return
    raise AssertionError(f"run of {table} not finished after {max_calls} CALLs")


def hold_rows(dsn: str, *batches: int) -> psycopg.Connection:
    """An application transaction holding a row lock in the middle of each given batch (of 50 rows)."""
    holder = psycopg.connect(dsn, application_name="tr-app")
    keys = [batch * 50 * 1000 - 25 * 1000 for batch in batches]  # make_table's bigint keys are g * 1000
    holder.execute("SELECT 1 FROM tickets WHERE id = ANY(%s) FOR UPDATE", (keys,))
    return holder


def waiting_for_locks(conn: psycopg.Connection, app: str) -> int:
    """How many sessions with that application_name wait for a lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (app,),
    ).fetchone()
    return int(row[0]) if row else 0


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: nothing of the test's own database settings (DATABASE_URL, PG*)
    leaks in; `extra` is added."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    return {**env, **extra}


def cli_args(dsn: str, *args: str, app: str | None = None) -> list[str]:
    """`python -m token_rotation --dsn DSN [--application-name APP] ARGS...`."""
    named = ["--application-name", app] if app else []
    return [sys.executable, "-m", "token_rotation", "--dsn", dsn, *named, *args]


def spawn_cli(dsn: str, app: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """The CLI as a background process with a known application_name (found in pg_stat_activity)."""
    return subprocess.Popen(
        cli_args(dsn, *args, app=app),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT, **popen,
    )  # fmt: skip


def run_cli(
    dsn: str, *args: str, app: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI run to its end: exit code, stdout, stderr."""
    return subprocess.run(
        cli_args(dsn, *args, app=app),
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=timeout,
    )


def cli_in_a_terminal(dsn: str, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """Runs the CLI with a pseudo-terminal as stdout and stderr (so it draws its live bar); returns the exit
    code and everything it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "token_rotation", "--dsn", dsn, *args],
        stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    for _ in range(100_000):  # bounded: until the CLI closes the terminal
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")
