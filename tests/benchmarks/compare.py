"""`make bench`: the original's comparison table, reproduced on this machine in one run.

On a scratch table of --rows rows (demo-shaped: bigint key, unique uuid token), side by side:
- reference: one bare `UPDATE t SET token = gen_random_uuid()`, one transaction;
- procedure: `CALL token_rotation.rotate(...)` at each --batch-sizes, with 1 .. --workers sessions;
- adaptive: the procedure with p_target_batch_time (starting from 3000 rows);
- client, per row: the original's `save()` loop in plain psycopg: read the rows, one UPDATE of every column
  with a Python uuid4 per row, autocommit; timed on a sample of --per-row-sample rows and extrapolated;
- client, batched: the original's `bulk_update(batch_size=3000)` in plain psycopg: read 3000 whole rows,
  write them back in one `UPDATE ... SET token = CASE WHEN id = .. THEN .. END WHERE id IN (..)` per batch
  (the statement Django builds), one transaction per batch; and the same with one `UPDATE ... FROM
  unnest(ids, tokens)` per batch, the fastest client-side way. Past --client-limit rows they are
  extrapolated from the first --client-limit rows.
Each configuration runs --repeat times; the rounds are interleaved (every round runs every configuration,
the reference first) and the table is reset (VACUUM, CHECKPOINT) before every run. Seconds and ratios are
medians; "spread" is (max - min) / median over the rounds. Writes bench-<rows>.md, .json and .png to --out.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import psycopg
from psycopg import sql

from token_rotation.errors import ToolError

from benchmarks import common

NO_MATPLOTLIB = "make bench draws its chart with matplotlib, which is not installed: make venv installs it"

DEFAULT_BATCH_SIZES = (500, 1000, 2000, 3000, 5000, 10000)
CLIENT_BATCH = 3000
ALL_METHODS = ("reference", "procedure", "adaptive", "client-row", "client-batch", "client-unnest")


@dataclass
class Config:
    """One thing to measure."""

    method: str
    label: str
    batch_size: int | None = None
    workers: int | None = None
    run: Callable[[], int] = field(default=lambda: 0, repr=False)  # returns the rows it really processed


@dataclass
class Result:
    """The measurements of one configuration over all rounds, and what they add up to."""

    method: str
    label: str
    batch_size: int | None
    workers: int | None
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    measured_rows: int = 0
    extrapolated: bool = False
    mean_batch: float | None = None

    @property
    def median_seconds(self) -> float:
        return common.median(self.seconds)

    @property
    def median_ratio(self) -> float:
        return common.median(self.ratios)


class Bench:
    """The scratch table, the connections, and one runner per method."""

    def __init__(self, dsn: str, rows: int, table: str, client_limit: int, per_row_sample: int) -> None:
        self.dsn = dsn
        self.rows = rows
        self.table = table
        self.ident = sql.Identifier(table)
        self.client_limit = client_limit
        self.per_row_sample = per_row_sample
        self.conn = common.connect(dsn)
        self.last_run_id: int | None = None

    def reference(self) -> int:
        common.bare_update(self.conn, self.table)
        return self.rows

    def procedure(self, batch_size: int, workers: int, target: float | None = None) -> int:
        self.last_run_id = common.call_rotate(
            self.dsn, self.table, batch_size=batch_size, workers=workers, target_batch_time=target
        )
        return self.rows

    def mean_batch(self) -> float | None:
        if self.last_run_id is None:
            return None
        row = self.conn.execute(
            "SELECT avg(rows) FROM token_rotation.batches WHERE run_id = %s", (self.last_run_id,)
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def columns(self) -> list[str]:
        """The table's columns other than the key, in order (what Django's save() writes back)."""
        rows = self.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 1"
            " AND NOT attisdropped ORDER BY attnum",
            (self.ident.as_string(),),
        ).fetchall()
        return [r[0] for r in rows]

    def client_row(self) -> int:
        """save() per row: iterate over whole rows, UPDATE every column of each row, autocommit."""
        columns = self.columns()
        update = sql.SQL("UPDATE {t} SET {sets} WHERE id = %s").format(
            t=self.ident,
            sets=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns),
        )
        select = sql.SQL("SELECT id, {cols} FROM {t} ORDER BY id LIMIT %s").format(
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns), t=self.ident
        )
        token_at = columns.index("token")
        done = 0
        with common.connect(self.dsn) as conn, conn.cursor(name="rows") as rows, conn.transaction():
            writer = common.connect(self.dsn)
            try:
                for row in rows.execute(select, (self.per_row_sample,)):
                    values = list(row[1:])
                    values[token_at] = uuid.uuid4()
                    writer.execute(update, (*values, row[0]))
                    done += 1
            finally:
                writer.close()
        return done

    def client_batches(self, statement: str) -> int:
        """bulk_update per batch of 3000: read whole rows by keyset, write the tokens in one statement."""
        select = sql.SQL("SELECT * FROM {t} WHERE id > %s ORDER BY id LIMIT %s").format(t=self.ident)
        done = 0
        last = -(2**63)
        with common.connect(self.dsn) as conn:
            while done < self.client_limit:
                rows = conn.execute(select, (last, min(CLIENT_BATCH, self.client_limit - done))).fetchall()
                if not rows:
                    break
                ids = [r[0] for r in rows]
                tokens = [uuid.uuid4() for _ in rows]
                with conn.transaction():
                    if statement == "case":
                        conn.execute(*self.case_update(ids, tokens))
                    else:
                        conn.execute(
                            sql.SQL(
                                "UPDATE {t} AS t SET token = v.token FROM unnest(%s::bigint[], %s::uuid[])"
                                " AS v (id, token) WHERE t.id = v.id"
                            ).format(t=self.ident),
                            (ids, tokens),
                        )
                done += len(rows)
                last = ids[-1]
        return done

    def case_update(self, ids: list[int], tokens: list[uuid.UUID]) -> tuple[sql.Composed, list[object]]:
        """What Django's bulk_update sends: SET token = CASE WHEN id = .. THEN .. END WHERE id IN (..)."""
        whens = sql.SQL(" ").join([sql.SQL("WHEN id = %s THEN %s::uuid")] * len(ids))
        query = sql.SQL("UPDATE {t} SET token = CASE {whens} END WHERE id = ANY(%s)").format(
            t=self.ident, whens=whens
        )
        params: list[object] = []
        for key, token in zip(ids, tokens, strict=True):
            params += [key, token]
        params.append(ids)
        return query, params


