"""The driver's side of the server API: every query the commands run against the tool's schema, reading a
run's state (the `token_rotation.progress` view, which also holds the one ETA and its workers, the sizes of
the target table) and calling its control functions (pause, cancel, hold, set_options, verify). Every number
here comes from the database and its clock; nothing is computed from the driver's own timing, so what the
driver shows is also what a DBA sees in psql.

Words: a run is cut into *slices* (disjoint key ranges, fixed when the run starts); its *workers* are the
sessions working on them right now (one slice each): the view's columns `slices` and `workers`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row, dict_row, kwargs_row

from token_rotation.connection import user_path
from token_rotation.errors import EXIT_BAD_INPUT, EXIT_OTHER, ToolError, printable, redact
from token_rotation.rotation import OPTIONS_CHANGED, named_arguments

PROGRESS_COLUMNS = (
    "run_id, coalesce((SELECT pg_catalog.format('%%I.%%I'::text, n.nspname, c.relname)"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
    " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
    " WHERE c.oid OPERATOR(pg_catalog.=) table_name),"
    " table_name::text) AS table_name, token_column::text AS token_column, state,"
    " workers, slices, rows_done, rows_total, rows_total_exact,"
    " percent::float8 AS percent, extract(epoch FROM elapsed)::float8 AS elapsed, rows_per_second,"
    " batches_done, extract(epoch FROM eta)::float8 AS eta, throttled, started_at, finished_at,"
    " heartbeat_at, last_error, slices_left, free_slices, options,"
    # who keeps VACUUM from reclaiming the rotated rows: transactions older than the run, or than a minute
    " CASE WHEN state IN ('active', 'paused') THEN token_rotation.xmin_holders("
    "greatest(started_at, pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute')) END AS xmin_holders"
)


@dataclass(frozen=True)
class Progress:
    """One row of token_rotation.progress, with elapsed and the ETA in seconds."""

    run_id: int
    table_name: str
    token_column: str
    state: str
    workers: int  # sessions working on the run's slices now
    slices: int  # key slices of the run
    rows_done: int
    rows_total: int
    rows_total_exact: bool
    percent: float
    elapsed: float
    rows_per_second: int
    batches_done: int
    eta: float | None  # the view's ETA: the same number psql shows
    throttled: str | None
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    last_error: str | None
    slices_left: int
    free_slices: int  # unfinished slices nobody works on
    xmin_holders: str | None = None  # what holds the xmin horizon back (VACUUM cannot reclaim behind it)
    options: dict[str, Any] | None = None  # the run's options (runs.options; set_options() changes them)

    @property
    def open(self) -> bool:
        return self.state in ("active", "paused")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Progress:
        """A row of the view, its text made safe to show: the free text (another role's hold reason, an
        error, application names) through redact(), the names through printable()."""
        values = {k: row[k] for k in cls.__dataclass_fields__}
        for key in ("throttled", "last_error", "xmin_holders"):
            values[key] = server_text(values[key])
        for key in ("table_name", "token_column"):
            values[key] = printable(values[key])
        for key in ("workers", "rows_done", "rows_per_second", "batches_done", "slices_left", "free_slices"):
            values[key] = int(values[key] or 0)
        values["elapsed"] = float(values["elapsed"] or 0.0)
        return cls(**values)


# rows of the progress view, made into Progress (and their text made safe) as psycopg reads them
PROGRESS_ROW = kwargs_row(lambda **row: Progress.from_row(row))


def server_text(text: str | None) -> str | None:
    """Free text read from the server (a reason, an error, a NOTICE, application names), as it may be shown:
    redacted of anything token- or password-shaped and of control characters (errors.redact)."""
    return None if text is None else redact(text)


def check_installed(conn: psycopg.Connection) -> None:
    """Raises a ToolError saying what to do when the tool is not installed in this database."""
    row = conn.execute(
        "SELECT pg_catalog.to_regclass('token_rotation.runs'::text) IS NOT NULL AS installed"
    ).fetchone()
    if not row or not row[0]:
        raise ToolError("token_rotation is not installed in this database (run: token-rotation install)")


def distributed(conn: psycopg.Connection, table_oid: int) -> bool:
    """Whether a table is a Citus distributed table: one CALL on the coordinator then rotates its shards on
    their nodes, with --workers sessions per node (token_rotation_internal.rotate_citus())."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM token_rotation_internal.citus_shards(%s::oid::regclass))", (table_oid,)
    ).fetchone()
    return bool(row and row[0])


