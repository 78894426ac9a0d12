"""`rotate --dry-run`: the plan of a run (token_rotation.plan: rows, slices, batches, optionally one sample
batch rolled back), and whether the table fits in shared_buffers. Nothing is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from token_rotation import render
from token_rotation.errors import EXIT_OK, ToolError
from token_rotation.units import format_count, format_duration, format_size

if TYPE_CHECKING:
    from token_rotation.runner import Request


def plan(monitor: psycopg.Connection, renderer: render.Renderer, oid: int, request: Request) -> int:
    """The plan of a run (token_rotation.plan: rows, slices, batches), printed. Nothing is written and no row
    is locked, unless --sample asks for one sample batch (run, timed and rolled back, holding its rows' locks
    meanwhile) to estimate the duration."""
    timeout = ", p_lock_timeout => make_interval(secs => %(lock_timeout)s)"
    with monitor.cursor(row_factory=dict_row) as cur:
        plan = cur.execute(
            sql.SQL(
                "SELECT table_name, array_to_string(key_columns, ', ') AS key_column, rows_total, rows_exact,"
                " slices,"
                " batch_size, batches, sample_rows, sample_seconds,"
                " extract(epoch FROM estimated_duration)::float8 AS estimated_seconds"
                " FROM token_rotation.plan(%(oid)s::oid::regclass, p_column => %(column)s,"
                " p_batch_size => %(batch_size)s, p_workers => %(workers)s, p_sample => %(sample)s,"
                " p_format => %(format)s, p_prefix => %(prefix)s, p_previous_column => %(previous)s,"
                " p_rotated_at_column => %(rotated_at)s, p_key => %(key)s::name[],"
                " p_trust_table_owner => %(trust_table_owner)s, p_where => %(where)s,"
                " p_fill_null => %(fill_null)s,"
                " p_older_than => pg_catalog.make_interval(secs => %(older_than)s::pg_catalog.float8){})"
            ).format(sql.SQL(timeout if request.lock_timeout is not None else "")),
            {
                "oid": oid,
                "column": request.column,
                "batch_size": request.batch_size,
                "format": request.token_format,
                "prefix": request.prefix,
                "previous": request.previous_column,
                "rotated_at": request.rotated_at_column,
                "workers": request.workers or 1,
                "lock_timeout": request.lock_timeout,
                "sample": request.sample,
                "key": request.key,
                "trust_table_owner": request.trust_table_owner,
                "where": request.where,
                "fill_null": request.fill_null,
                "older_than": request.older_than,
            },
        ).fetchone()
    if plan is None:
        raise ToolError("token_rotation.plan() returned nothing")
    data: dict[str, Any] = {
        "table": plan["table_name"],
        **{k: plan[k] for k in ("key_column", "rows_total", "rows_exact", "slices", "batch_size", "batches")},
        **{k: plan[k] for k in ("sample_rows", "sample_seconds", "estimated_seconds")},
        "dry_run": True,
        "sample": request.sample,
    }
    total = (
        format_count(plan["rows_total"])
        if plan["rows_exact"]
        else f"about {format_count(plan['rows_total'])}"
    )
    if request.sample:
        head = (
            "dry run with a sample batch (it took row locks on one batch, then rolled back; no token changed)"
        )
        estimate = (
            f"a sample batch of {format_count(plan['sample_rows'])} rows took "
            f"{format_duration(plan['sample_seconds'])}: estimated duration "
            f"{format_duration(plan['estimated_seconds'] or 0)}"
        )
    else:
        head = "dry run, nothing written and no row locked"
        estimate = "duration not measured (--dry-run --sample times one batch, rolled back, locking its rows)"
    renderer.note(
        f"{head}: {plan['table_name']} has {total} rows to rotate "
        f"(key {plan['key_column']}), {plan['slices']} slice(s), {format_count(plan['batches'])} batches of "
        f"{plan['batch_size']}; {estimate}; {_memory_fit(monitor, oid, data)}",
        data,
    )
    return EXIT_OK


def _memory_fit(monitor: psycopg.Connection, oid: int, data: dict[str, Any]) -> str:
    """The table's size against shared_buffers, read from the server (see memory_fit)."""
    with monitor.cursor(row_factory=dict_row) as cur:
        sizes = cur.execute(
            "SELECT total_bytes, pg_size_bytes(current_setting('shared_buffers')) AS shared_buffers"
            " FROM token_rotation.table_sizes(%s::oid::regclass)",
            (oid,),
        ).fetchone()
    if sizes is None or sizes["total_bytes"] is None:
        return "working set unknown"
    data.update(
        working_set_bytes=int(sizes["total_bytes"]), shared_buffers_bytes=int(sizes["shared_buffers"])
    )
    return memory_fit(int(sizes["total_bytes"]), int(sizes["shared_buffers"]))


def memory_fit(table_and_indexes: int, shared_buffers: int) -> str:
    """Whether the table and its indexes fit in shared_buffers, now and once every row has a new version.
    The estimate of a dry run comes from one warm batch; past shared_buffers, each row's random token-index
    insert costs buffer misses, and the time per row grows (BENCHMARKS.md, 10M rows)."""
    text = (
        f"table and indexes {format_size(table_and_indexes)} "
        f"(up to {format_size(2 * table_and_indexes)} as rows get new versions)"
    )
    if 2 * table_and_indexes <= shared_buffers:
        return f"{text}, shared_buffers {format_size(shared_buffers)}: fits"
    return (
        f"{text}, more than shared_buffers {format_size(shared_buffers)}: expect each row to cost more than "
        "the sample batch did (up to about 2x per row; BENCHMARKS.md, 10M rows)"
    )