def configs(
    bench: Bench, methods: tuple[str, ...], batch_sizes: tuple[int, ...], workers: int, target: float
) -> list[Config]:
    out = [Config("reference", "bare UPDATE (reference)", None, 1, bench.reference)]
    if "procedure" in methods:
        for w in range(1, workers + 1):
            for b in batch_sizes:
                out.append(
                    Config(
                        "procedure",
                        f"CALL rotate(), {w} worker{'s' if w > 1 else ''}",
                        b,
                        w,
                        lambda b=b, w=w: bench.procedure(b, w),  # type: ignore[misc]
                    )
                )
    if "adaptive" in methods:
        out.append(
            Config(
                "adaptive",
                f"CALL rotate(), adaptive {target:g} s/batch",
                None,
                1,
                lambda: bench.procedure(3000, 1, target),
            )
        )
    if "client-row" in methods:
        out.append(Config("client-row", "client, one UPDATE per row (save())", 1, 1, bench.client_row))
    if "client-batch" in methods:
        out.append(
            Config(
                "client-batch",
                "client, batches (bulk_update CASE)",
                CLIENT_BATCH,
                1,
                lambda: bench.client_batches("case"),
            )
        )
    if "client-unnest" in methods:
        out.append(
            Config(
                "client-unnest",
                "client, batches (UPDATE FROM unnest)",
                CLIENT_BATCH,
                1,
                lambda: bench.client_batches("unnest"),
            )
        )
    return out