def resolve_table(conn: psycopg.Connection, table: str) -> tuple[int, str]:
    """The oid and the schema-qualified, quoted name of a table given as psql would take it."""
    # the name as the caller typed it, so through their search_path; every function and operator qualified
    with user_path(conn), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT c.oid::bigint AS oid,"
            " pg_catalog.format('%%I.%%I'::text, n.nspname, c.relname) AS qualified"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
            " WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s::text)",
            (table,),
        ).fetchone()
    if row is None:
        raise ToolError(
            f"table {table} does not exist (pass --table as schema.table, e.g. public.tickets)",
            EXIT_BAD_INPUT,
        )
    return int(row["oid"]), str(row["qualified"])


def read(conn: psycopg.Connection, run_id: int) -> Progress | None:
    """The progress of one run."""
    with conn.cursor(row_factory=PROGRESS_ROW) as cur:
        return cur.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM token_rotation.progress WHERE run_id = %s", (run_id,)
        ).fetchone()


def runs(conn: psycopg.Connection, table_oid: int | None = None) -> list[Progress]:
    """Every run (of one table, when given), newest first."""
    with conn.cursor(row_factory=PROGRESS_ROW) as cur:
        return cur.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM token_rotation.progress"
            " WHERE %(oid)s::oid IS NULL OR table_name = %(oid)s::oid::regclass ORDER BY run_id DESC",
            {"oid": table_oid},
        ).fetchall()


def open_run(conn: psycopg.Connection, table_oid: int) -> Progress | None:
    """The open (active or paused) run of a table, if any."""
    with conn.cursor(row_factory=PROGRESS_ROW) as cur:
        return cur.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM token_rotation.progress"
            " WHERE table_name = %s::oid::regclass AND state IN ('active', 'paused')",
            (table_oid,),
        ).fetchone()


def run_options(conn: psycopg.Connection, run_id: int) -> dict[str, Any]:
    """The options a run keeps (runs.options: format, batch size, sleep, ...); {} for a run that has none. Its
    target batch time (kept as interval text) in seconds, absent for fixed batches."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT options, extract(epoch FROM (options->>'target_batch_time')::interval)::float8 AS target"
            " FROM token_rotation.runs WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    if not row or not row["options"]:
        return {}
    options = dict(row["options"])
    if row["target"] is not None:
        options["target_batch_time"] = row["target"]
    return options


def newest_run_id(conn: psycopg.Connection, table_oid: int) -> int:
    """The newest run id of a table (0 when it has none)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT coalesce(max(run_id), 0) AS run_id FROM token_rotation.runs"
            " WHERE target = %s::oid::regclass",
            (table_oid,),
        ).fetchone()
    return int(row["run_id"]) if row else 0


def run_after(conn: psycopg.Connection, table_oid: int, after: int) -> int | None:
    """The open run of a table, or its newest run with an id above `after`."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT run_id FROM token_rotation.runs WHERE target = %s::oid::regclass"
            " AND (state IN ('active', 'paused') OR run_id > %s) ORDER BY run_id DESC LIMIT 1",
            (table_oid, after),
        ).fetchone()
    return int(row["run_id"]) if row else None


def holders(conn: psycopg.Connection, run_id: int) -> str | None:
    """The sessions working on a run now, one line (token_rotation.holders): backend pid, application_name,
    slice, state; None when nobody works on it."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT token_rotation.holders(%s) AS holders", (run_id,)).fetchone()
    return server_text(str(row["holders"])) if row and row["holders"] else None


