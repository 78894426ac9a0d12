"""Metrics a dashboard reads: `status --format prometheus` parsed by prometheus_client's own text parser, the
postgres_exporter queries file run against real runs, and `status --watch` ended by Ctrl-C."""

from __future__ import annotations

import queue
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from token_rotation import SQL_DIR
from token_rotation.cli import cli

from background import BackgroundCall, spawn_cli, wait_until
from helpers import make_table

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@pytest.fixture
def runs(conn: psycopg.Connection, dsn: str) -> Iterator[dict[str, Any]]:
    """Three runs: public.orders finished, public.tickets open and paused with its worker waiting
    (throttled 'paused'), public.invoices open after 3 of its batches with nobody working on it."""
    make_table(conn, "orders", rows=1_500)
    conn.execute("CALL token_rotation.rotate('orders', p_batch_size => 500, p_quiet => true)")
    make_table(conn, "invoices", rows=2_000)
    conn.execute(
        "CALL token_rotation.rotate('invoices', p_batch_size => 300, p_max_batches => 3, p_quiet => true)"
    )
    make_table(conn, "tickets", rows=5_000)
    call = BackgroundCall(
        dsn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '50ms', p_quiet => true)",
        "tr_test_metrics_worker",
    ).start()
    try:
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT rows_done > 0 FROM token_rotation.progress WHERE table_name = 'tickets'::regclass"
                ).fetchone()
                == (True,)
            ),
            what="a first batch of tickets",
        )
        conn.execute("SELECT token_rotation.pause('tickets')")
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT throttled FROM token_rotation.progress WHERE table_name = 'tickets'::regclass"
                ).fetchone()
                == ("paused",)
            ),
            what="the tickets worker to wait, paused",
        )
        rows = conn.execute(
            "SELECT (SELECT relname FROM pg_class WHERE oid = table_name) AS t, run_id, state, rows_done,"
            " rows_total FROM token_rotation.progress"
        ).fetchall()
        tokens = {
            str(r[0])
            for t in ("orders", "invoices", "tickets")
            for r in conn.execute(f"SELECT token FROM public.{t}")  # noqa: S608 - fixed names
        }
        yield {"progress": {r[0]: r[1:] for r in rows}, "tokens": tokens}
    finally:
        conn.execute("SELECT token_rotation.cancel('tickets')")
        call.join()


