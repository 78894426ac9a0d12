"""`token-rotation schedule` / `unschedule` and the schedules in `status`: rotation as a policy, run by
pg_cron (sql/36_*.sql do the work: token_rotation.schedule(), unschedule(), schedules()). A job CALLs
rotate() with the options given here, as the role that made it; without --batch-size or --target-batch-time
it gets the CLI's batches of about 10 ms, so that a scheduled run behaves as `rotate` does."""

from __future__ import annotations

import json
from typing import Any

import click
import psycopg
from psycopg.rows import dict_row

from token_rotation.errors import EXIT_BAD_INPUT, ToolError, redact
from token_rotation.options import rotate_params
from token_rotation.rotation import INTERVALS

# the options of `rotate` a job takes (a job is one session: no --workers; the window is --for), and the
# rotate() parameter each becomes where the name differs
JOB_OPTIONS = {
    "column": "column",
    "key": "key",
    "trust_table_owner": "trust_table_owner",
    "batch_size": "batch_size",
    "token_format": "format",
    "prefix": "prefix",
    "previous_column": "previous_column",
    "rotated_at_column": "rotated_at_column",
    "where": "where",
    "older_than": "older_than",
    "fill_null": "fill_null",
    "window": "max_duration",
    "sleep": "sleep",
    "lock_timeout": "lock_timeout",
    "lock_retries": "lock_retries",
    "target_batch_time": "target_batch_time",
    "max_replication_lag": "max_replication_lag",
    "max_replay_lag": "max_replay_lag",
    "max_archive_queue": "max_archive_queue",
    "pause_on_autovacuum": "pause_on_autovacuum",
    "synchronous_commit": "synchronous_commit",
}
# given in seconds, passed as intervals: the same options as for the workers' CALL, and --for
SECONDS = INTERVALS | {"window"}


def job_params() -> list[click.Parameter]:
    """The click options of `rotate` that `schedule` takes too (declared once, in options.py), but --table,
    which `schedule` declares itself (not required with --list)."""

    return [p for p in rotate_params() if p.name in JOB_OPTIONS]


def job_options(given: dict[str, Any]) -> dict[str, Any]:
    """The job's options for token_rotation.schedule(): rotate()'s parameter names without p_, each value as
    text its parameter's type reads; what is not given is left to rotate()'s defaults (default_options())."""
    out: dict[str, Any] = {}
    for name, parameter in JOB_OPTIONS.items():
        value = given.get(name)
        if value is None or value is False:
            continue
        if name in SECONDS:
            value = f"{value} seconds"
        elif name == "key":
            value = (
                "{" + ",".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in value) + "}"
            )
        out[parameter] = value
    return out


def schedule(conn: psycopg.Connection, table_oid: int, cron: str, given: dict[str, Any]) -> int:
    """Creates (or replaces) the table's job; returns its jobid."""
    row = conn.execute(
        "SELECT token_rotation.schedule(%s::oid::regclass, %s, %s::jsonb)",
        (table_oid, cron, json.dumps(job_options(given))),
    ).fetchone()
    assert row is not None
    return int(row[0])


def unschedule(conn: psycopg.Connection, table_oid: int) -> bool:
    row = conn.execute("SELECT token_rotation.unschedule(%s::oid::regclass)", (table_oid,)).fetchone()
    return bool(row and row[0])


def schedules(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The schedules the caller can see (none, without error, where pg_cron is absent), their server text
    redacted (pg_cron's message can quote a failed statement)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT jobid, table_name::text AS table, table_name::oid::bigint AS table_oid, schedule,"
            " command, active, last_start, last_end, last_status, last_message, run_id, run_state,"
            " oldest_token_seconds, never_rotated"
            " FROM token_rotation.schedules()"
        ).fetchall()
    for row in rows:
        row["command"] = redact(row["command"] or "")
        row["last_message"] = row["last_message"] and redact(row["last_message"])
    return rows


def require_table(table: str | None) -> str:
    if not table:
        raise ToolError("schedule needs --table (or --list to show the schedules)", EXIT_BAD_INPUT)
    return table
