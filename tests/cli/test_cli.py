"""The `token-rotation` command line through click's CliRunner, against the real server: what each command
prints, the exit codes, and that no token and no password ever reaches the output."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import make_conninfo

from token_rotation.cli import cli
from token_rotation.dry_run import memory_fit
from token_rotation.units import format_duration

from background import BackgroundCall, wait_until
from helpers import (
    assert_rotated_exactly_once,
    events,
    last_run_id,
    make_table,
    run,
    snapshot,
    table_checksum,
)

ROOT = Path(__file__).resolve().parents[2]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run_state(conn: psycopg.Connection, run_id: int) -> str:
    row = conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_rotate_rotates_every_row_once_and_ends_with_a_one_line_summary(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`rotate` starts a run, finishes it, and ends with rows, time and rows/s on one line."""
    make_table(conn, rows=20_000)
    before = snapshot(conn)
    result = run(dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--progress-interval", "0.1")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"rotated 20,000 rows of public\.tickets in \S+ \([\d,]+ rows/s\), run \d+", result.stdout
    )
    assert "ETA" in result.stdout and "dead tuples" in result.stdout
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_json_lines_tell_started_progress_finished_and_a_summary(dsn: str, conn: psycopg.Connection) -> None:
    """--json prints one JSON object a line: started, progress..., finished, and a final summary with the
    exit code; the numbers are the run's own. The run lasts at least 60 batches x 50 ms = 3 s, six times the
    driver's poll interval (it once lasted 0.3 s and finished before a progress line: issue 21's flake)."""
    make_table(conn, rows=30_000)
    result = run(
        dsn,
        "rotate",
        "--table",
        "tickets",
        "--json",
        "--batch-size",
        "500",
        "--sleep",
        "50ms",
        "--progress-interval",
        "0",
    )
    assert result.exit_code == 0, result.output
    lines = events(result)
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "started" and kinds[-1] == "summary" and "finished" in kinds
    assert "progress" in kinds
    finished = next(e for e in lines if e["event"] == "finished")
    assert finished["rows_done"] == finished["rows_total"] == 30_000 and finished["state"] == "finished"
    assert lines[-1]["outcome"] == "finished" and lines[-1]["exit_code"] == 0
    assert lines[-1]["run_id"] == last_run_id(conn)


