"""Demo data: create a tickets table like the original's `Ticket` model and fill it fast, in chunks.

The table definition and the chunk INSERT live in sql/demo/, shipped in the package (token_rotation.sql,
read through importlib.resources) but never applied by `install`: only sql/'s top level is. Every row
is made on the server by one `INSERT ... SELECT ... FROM generate_series` per chunk, each chunk committed on
its own, so a large seed shows progress and an interrupted one keeps what it committed. Used by
`token-rotation seed` and by the benchmarks:

    seed(dsn, 1_000_000, on_progress=lambda done, total: print(done, total))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from token_rotation import SQL_DIR, connection

DEMO_DIR = SQL_DIR / "demo"
TABLE_SQL = DEMO_DIR / "tickets.sql"
FILL_SQL = DEMO_DIR / "tickets_fill.sql"
DEMO_COMMENT = "token-rotation demo table (created by token-rotation seed)"
DEFAULT_BATCH = 100_000


class SeedError(Exception):
    """A seed that cannot go ahead: one line of what is wrong and what to do."""


@dataclass(frozen=True)
class SeedResult:
    """What a seed did: the table (quoted, as SQL would name it), the rows inserted, and how long it took."""

    table: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def table_identifier(table: str, schema: str | None = None) -> sql.Identifier:
    """The quoted name of the demo table: schema.table when a schema is given, else table alone."""
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def chunks(total: int, batch: int) -> list[tuple[int, int]]:
    """The row-number ranges (first, last), both inclusive, that fill `total` rows `batch` at a time."""
    return [(first, min(first + batch - 1, total)) for first in range(1, total + 1, batch)]


def create_table(conn: psycopg.Connection, ident: sql.Identifier) -> None:
    """Creates the demo table, first dropping a previous demo table of that name (one this module made,
    recognised by its comment); any other existing table is left alone and refused."""
    name = ident.as_string(conn)
    with conn.transaction():
        row = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class'), to_regclass(%s) IS NOT NULL", (name, name)
        ).fetchone()
        assert row is not None
        comment, exists = row
        if exists and comment != DEMO_COMMENT:
            raise SeedError(
                f"table {name} exists and is not a demo table made by seed; "
                "choose another name with --table, or drop it yourself"
            )
        if exists:
            conn.execute(sql.SQL("DROP TABLE {}").format(ident))
        conn.execute(sql.SQL(TABLE_SQL.read_text()).format(table=ident))


def seed(
    dsn: str,
    rows: int,
    table: str = "tickets",
    batch: int = DEFAULT_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
    *,
    schema: str | None = None,
) -> SeedResult:
    """Creates the demo table `table` (replacing an earlier demo table of that name) and inserts `rows` rows,
    `batch` rows per statement and transaction, calling on_progress(done, total) at the start and after each
    chunk; ends with ANALYZE so that the planner and the rotation's slice planner know the table's size."""
    if rows < 0:
        raise SeedError(f"rows must not be negative, not {rows}")
    if batch < 1:
        raise SeedError(f"batch must be at least 1, not {batch}")
    ident = table_identifier(table, schema)
    fill = sql.SQL(FILL_SQL.read_text()).format(table=ident)
    started = time.perf_counter()
    with connection.connect(dsn, autocommit=True) as conn:
        create_table(conn, ident)
        if on_progress:
            on_progress(0, rows)
        for first, last in chunks(rows, batch):
            conn.execute(fill, {"first": first, "last": last})  # autocommit: one transaction per chunk
            if on_progress:
                on_progress(last, rows)
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        name = ident.as_string(conn)
    return SeedResult(name, rows, time.perf_counter() - started)
