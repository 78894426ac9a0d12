"""What the benchmarks share: the database, the scratch table, resetting it, timing, memory, medians.

Every measurement follows the same recipe: reset the table (VACUUM, so each method finds the dead tuples of
the previous one reclaimed, then CHECKPOINT, so no method pays for another's dirty pages), then time one
method from its first statement to its last COMMIT, while a thread samples this process's resident memory.
Autovacuum is switched off on the scratch table (it would start in the middle of some methods and not of
others); the VACUUM between runs does its work instead.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from token_rotation import connection, migrate
from token_rotation.seed import seed

SCRATCH_TABLE = "bench_tickets"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resolve_dsn(dsn: str | None) -> str:
    """The database to benchmark: --dsn, else DATABASE_URL, else PG*, else the embedded server."""
    return connection.resolve(dsn).dsn


def install(dsn: str) -> None:
    """Installs (or upgrades) the tool in the benchmark database."""
    migrate.upgrade(dsn)


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection named token-rotation-bench (so pg_stat_activity shows what it is)."""
    return connection.connect(dsn, autocommit=True, application_name="token-rotation-bench")


def make_scratch_table(
    dsn: str, rows: int, table: str = SCRATCH_TABLE, on_progress: Callable[[int, int], None] | None = None
) -> None:
    """Creates the demo-shaped scratch table with `rows` rows (seed), autovacuum off, vacuumed."""
    seed(dsn, rows, table, on_progress=on_progress)
    with connect(dsn) as conn:
        ident = sql.Identifier(table)
        conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(ident))
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(ident))


def sizes(dsn: str, table: str) -> tuple[int, int]:
    """Heap bytes and heap + index bytes of a table."""
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT pg_relation_size(%s::regclass), pg_relation_size(%s::regclass)"
            " + pg_indexes_size(%s::regclass)",
            (table, table, table),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def reset(conn: psycopg.Connection, table: str = SCRATCH_TABLE) -> None:
    """Puts the table in the same state before each measured run: dead tuples reclaimed, no dirty pages."""
    conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))
    conn.execute("CHECKPOINT")


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; elsewhere the peak so far, from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Samples this process's resident memory every `interval` seconds in a thread; `peak` is the maximum."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


@dataclass
class Sample:
    """One timed run: wall-clock seconds and the driver's peak resident memory in bytes."""

    seconds: float
    peak_bytes: int


@contextmanager
def timed() -> Iterator[list[Sample]]:
    """Times the body; the Sample is appended to the yielded list when the body ends."""
    out: list[Sample] = []
    with PeakMemory() as memory:
        started = time.perf_counter()
        yield out
        seconds = time.perf_counter() - started
    out.append(Sample(seconds, memory.peak))


def bare_update(conn: psycopg.Connection, table: str = SCRATCH_TABLE, column: str = "token") -> None:
    """The reference: one UPDATE of every row, in one transaction."""
    conn.execute(
        sql.SQL("UPDATE {} SET {} = gen_random_uuid()").format(sql.Identifier(table), sql.Identifier(column))
    )


def call_rotate(
    dsn: str,
    table: str = SCRATCH_TABLE,
    *,
    batch_size: int = 3000,
    workers: int = 1,
    target_batch_time: float | None = None,
    synchronous_commit: bool = False,
) -> int:
    """Rotates the table with `workers` sessions, each one CALL (the first plans the slices); returns the
    run id once every CALL has returned. Raises the first worker's error, if any. synchronous_commit is
    the procedure's own default (off) unless asked."""
    call = sql.SQL(
        "CALL token_rotation.rotate({t}, p_batch_size => {b}, p_workers => {w}, p_quiet => true,"
        " p_target_batch_time => {tbt}, p_synchronous_commit => {sc})"
    ).format(
        t=sql.Literal(sql.Identifier(table).as_string()),
        b=sql.Literal(batch_size),
        w=sql.Literal(workers),
        tbt=sql.Literal(None if target_batch_time is None else f"{target_batch_time} seconds"),
        sc=sql.Literal(synchronous_commit),
    )
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with connect(dsn) as conn:
                conn.execute(call)
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT run_id, state FROM token_rotation.runs WHERE target = to_regclass(%s)"
            " ORDER BY run_id DESC LIMIT 1",
            (sql.Identifier(table).as_string(),),
        ).fetchone()
    if row is None or row[1] != "finished":
        raise RuntimeError(f"the rotation of {table} did not finish: {row}")
    return int(row[0])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart the repeated measurements of one thing were."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    return (max(values) - min(values)) / m if m else 0.0


@dataclass
class Machine:
    """What the numbers were measured on."""

    cpus: int
    memory_gib: float
    os: str
    python: str
    server: str
    settings: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        tuned = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return (
            f"{self.cpus} CPUs, {self.memory_gib:.0f} GiB RAM, {self.os}, Python {self.python}; "
            f"PostgreSQL {self.server} ({tuned})"
        )


def machine(conn: psycopg.Connection) -> Machine:
    """Describes this machine and the server behind `conn`."""
    memory = 0.0
    try:
        with open("/proc/meminfo") as f:
            memory = int(f.readline().split()[1]) / 1024 / 1024
    except OSError:
        pass
    os_name = platform.platform()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    row = conn.execute("SHOW server_version").fetchone()
    settings = {}
    for name in ("shared_buffers", "max_wal_size", "synchronous_commit", "wal_level", "fsync"):
        value = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
        settings[name] = str(value[0]) if value else "?"
    return Machine(
        os.cpu_count() or 1, memory, os_name, platform.python_version(), str(row[0]) if row else "?", settings
    )


def goal(issue: int, what: str, value: float, limit: float) -> str:
    """One line saying whether a measured ratio meets an issue's goal: `goal issue 4: ... <= 0.60x: met`."""
    return (
        f"goal issue {issue}: {what} <= {limit:.2f}x: {'met' if value <= limit else 'missed'} ({value:.3f}x)"
    )


def write_results(path: Path | None, rows: int, repeat: int, summary: dict[str, Any]) -> None:
    """The raw results of a benchmark as JSON (rows, rounds, the summary per method), when a path is given."""
    if path:
        path.write_text(json.dumps({"rows": rows, "repeat": repeat, "results": summary}, indent=2) + "\n")