def test_no_token_and_no_password_appear_in_any_output(dsn: str, conn: psycopg.Connection) -> None:
    """Neither an old nor a new token, nor the DSN's password, appears in what rotate, status, verify or an
    error print, in plain or JSON form."""
    make_table(conn, rows=5000)
    old = set(snapshot(conn).tokens.values())
    secret = "s3cret-Pa55word"
    with_password = make_conninfo(dsn, password=secret)
    outputs = [
        run(
            with_password, "rotate", "--table", "tickets", "--batch-size", "700", "--progress-interval", "0"
        ).output,
        run(with_password, "status").output,
        run(with_password, "status", "--json").output,
        run(with_password, "verify").output,
        run(with_password, "verify", "--json").output,
        run(
            with_password,
            "rotate",
            "--table",
            "tickets",
            "--json",
            "--max-batches",
            "1",
            "--progress-interval",
            "0",
        ).output,
        run(with_password, "rotate", "--table", "nope").output,
    ]
    new = set(snapshot(conn).tokens.values())
    text = "\n".join(outputs)
    assert secret not in text
    assert len(old | new) == 10_000
    assert UUID.findall(text) == []  # no uuid-shaped string at all, known token or not
    assert all(shown == "***" for shown in re.findall(r"password=(\S+)", text))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rotate", "--table", "no_such_table"], "no_such_table does not exist"),
        (
            ["rotate", "--table", "tickets", "--column", "nope"],
            "column nope of public.tickets does not exist",
        ),
        (
            ["rotate", "--table", "tickets", "--column", "title"],
            "(hint: pass the token column with --column, or its format with --format",
        ),
        (["rotate", "--table", "tickets", "--batch-size", "2000000"], "batch size must be between 1 and"),
        (["pause", "--table", "tickets"], "has no open run"),
        (["status", "--table", "no_such_table"], "does not exist"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(
    dsn: str, conn: psycopg.Connection, args: list[str], message: str
) -> None:
    """Unknown table or column, a column of the wrong type, an absurd batch size, pausing a table with no
    open run: one line on stderr with the server's message, exit code 2, no traceback, nothing changed."""
    make_table(conn, rows=100)
    checksum = table_checksum(conn)
    result = run(dsn, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and "p_" not in result.stderr
    assert table_checksum(conn) == checksum


@pytest.mark.parametrize(
    "args",
    [
        ["rotate", "--table", "tickets", "--batch-size", "0"],
        ["rotate", "--table", "tickets", "--max-replication-lag", "12XB"],
        ["rotate", "--table", "tickets", "--sleep", "x"],
    ],
)
def test_a_wrong_option_is_refused_with_exit_code_2(dsn: str, args: list[str]) -> None:
    """click refuses a malformed option before anything connects: usage error, exit code 2."""
    result = run(dsn, *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.stderr


def test_a_dsn_that_does_not_parse_is_bad_input_and_is_not_echoed() -> None:
    """A malformed DSN is exit code 2, and the message does not repeat the DSN (it may hold a password)."""
    result = run("host=localhost password=hunter2 nonsense", "status")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid DSN")
    assert "hunter2" not in result.output


def test_a_server_that_is_down_gives_exit_code_1(dsn: str) -> None:
    """No server at the address: one line saying the connection failed, exit code 1."""
    down = make_conninfo(dsn, host="127.0.0.1", port="1", connect_timeout="3")
    result = run(down, "status")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot connect")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_table_held_by_another_session_gives_exit_code_3_naming_the_holder(
    dsn: str, conn: psycopg.Connection
) -> None:
    """While a DBA's CALL rotates the table, `rotate` fails at once with exit code 3 and says which backend
    holds the table; the DBA's run goes on."""
    make_table(conn, rows=20_000)
    dba = BackgroundCall(
        dsn, "CALL token_rotation.rotate('tickets', p_batch_size => 200, p_sleep => '50ms')", "dba-psql"
    ).start()
    try:
        wait_until(lambda: last_run_id_or_none(conn) is not None, what="the DBA's run")
        result = run(dsn, "rotate", "--table", "tickets")
        assert result.exit_code == 3, result.output
        assert "already being rotated" in result.stderr and "dba-psql" in result.stderr
    finally:
        conn.execute("SELECT token_rotation.cancel('tickets')")
        dba.join()


def last_run_id_or_none(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT max(run_id) FROM token_rotation.runs").fetchone()
    return None if row is None else row[0]


def test_status_shows_a_run_started_from_psql_with_its_eta(dsn: str, conn: psycopg.Connection) -> None:
    """A run someone started in psql shows in `status` with its progress and an ETA from the log."""
    make_table(conn, rows=20_000)
    dba = BackgroundCall(
        dsn, "CALL token_rotation.rotate('tickets', p_batch_size => 200, p_sleep => '20ms')", "dba-psql"
    ).start()
    try:
        wait_until(
            lambda: bool(conn.execute("SELECT count(*) >= 5 FROM token_rotation.batches").fetchone()[0]),  # type: ignore[index]
            what="five batches",
        )
        result = run(dsn, "status", "--json")
        assert result.exit_code == 0, result.output
        (active,) = [e for e in events(result) if e["state"] == "active"]
        assert active["table"] == "public.tickets" and 0 < active["rows_done"] < 20_000
        assert active["eta"] is not None and 0 < active["eta"] < 600
        plain = run(dsn, "status")
        assert plain.exit_code == 0 and "tickets" in plain.stdout and "active" in plain.stdout
    finally:
        conn.execute("SELECT token_rotation.cancel('tickets')")
        dba.join()


def view_eta(conn: psycopg.Connection) -> float | None:
    """The ETA of the newest run as psql shows it (the progress view's eta), in seconds."""
    row = conn.execute(
        "SELECT extract(epoch FROM eta)::float8 FROM token_rotation.progress ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def slices_elapsed(conn: psycopg.Connection) -> object:
    """The working time booked on the slices of the newest run, exactly (an interval)."""
    row = conn.execute(
        "SELECT sum(elapsed) FROM token_rotation.slices"
        " WHERE run_id = (SELECT max(run_id) FROM token_rotation.runs)"
    ).fetchone()
    assert row is not None
    return row[0]


def wait_paused(conn: psycopg.Connection) -> None:
    """Waits until the run's worker has noticed the pause (its working clock, and so the ETA, stand still)."""
    wait_until(
        lambda: conn.execute("SELECT throttled FROM token_rotation.progress").fetchone() == ("paused",),
        what="the worker waiting in the pause",
    )


def test_status_shows_the_same_eta_as_the_progress_view(dsn: str, conn: psycopg.Connection) -> None:
    """One ETA: `status` (JSON and the table) shows the eta column of token_rotation.progress, the number a
    DBA reads in psql (compared while the run is paused, so that it stands still)."""
    make_table(conn, rows=20_000)
    dba = BackgroundCall(
        dsn, "CALL token_rotation.rotate('tickets', p_batch_size => 200, p_sleep => '20ms')", "dba-psql"
    ).start()
    try:
        wait_until(lambda: batches_in_log(conn) >= 5, what="five batches")
        conn.execute("SELECT token_rotation.pause('tickets')")
        wait_paused(conn)
        expected = view_eta(conn)
        assert expected is not None and expected > 0
        (shown,) = events(run(dsn, "status", "--json"))
        assert shown["eta"] == round(expected, 1)
        assert format_duration(expected) in run(dsn, "status").stdout.split("  ")
    finally:
        conn.execute("SELECT token_rotation.cancel('tickets')")
        dba.join()


def batches_in_log(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone()
    return int(row[0]) if row else 0


def test_verify_passes_for_a_finished_run_and_fails_for_an_unfinished_one(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`verify` exits 0 when every check of token_rotation.verify holds, and non-zero with FAIL lines when
    the run is not finished."""
    make_table(conn, rows=3000)
    assert (
        run(dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--max-batches", "1").exit_code == 0
    )
    unfinished = run(dsn, "verify")
    assert unfinished.exit_code == 1 and "FAIL  finished" in unfinished.stdout
    assert run(dsn, "rotate", "--table", "tickets", "--batch-size", "1000").exit_code == 0
    done = run(dsn, "verify", "--run", str(last_run_id(conn)))
    assert done.exit_code == 0, done.output
    assert f"run {last_run_id(conn)}: all 5 checks passed" in done.stdout
    missing = run(dsn, "verify", "--run", "999999")
    assert missing.exit_code == 2 and "run 999999 does not exist" in missing.stderr


def test_max_batches_stops_early_and_rotate_again_resumes_exactly_once(
    dsn: str, conn: psycopg.Connection
) -> None:
    """--max-batches stops with the run open and says how to resume; the next `rotate` resumes it (saying
    so) and the run covers every row exactly once."""
    make_table(conn, rows=5000)
    before = snapshot(conn)
    first = run(dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--max-batches", "2")
    assert first.exit_code == 0 and "stopped at 40.0%" in first.stdout and "resume with" in first.stdout
    second = run(dsn, "rotate", "--table", "tickets", "--batch-size", "1000")
    assert second.exit_code == 0 and "resuming run" in second.stdout
    assert "2,000 rows already done" in second.stdout
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_pause_unpause_and_cancel_change_the_open_run(dsn: str, conn: psycopg.Connection) -> None:
    """pause, unpause and cancel call the SQL functions on the table's open run and say which run."""
    make_table(conn, rows=3000)
    assert (
        run(dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--max-batches", "1").exit_code == 0
    )
    run_id = last_run_id(conn)
    paused = run(dsn, "pause", "--table", "public.tickets")
    assert paused.exit_code == 0 and f"paused run {run_id} of public.tickets" in paused.stdout
    assert run_state(conn, run_id) == "paused"
    unpaused = run(dsn, "unpause", "--table", "tickets")
    assert unpaused.exit_code == 0 and f"unpaused run {run_id} of public.tickets" in unpaused.stdout
    assert run_state(conn, run_id) == "active"
    cancelled = run(dsn, "cancel", "--table", "tickets")
    assert cancelled.exit_code == 0 and run_state(conn, run_id) == "cancelled"
    again = run(dsn, "cancel", "--table", "tickets")
    assert again.exit_code == 2 and "has no open run" in again.stderr


@pytest.mark.parametrize("command", ["rotate", "pause", "unpause", "cancel"])
def test_commands_that_act_on_a_run_require_the_table(
    dsn: str, conn: psycopg.Connection, command: str
) -> None:
    """rotate, pause, unpause and cancel have no default table: without --table they refuse (exit 2) and
    change nothing, even when a table named tickets exists."""
    make_table(conn, rows=100)
    checksum = table_checksum(conn)
    result = run(dsn, command)
    assert result.exit_code == 2
    assert "Missing option '--table'" in result.stderr
    assert table_checksum(conn) == checksum and last_run_id_or_none(conn) is None


def test_resume_says_which_command_is_meant() -> None:
    """`token-rotation resume` (with or without options) is no command: one line says that unpause lifts a
    pause and rotate continues a run, exit 2."""
    for args in (["resume"], ["resume", "--table", "tickets"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert result.stderr == (
            "error: there is no `resume`: `token-rotation unpause --table T` lifts a pause, "
            "`token-rotation rotate --table T` continues a run\n"
        )


def test_dry_run_prints_the_plan_and_changes_no_token(dsn: str, conn: psycopg.Connection) -> None:
    """--dry-run prints rows, slices, batches and an estimated duration, and leaves the table as it was
    with no run recorded."""
    make_table(conn, rows=10_000)
    checksum = table_checksum(conn)
    result = run(dsn, "rotate", "--table", "tickets", "--dry-run", "--batch-size", "1000", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "dry run, nothing written and no row locked" in result.stdout and "10,000 rows" in result.stdout
    assert "2 slice(s)" in result.stdout and "duration not measured" in result.stdout
    sampled = run(dsn, "rotate", "--table", "tickets", "--dry-run", "--sample", "--batch-size", "1000")
    assert sampled.exit_code == 0, sampled.output
    assert "it took row locks on one batch" in sampled.stdout and "estimated duration" in sampled.stdout
    alone = run(dsn, "rotate", "--table", "tickets", "--sample")
    assert alone.exit_code == 2 and "--sample goes with --dry-run" in alone.stderr
    as_json = run(dsn, "rotate", "--table", "tickets", "--dry-run", "--json")
    plan = next(e for e in events(as_json) if e["event"] == "note")
    assert (
        plan["dry_run"] is True and plan["rows_total"] == 10_000 and plan["batches"] == 10
    )  # 1000-row batches: the default adaptive start
    size, buffers = plan["working_set_bytes"], plan["shared_buffers_bytes"]
    actual = conn.execute(
        "SELECT pg_total_relation_size('tickets'), pg_size_bytes(current_setting('shared_buffers'))"
    ).fetchone()
    assert (size, buffers) == actual and 2 * size <= buffers
    assert "shared_buffers" in result.stdout and ": fits" in result.stdout
    assert table_checksum(conn) == checksum
    assert last_run_id_or_none(conn) is None


def test_dry_run_warns_when_the_rotation_will_outgrow_shared_buffers() -> None:
    """The table and its indexes double at most while every row gets a new version: the warning comes as
    soon as twice the size exceeds shared_buffers."""
    mb = 2**20
    assert memory_fit(100 * mb, 200 * mb).endswith("shared_buffers 200 MB: fits")
    warned = memory_fit(101 * mb, 200 * mb)
    assert "more than shared_buffers 200 MB" in warned and "expect each row to cost more" in warned
    assert "table and indexes 101 MB (up to 202 MB" in warned


def test_vacuum_reports_the_growth_then_cleans_the_dead_tuples(dsn: str, conn: psycopg.Connection) -> None:
    """After a finished run `rotate` reports how the table and its indexes grew; --vacuum then runs VACUUM
    (ANALYZE) and reports what is left."""
    make_table(conn, rows=20_000)
    result = run(dsn, "rotate", "--table", "tickets", "--json", "--vacuum", "--progress-interval", "10")
    assert result.exit_code == 0, result.output
    notes = [e for e in events(result) if e["event"] == "note"]
    growth = notes[0]["growth"]
    assert growth["table_bytes_after"] > growth["table_bytes_before"]
    assert growth["index_bytes_after"] > growth["index_bytes_before"]
    assert "VACUUM (ANALYZE) public.tickets" in notes[1]["message"]
    vacuumed = conn.execute(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'tickets'"
    ).fetchone()
    assert vacuumed is not None and vacuumed[0] >= 1


def test_workers_and_throttling_options_are_accepted_and_the_run_is_exactly_once(
    dsn: str, conn: psycopg.Connection
) -> None:
    """--workers 2 plans two slices; --sleep, --lock-timeout, --target-batch-time and --max-replication-lag
    (with a size unit) are accepted and the run is exactly once. (That each option reaches the procedure:
    test_cli_claims.py.)"""
    make_table(conn, rows=12_000)
    before = snapshot(conn)
    result = run(
        dsn,
        "rotate",
        "--table", "tickets",
        "--workers", "2",
        "--batch-size", "1000",
        "--sleep", "1ms",
        "--lock-timeout", "2s",
        "--lock-retries", "3",
        "--target-batch-time", "50ms",
        "--max-replication-lag", "100MB",
        "--no-synchronous-commit",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = last_run_id(conn)
    slices = conn.execute(
        "SELECT count(*) FROM token_rotation.slices WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert slices == (2,)
    assert "2 worker(s)" in result.stdout
    assert_rotated_exactly_once(conn, before, run_id)


def test_a_resumed_multi_slice_run_gets_one_worker_per_unfinished_slice(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A two-slice run stopped early is resumed by a plain `rotate` with two workers, finishing both
    slices."""
    make_table(conn, rows=8000)
    before = snapshot(conn)
    assert (
        run(
            dsn, "rotate", "--table", "tickets", "--workers", "2", "--batch-size", "500", "--max-batches", "2"
        ).exit_code
        == 0
    )
    result = run(dsn, "rotate", "--table", "tickets", "--batch-size", "500")
    assert result.exit_code == 0, result.output
    assert "resuming run" in result.stdout and "2 worker(s)" in result.stdout
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_help_lists_every_command_and_the_exit_codes() -> None:
    """`token-rotation --help` explains each command in one line and documents the exit codes."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in (
        "install",
        "uninstall",
        "seed",
        "rotate",
        "status",
        "verify",
        "pause",
        "unpause",
        "cancel",
    ):
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.MULTILINE), command
    assert not re.search(r"^\s+resume\s", result.stdout, re.MULTILINE)
    for code in ("0 done", "1 any other", "2 bad input", "3 another run", "130 interrupted"):
        assert code in " ".join(result.stdout.split())


def test_seed_makes_the_demo_table_with_the_rows_asked(dsn: str, conn: psycopg.Connection) -> None:
    """`seed --rows N --table T` creates the demo table with N rows and unique tokens."""
    result = run(dsn, "seed", "--rows", "25000", "--table", "demo_tickets", "--batch", "10000")
    assert result.exit_code == 0, result.output
    assert "seeded 25,000 rows" in result.stdout
    row = conn.execute("SELECT count(*), count(DISTINCT token) FROM demo_tickets").fetchone()
    assert row == (25_000, 25_000)
    refused = run(dsn, "seed", "--rows", "10", "--table", "pg_class")
    assert refused.exit_code == 2


def test_json_reports_an_error_event_and_a_summary_with_the_exit_code(
    dsn: str, conn: psycopg.Connection
) -> None:
    """With --json a failure still ends the stream properly: an error event and a summary that carry the
    exit code, while stderr has the one-line message."""
    make_table(conn, rows=100)
    result = run(dsn, "rotate", "--table", "tickets", "--json", "--column", "title")
    assert result.exit_code == 2
    lines = events(result)
    assert [e["event"] for e in lines] == ["error", "summary"]
    assert lines[0]["exit_code"] == 2 and "is not of type uuid" in lines[0]["message"]
    assert lines[1]["outcome"] == "error" and lines[1]["exit_code"] == 2
    assert result.stderr.startswith("error: ")


def after_batches(conn: psycopg.Connection, n: int, *statements: str, pause: float = 0.0) -> threading.Thread:
    """In a thread: once n batches are committed, run each statement (with `pause` seconds between)."""

    def act() -> None:
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            wait_until(
                lambda: other.execute("SELECT count(*) FROM token_rotation.batches").fetchone() >= (n,),  # type: ignore[operator]
                what=f"{n} batches",
            )
            for statement in statements:
                other.execute(statement)
                time.sleep(pause)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_a_run_paused_and_unpaused_from_elsewhere_shows_paused_then_finishes(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A DBA pauses the run the driver is rotating (token_rotation.pause in another session): the progress
    says paused, the working clock stops, and the ETA the driver shows is the view's (the one psql shows);
    after unpause() the driver finishes the run exactly once."""
    make_table(conn, rows=6000)
    before = snapshot(conn)
    seen: list[float | None] = []
    booked: list[object] = []

    def dba() -> None:
        with psycopg.connect(dsn, autocommit=True) as other:
            wait_until(lambda: batches_in_log(other) >= 3, what="3 batches")
            other.execute("SELECT token_rotation.pause('tickets')")
            wait_paused(other)
            seen.append(view_eta(other))
            booked.append(slices_elapsed(other))
            time.sleep(2.0)  # the worker checks the pause twice meanwhile: neither check books any time
            seen.append(view_eta(other))
            booked.append(slices_elapsed(other))
            other.execute("SELECT token_rotation.unpause('tickets')")

    actor = threading.Thread(target=dba, daemon=True)
    actor.start()
    result = run(
        dsn, "rotate", "--table", "tickets", "--json", "--batch-size", "200", "--sleep", "20ms",
        "--progress-interval", "0",
    )  # fmt: skip
    actor.join(timeout=30)
    assert not actor.is_alive()
    assert result.exit_code == 0, result.output
    paused = [e for e in events(result) if e["event"] == "progress" and e["state"] == "paused"]
    assert len(paused) >= 2
    assert paused[-1]["elapsed"] - paused[0]["elapsed"] < 0.5  # the clock stood still while paused
    assert len(seen) == 2 and seen[0] is not None and seen[0] == seen[1]
    assert len(booked) == 2 and booked[0] == booked[1], booked  # the working clock stood still, exactly
    standing = [e for e in paused if e["throttled"] == "paused"]
    assert standing and all(e["eta"] == round(seen[0], 1) for e in standing), (seen, standing)
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_run_cancelled_from_elsewhere_stops_the_driver_with_exit_code_130(
    dsn: str, conn: psycopg.Connection
) -> None:
    """token_rotation.cancel() from another session stops the driver's workers after their batch; the
    driver says the run was cancelled and exits 130; the next rotate starts a new run."""
    make_table(conn, rows=20_000)
    actor = after_batches(conn, 3, "SELECT token_rotation.cancel('tickets')")
    result = run(
        dsn,
        "rotate",
        "--table",
        "tickets",
        "--batch-size",
        "200",
        "--sleep",
        "20ms",
        "--progress-interval",
        "0",
    )
    actor.join(timeout=30)
    assert not actor.is_alive()
    assert result.exit_code == 130, result.output
    assert "was cancelled" in result.stdout
    cancelled = last_run_id(conn)
    assert run_state(conn, cancelled) == "cancelled"
    assert run(dsn, "rotate", "--table", "tickets").exit_code == 0
    assert last_run_id(conn) == cancelled + 1


def test_install_and_uninstall_are_idempotent_and_rotate_says_when_the_tool_is_missing(
    dsn: str, conn: psycopg.Connection
) -> None:
    """uninstall twice, then rotate: one line saying to run install (exit 1); install twice: rotate works."""
    make_table(conn, rows=1000)
    for _ in range(2):
        removed = run(dsn, "uninstall")
        assert removed.exit_code == 0 and "removed token_rotation from" in removed.stdout
    missing = run(dsn, "rotate", "--table", "tickets")
    assert missing.exit_code == 1
    assert (
        missing.stderr.strip()
        == "error: token_rotation is not installed in this database (run: token-rotation install)"
    )
    for _ in range(2):
        assert run(dsn, "install").exit_code == 0
    assert run(dsn, "rotate", "--table", "tickets").exit_code == 0


def test_rotate_passes_on_the_procedures_warning_about_rows_left_out(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A BEFORE UPDATE trigger that skips rows makes the procedure WARN; the CLI shows that warning."""
    make_table(conn, rows=300)
    conn.execute(
        "CREATE FUNCTION skip_some() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF OLD.status = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER skip_some BEFORE UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION skip_some()"
    )
    skipped = conn.execute("SELECT count(*) FROM tickets WHERE status = 0").fetchone()
    assert skipped is not None and skipped[0] > 0
    result = run(dsn, "rotate", "--table", "tickets")
    assert result.exit_code == 0, result.output
    expected = (
        f"warning: run 1 of public.tickets finished with {skipped[0]} row(s) fewer than the 300 counted"
    )
    assert expected in result.output


def test_every_option_of_rotate_is_a_field_of_the_request_and_back() -> None:
    """The options of `rotate` are declared once, as click options (options.ROTATE_OPTIONS); Request, which
    carries them typed, has a field for each of them by its Python name (from_options() would drop an option
    it lacks), and none but the two it works out itself; Options has the procedure's parameters (a test of
    test_cli_claims checks the CALL against rotate()'s own)."""
    from dataclasses import fields

    from token_rotation.options import rotate_params
    from token_rotation.runner import Request

    rendering = {"as_json", "progress_interval"}  # the renderer's, not the request's
    worked_out = {"resuming", "stop_at"}  # from the database: an open run, the window's end by its clock
    declared = {p.name for p in rotate_params()} - rendering
    assert declared == {f.name for f in fields(Request)} - worked_out