def measure(bench: Bench, todo: list[Config], repeat: int, log: Callable[[str], None]) -> list[Result]:
    results = [Result(c.method, c.label, c.batch_size, c.workers) for c in todo]
    for round_no in range(1, repeat + 1):
        reference_seconds = 0.0
        for config, result in zip(todo, results, strict=True):
            common.reset(bench.conn, bench.table)
            bench.last_run_id = None
            with common.timed() as sample:
                processed = config.run()
            seconds = sample[0].seconds
            if processed and processed < bench.rows:  # sampled: extrapolate to the whole table
                seconds = seconds * bench.rows / processed
                result.extrapolated = True
            result.measured_rows = processed
            if config.method == "reference":
                reference_seconds = seconds
            result.seconds.append(seconds)
            result.ratios.append(seconds / reference_seconds)
            result.peak_mb.append(sample[0].peak_bytes / 2**20)
            if config.method == "adaptive":
                result.mean_batch = bench.mean_batch()
            where = f"batch {config.batch_size}, " if config.batch_size else ""
            log(
                f"round {round_no}/{repeat}: {config.label}, {where}{seconds:.2f} s"
                f"{' (extrapolated)' if result.extrapolated else ''}, {seconds / reference_seconds:.3f}x"
            )
    return results


def markdown(results: list[Result], rows: int, machine: common.Machine, repeat: int) -> str:
    lines = [
        f"Rotating {rows:,} rows; {machine.describe()}; median of {repeat} interleaved run(s).",
        "The procedure runs with its defaults: its batches commit with synchronous_commit off (the server's"
        " setting above applies to the bare UPDATE and the client-side ways).",
        "",
        "| Method | Batch size | Workers | Seconds | Spread | Rows/s | vs bare UPDATE"
        " | Driver peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        batch = "-" if r.batch_size is None else f"{r.batch_size:,}"
        if r.method == "adaptive" and r.mean_batch:
            batch = f"~{r.mean_batch:,.0f} (mean)"
        mark = " *" if r.extrapolated else ""
        lines.append(
            f"| {r.label}{mark} | {batch} | {r.workers or '-'} | {r.median_seconds:.2f} | "
            f"{100 * common.spread(r.seconds):.0f}% | {rows / r.median_seconds:,.0f} | "
            f"{r.median_ratio:.3f}x | {max(r.peak_mb):.0f} |"
        )
    if any(r.extrapolated for r in results):
        sampled = [r for r in results if r.extrapolated]
        lines += [
            "",
            "\\* extrapolated to the whole table from "
            + ", ".join(f"{r.measured_rows:,} rows ({r.label})" for r in sampled)
            + ".",
        ]
    return "\n".join(lines) + "\n"


def chart(results: list[Result], rows: int, path: Path) -> None:
    """Seconds by batch size (log-log): one line per worker count, the client-side ways as points, the
    reference as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    reference = next(r for r in results if r.method == "reference")
    ax.axhline(reference.median_seconds, color="black", linestyle="--", label="bare UPDATE (reference)")
    by_workers: dict[int, list[Result]] = {}
    for r in results:
        if r.method == "procedure" and r.workers:
            by_workers.setdefault(r.workers, []).append(r)
    for workers, rs in sorted(by_workers.items()):
        rs.sort(key=lambda r: r.batch_size or 0)
        ax.plot(
            [r.batch_size or 0 for r in rs],
            [r.median_seconds for r in rs],
            marker="o",
            label=f"CALL rotate(), {workers} worker{'s' if workers > 1 else ''}",
        )
    markers = {"adaptive": "*", "client-row": "s", "client-batch": "^", "client-unnest": "v"}
    for r in results:
        if r.method in markers:
            x = (r.mean_batch if r.method == "adaptive" and r.mean_batch else r.batch_size) or 1
            label = r.label + (" (extrapolated)" if r.extrapolated else "")
            ax.plot(
                [x], [r.median_seconds], marker=markers[r.method], markersize=10, linestyle="", label=label
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (rows)")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"Rotating {rows:,} tokens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def time_per_row_us(results: list[Result], rows: int) -> dict[str, float]:
    """Microseconds per row of the reference and of the procedure at batch 3000, per worker count."""
    out = {"reference": 1e6 * next(r for r in results if r.method == "reference").median_seconds / rows}
    for r in results:
        if r.method == "procedure" and r.batch_size == 3000:
            out[f"procedure, batch 3000, {r.workers} worker(s)"] = 1e6 * r.median_seconds / rows
    return out


def run(
    dsn: str,
    rows: int,
    *,
    repeat: int = 1,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    workers: int | None = None,
    methods: tuple[str, ...] = ALL_METHODS,
    target: float = 0.25,
    client_limit: int = 1_000_000,
    per_row_sample: int = 20_000,
    out: Path = Path("bench-results"),
    reuse: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Runs the whole comparison; returns what it wrote to the JSON file."""
    common.install(dsn)
    table = common.SCRATCH_TABLE
    workers = workers or os.cpu_count() or 1
    with common.connect(dsn) as conn:
        found = None
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
            found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        machine = common.machine(conn)
    if not (reuse and found and found[0] == rows):
        log(f"seeding {rows:,} rows into {table} ...")
        started = time.perf_counter()
        common.make_scratch_table(dsn, rows, table)
        log(f"seeded in {time.perf_counter() - started:.1f} s")
    bench = Bench(dsn, rows, table, client_limit, min(per_row_sample, rows))
    try:
        log("warm-up: one bare UPDATE, so every measured run finds the table at its steady size")
        common.reset(bench.conn, table)
        bench.reference()
        todo = configs(bench, methods, batch_sizes, workers, target)
        results = measure(bench, todo, repeat, log)
    finally:
        bench.conn.close()

    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{rows}"
    table_md = markdown(results, rows, machine, repeat)
    stem.with_suffix(".md").write_text(table_md)
    chart(results, rows, stem.with_suffix(".png"))
    report: dict[str, object] = {
        "rows": rows,
        "repeat": repeat,
        "machine": asdict(machine),
        "time_per_row_us": time_per_row_us(results, rows),
        "results": [
            {
                **{k: v for k, v in asdict(r).items()},
                "median_seconds": r.median_seconds,
                "median_ratio": r.median_ratio,
                "spread": common.spread(r.seconds),
                "rows_per_second": rows / r.median_seconds,
            }
            for r in results
        ],
    }
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    log("")
    log(table_md)
    log(f"wrote {stem}.md, {stem}.json, {stem}.png")
    return report


def parse_ints(value: str) -> tuple[int, ...]:
    try:
        parsed = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("give comma-separated whole numbers, e.g. 500,1000,3000") from None
    if not parsed or min(parsed) < 1:
        raise click.BadParameter("give at least one number, each at least 1")
    return parsed


@click.command(name="bench")
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option(
    "--rows", type=click.IntRange(1), default=1_000_000, show_default=True, help="Scratch table size."
)
@click.option("--repeat", type=click.IntRange(1), default=1, show_default=True, help="Interleaved rounds.")
@click.option(
    "--batch-sizes",
    default=",".join(map(str, DEFAULT_BATCH_SIZES)),
    show_default=True,
    help="Procedure batches.",
)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Up to this many workers [nproc].")
@click.option(
    "--methods",
    default=",".join(ALL_METHODS),
    show_default=True,
    help="Which to run (the reference always runs).",
)
@click.option("--target-batch-time", type=click.FloatRange(0.001), default=0.25, show_default=True)
@click.option(
    "--client-limit",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="Client-side batched ways run on at most this many rows (extrapolated beyond).",
)
@click.option("--per-row-sample", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results"))
@click.option("--reuse", is_flag=True, help="Reuse the scratch table if it has --rows rows.")
def bench(
    dsn: str | None,
    rows: int,
    repeat: int,
    batch_sizes: str,
    workers: int | None,
    methods: str,
    target_batch_time: float,
    client_limit: int,
    per_row_sample: int,
    out: Path,
    reuse: bool,
) -> None:
    """Benchmark the rotation against a bare UPDATE and the original's client-side ways (scratch table)."""
    try:
        import matplotlib  # noqa: F401 - checked first, so that a long run does not fail at its chart
    except ImportError:
        raise ToolError(NO_MATPLOTLIB) from None
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = set(chosen) - set(ALL_METHODS)
    if unknown:
        raise click.BadParameter(f"unknown: {', '.join(sorted(unknown))}; known: {', '.join(ALL_METHODS)}")
    try:
        run(
            common.resolve_dsn(dsn),
            rows,
            repeat=repeat,
            batch_sizes=parse_ints(batch_sizes),
            workers=workers,
            methods=chosen,
            target=target_batch_time,
            client_limit=client_limit,
            per_row_sample=per_row_sample,
            out=out,
            reuse=reuse,
            log=lambda line: click.echo(line, err=False),
        )
    except psycopg.Error as exc:
        raise click.ClickException(f"benchmark failed: {str(exc).splitlines()[0]}") from None


if __name__ == "__main__":
    bench()