def samples(text: str) -> dict[tuple[str, str], list[Any]]:
    """(metric name, table) -> samples, from the parsed text; every family must carry HELP and TYPE."""
    found: dict[tuple[str, str], list[Any]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", f"{family.name} has type {family.type}"
        assert family.documentation, f"{family.name} has no HELP"
        for sample in family.samples:
            found.setdefault((sample.name, sample.labels["table"]), []).append(sample)
    return found


def test_status_in_prometheus_format_parses_and_holds_each_runs_numbers(
    dsn: str, runs: dict[str, Any]
) -> None:
    """status --format prometheus is text exposition that prometheus_client parses: per run and table the
    rows done/total of the view, rows/s, an ETA (0 when finished), the state as 0/1 series, the throttled
    reason as a label; no token value and no uuid at all."""
    result = CliRunner().invoke(
        cli, ["--dsn", dsn, "status", "--format", "prometheus"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "# HELP token_rotation_rows_done " in result.output
    assert "# TYPE token_rotation_rows_done gauge" in result.output
    found = samples(result.output)
    for table, (run_id, state, done, total) in runs["progress"].items():
        name = f"public.{table}"
        (rows_done,) = found[("token_rotation_rows_done", name)]
        assert rows_done.labels["run_id"] == str(run_id)
        assert rows_done.value == done
        assert found[("token_rotation_rows_total", name)][0].value == total
        states = {s.labels["state"]: s.value for s in found[("token_rotation_run_state", name)]}
        assert states == {s: float(s == state) for s in ("active", "paused", "finished", "cancelled")}
        assert found[("token_rotation_rows_per_second", name)][0].value > 0
        assert found[("token_rotation_slices", name)][0].value == 1
        # workers: the sessions on its slices now (the paused tickets' worker waits; the others have none);
        # sessions, the same under its old name, kept a release
        working = float(table == "tickets")
        assert found[("token_rotation_workers", name)][0].value == working
        assert found[("token_rotation_sessions", name)][0].value == working
    assert found[("token_rotation_eta_seconds", "public.orders")][0].value == 0
    assert found[("token_rotation_eta_seconds", "public.invoices")][0].value >= 0  # present: open, known
    assert 0 < found[("token_rotation_rows_done", "public.invoices")][0].value < 2_000
    (throttled,) = found[("token_rotation_throttled", "public.tickets")]
    assert throttled.labels["reason"] == "paused" and throttled.value == 1
    assert ("token_rotation_throttled", "public.invoices") not in found
    assert not UUID.search(result.output)
    assert not any(token in result.output for token in runs["tokens"])


def test_status_json_and_format_json_are_the_same_and_cannot_disagree(dsn: str, runs: dict[str, Any]) -> None:
    """--json is --format json (same output); --json with another --format is refused as bad input (2)."""
    as_json = CliRunner().invoke(cli, ["--dsn", dsn, "status", "--json"], catch_exceptions=False)
    as_format = CliRunner().invoke(cli, ["--dsn", dsn, "status", "--format", "json"], catch_exceptions=False)
    assert as_json.exit_code == as_format.exit_code == 0
    strip = re.compile(r'"(elapsed|eta|rows_per_second|percent)": [0-9.e+-]+|null')
    assert strip.sub("", as_json.output) == strip.sub("", as_format.output)
    assert len(as_json.output.splitlines()) == 3
    both = CliRunner().invoke(cli, ["--dsn", dsn, "status", "--json", "--format", "prometheus"])
    assert both.exit_code == 2 and "--json is --format json" in both.output


def test_every_postgres_exporter_query_runs_and_returns_its_declared_columns(
    conn: psycopg.Connection, runs: dict[str, Any]
) -> None:
    """Each query of sql/examples/postgres_exporter.yml executes on a database with real runs, returns
    exactly the columns its metrics declare (labels as text, gauges as numbers), and the values agree with
    the progress view: rows done/total per run, the finished run's ETA 0, the paused run's reason; the ETA
    is NULL (NaN in the exporter) only for an open run with too few batches to tell."""
    queries = yaml.safe_load(SQL_DIR.joinpath("examples", "postgres_exporter.yml").read_text())
    assert set(queries) == {"token_rotation_run", "token_rotation_throttled"}
    results: dict[str, list[dict[str, Any]]] = {}
    for name, spec in queries.items():
        declared = {column: meta["usage"] for m in spec["metrics"] for column, meta in m.items()}
        cur = conn.execute(spec["query"])
        assert cur.description is not None
        assert [d.name for d in cur.description] == list(declared), name
        rows = [dict(zip(declared, r, strict=True)) for r in cur.fetchall()]
        assert rows, f"{name} returned no rows"
        for row in rows:
            for column, usage in declared.items():
                if usage == "LABEL":
                    assert isinstance(row[column], str) and row[column], (name, column)
                elif column == "eta_seconds" and row[column] is None:  # the exporter's NaN: not known yet
                    assert row["open"] == 1 and row["batches_done"] < 3, row
                else:
                    assert usage == "GAUGE" and isinstance(row[column], int | float), (name, column, row)
                    assert row[column] >= 0, (name, column, row)
        results[name] = rows
    by_table = {r["table_name"]: r for r in results["token_rotation_run"]}
    assert set(by_table) == {"public.orders", "public.invoices", "public.tickets"}
    for table, (run_id, state, done, total) in runs["progress"].items():
        row = by_table[f"public.{table}"]
        assert (row["run_id"], row["state"], row["rows_done"], row["rows_total"]) == (
            str(run_id),
            state,
            done,
            total,
        )
    assert by_table["public.orders"]["eta_seconds"] == 0 and by_table["public.orders"]["open"] == 0
    assert by_table["public.invoices"]["eta_seconds"] is not None and by_table["public.invoices"]["open"] == 1
    assert [(r["table_name"], r["reason"]) for r in results["token_rotation_throttled"]] == [
        ("public.tickets", "paused")
    ]
    assert not any(UUID.search(str(v)) for r in results["token_rotation_run"] for v in r.values())


def test_status_watch_redraws_every_second_and_exits_0_on_ctrl_c(conn: psycopg.Connection, dsn: str) -> None:
    """status --watch prints the table of runs again every second (with the new numbers) until SIGINT, then
    exits 0 without a traceback."""
    make_table(conn, "orders", rows=600)
    conn.execute(
        "CALL token_rotation.rotate('orders', p_batch_size => 200, p_max_batches => 1, p_quiet => true)"
    )
    proc = spawn_cli(dsn, "tr_test_watch", "status", "--watch")
    try:
        assert proc.stdout is not None
        blocks: list[str] = []
        current = ""
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout

        def read() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 30
        while not (blocks and "finished" in blocks[-1]) and time.monotonic() < deadline:
            # wait for a line at most until the deadline: a watch that stopped drawing must fail the test,
            # not block it for ever on readline() (a thread reads, this one waits on the queue)
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line.strip():
                current += line
                continue
            blocks.append(current)
            current = ""
            if len(blocks) == 1:  # the first drawing is on screen: finish the run, watch the next ones
                conn.execute("CALL token_rotation.rotate('orders', p_batch_size => 200, p_quiet => true)")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # stdout is the reading thread's; stderr is read once the process ended
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert len(blocks) >= 2 and all("1 run(s)" in b for b in blocks), blocks
    assert "200/600" in blocks[0] and "active" in blocks[0]
    assert "600/600" in blocks[-1] and "finished" in blocks[-1]