def control(conn: psycopg.Connection, table: str, function: str) -> tuple[int, str]:
    """Calls token_rotation.pause / unpause / cancel on a table's open run: (its run id, the table's name)."""
    oid, qualified = resolve_table(conn, table)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            sql.SQL("SELECT token_rotation.{}(%s::oid::regclass) AS run_id").format(sql.Identifier(function)),
            (oid,),
        ).fetchone()
    if row is None:
        raise ToolError(f"token_rotation.{function}() returned nothing", EXIT_OTHER)
    return int(row["run_id"]), qualified


def newest_run(conn: psycopg.Connection, table: str | None) -> int:
    """The newest run (of a table given as psql would take it, when given); a ToolError when there is none."""
    found = runs(conn, resolve_table(conn, table)[0] if table else None)
    if not found:
        raise ToolError("no run to verify yet" + (f" for {table}" if table else ""), EXIT_BAD_INPUT)
    return found[0].run_id


def verify(conn: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    """token_rotation.verify(run): one row per check (check_name, ok, detail)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT check_name, ok, detail FROM token_rotation.verify(%s)", (run_id,)
        ).fetchall()


@dataclass(frozen=True)
class Sizes:
    """The on-disk size of a table and of its indexes, and its dead tuples (token_rotation.table_sizes)."""

    table_bytes: int
    index_bytes: int
    dead_tuples: int


def sizes(conn: psycopg.Connection, table_oid: int) -> Sizes:
    """Current sizes of a table and its indexes, and its dead tuples (statistics lag by a second or so)."""
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    with conn.cursor(row_factory=class_row(Sizes)) as cur:
        row = cur.execute(
            "SELECT table_bytes, indexes_bytes AS index_bytes, coalesce(dead_tuples, 0) AS dead_tuples"
            "  FROM token_rotation.table_sizes(%s::oid::regclass)",
            (table_oid,),
        ).fetchone()
    if row is None:
        raise ToolError("the table disappeared", EXIT_OTHER)
    return row


def retune(conn: psycopg.Connection, table: str, given: dict[str, Any], unset: list[str]) -> str:
    """token_rotation.set_options() on a table's open run, with a named argument per option given and
    p_unset (--batch-size alone is a fixed size, as for rotate: it unsets the target batch time). Returns
    the line that says what changed (the function's NOTICE), or that nothing did."""
    oid, qualified = resolve_table(conn, table)
    found = open_run(conn, oid)
    if found is None:
        raise ToolError(f"{qualified} has no open run (rotate starts one with these options)", EXIT_BAD_INPUT)
    if given.get("batch_size") is not None and given.get("target_batch_time") is None:
        unset = [*unset, "target_batch_time"]
    changed: list[str] = []
    conn.add_notice_handler(
        lambda diag: (
            changed.append(redact(diag.message_primary or "")) if diag.sqlstate == OPTIONS_CHANGED else None
        )
    )
    args, params = named_arguments(given)
    params |= {"table": oid, "unset": sorted(set(unset)) or None}
    args = [sql.SQL("%(table)s::oid::regclass"), sql.SQL("p_unset => %(unset)s::text[]"), *args]
    conn.execute(sql.SQL("SELECT token_rotation.set_options({})").format(sql.SQL(", ").join(args)), params)
    if not changed:
        return f"run {found.run_id} of {qualified}: no option changed"
    return f"{changed[0]}; its workers take them at their next batch"


def hold(conn: psycopg.Connection, table: str, reason: str | None, seconds: float) -> tuple[int, str]:
    """token_rotation.hold() on a table's open run (reason None lifts it): (its run id, the table's name)."""
    oid, qualified = resolve_table(conn, table)
    row = conn.execute(
        "SELECT token_rotation.hold(%s::oid::regclass, %s, pg_catalog.make_interval(secs => %s::float8))",
        (oid, reason, seconds),
    ).fetchone()
    if row is None:
        raise ToolError("token_rotation.hold() returned nothing", EXIT_OTHER)
    return int(row[0]), qualified
