"""Reading a run's state from the server: the `token_rotation.progress` view, the `batches` log, the sizes of
the target table. Every number here comes from the database and its clock; nothing is computed from the
driver's own timing, so what the driver shows is also what a DBA sees in psql."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from token_rotation import eta
from token_rotation.errors import EXIT_BAD_INPUT, EXIT_OTHER, ToolError

PROGRESS_COLUMNS = (
    "run_id, coalesce((SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = table_name),"
    " table_name::text) AS table_name, token_column::text AS token_column, state, active_workers, "
    "workers, rows_done, rows_total, rows_total_exact, percent::float8 AS percent, "
    "extract(epoch FROM elapsed)::float8 AS elapsed, rows_per_second, batches_done, throttled, "
    "started_at, finished_at, last_batch_at, last_error"
)


@dataclass(frozen=True)
class Progress:
    """One row of token_rotation.progress, with elapsed in seconds."""

    run_id: int
    table_name: str
    token_column: str
    state: str
    active_workers: int
    workers: int
    rows_done: int
    rows_total: int
    rows_total_exact: bool
    percent: float
    elapsed: float
    rows_per_second: int
    batches_done: int
    throttled: str | None
    started_at: datetime
    finished_at: datetime | None
    last_batch_at: datetime | None
    last_error: str | None

    @property
    def point(self) -> eta.Point:
        return eta.Point(self.elapsed, self.rows_done, self.batches_done)

    @property
    def open(self) -> bool:
        return self.state in ("active", "paused")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Progress:
        values = {k: row[k] for k in cls.__dataclass_fields__}
        for key in ("active_workers", "rows_done", "rows_per_second", "batches_done"):
            values[key] = int(values[key] or 0)
        values["elapsed"] = float(values["elapsed"] or 0.0)
        return cls(**values)


def check_installed(conn: psycopg.Connection) -> None:
    """Raises a ToolError saying what to do when the tool is not installed in this database."""
    row = conn.execute("SELECT to_regclass('token_rotation.runs') IS NOT NULL").fetchone()
    if not row or not row[0]:
        raise ToolError("token_rotation is not installed in this database (run: token-rotation install)")


def resolve_table(conn: psycopg.Connection, table: str) -> tuple[int, str]:
    """The oid and the schema-qualified, quoted name of a table given as psql would take it."""
    row = conn.execute(
        "SELECT c.oid::bigint, format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (table,),
    ).fetchone()
    if row is None:
        raise ToolError(
            f"table {table} does not exist (pass --table as schema.table, e.g. public.tickets)",
            EXIT_BAD_INPUT,
        )
    return int(row[0]), str(row[1])


def read(conn: psycopg.Connection, run_id: int) -> Progress | None:
    """The progress of one run."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM token_rotation.progress WHERE run_id = %s", (run_id,)
        ).fetchone()
    return Progress.from_row(row) if row else None


def runs(conn: psycopg.Connection, table_oid: int | None = None) -> list[Progress]:
    """Every run (of one table, when given), newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM token_rotation.progress"
            " WHERE %(oid)s::oid IS NULL OR table_name = %(oid)s::oid::regclass ORDER BY run_id DESC",
            {"oid": table_oid},
        ).fetchall()
    return [Progress.from_row(r) for r in rows]


def open_run(conn: psycopg.Connection, table_oid: int) -> tuple[int, int, int] | None:
    """The open run of a table: (run_id, unfinished slices, unfinished slices nobody works on)."""
    row = conn.execute(
        "SELECT run_id, slices_left, free_slices FROM token_rotation.progress"
        " WHERE table_name = %s::oid::regclass AND state IN ('active', 'paused')",
        (table_oid,),
    ).fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def newest_run_id(conn: psycopg.Connection, table_oid: int) -> int:
    """The newest run id of a table (0 when it has none)."""
    row = conn.execute(
        "SELECT coalesce(max(run_id), 0) FROM token_rotation.runs WHERE target = %s::oid::regclass",
        (table_oid,),
    ).fetchone()
    return int(row[0]) if row else 0


def run_after(conn: psycopg.Connection, table_oid: int, after: int) -> int | None:
    """The open run of a table, or its newest run with an id above `after`."""
    row = conn.execute(
        "SELECT run_id FROM token_rotation.runs WHERE target = %s::oid::regclass"
        " AND (state IN ('active', 'paused') OR run_id > %s) ORDER BY run_id DESC LIMIT 1",
        (table_oid, after),
    ).fetchone()
    return int(row[0]) if row else None


def startup(conn: psycopg.Connection, run_id: int) -> float | None:
    """Seconds from the start of a run to the start of its first batch (checking the table, counting and
    slicing its keys), from the log; None before the first batch."""
    row = conn.execute(
        "SELECT extract(epoch FROM b.started_at - r.started_at)::float8 FROM token_rotation.runs r"
        "  JOIN token_rotation.batches b USING (run_id) WHERE r.run_id = %s ORDER BY b.finished_at LIMIT 1",
        (run_id,),
    ).fetchone()
    return max(float(row[0]), 0.0) if row and row[0] is not None else None


def eta_from_log(conn: psycopg.Connection, p: Progress, recent: int = 200) -> eta.Estimate:
    """The ETA of a run from its progress log alone (for `status`: no earlier readings needed)."""
    rows = conn.execute(
        "SELECT extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8, rows"
        "  FROM token_rotation.batches WHERE run_id = %s ORDER BY finished_at DESC LIMIT %s",
        (p.run_id, recent),
    ).fetchall()
    log = [eta.Batch(float(r[0]), float(r[1]), int(r[2])) for r in rows]
    points = eta.points_from_log(log, p.elapsed, p.rows_done, p.batches_done)
    return eta.estimate(points, p.rows_total, startup=startup(conn, p.run_id) or 0.0)


@dataclass(frozen=True)
class Sizes:
    """The on-disk size of a table and of its indexes, and its dead tuples (token_rotation.table_sizes)."""

    table_bytes: int
    index_bytes: int
    dead_tuples: int


def sizes(conn: psycopg.Connection, table_oid: int) -> Sizes:
    """Current sizes of a table and its indexes, and its dead tuples (statistics lag by a second or so)."""
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT table_bytes, indexes_bytes, coalesce(dead_tuples, 0)"
        "  FROM token_rotation.table_sizes(%s::oid::regclass)",
        (table_oid,),
    ).fetchone()
    if row is None:
        raise ToolError("the table disappeared", EXIT_OTHER)
    return Sizes(int(row[0]), int(row[1]), int(row[2]))
