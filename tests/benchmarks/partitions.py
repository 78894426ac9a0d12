"""`python -m benchmarks.partitions` (`make bench-partitions`): a partitioned table against its own
bare UPDATE, and the plain table against its own, in the same alternated rounds.

Issue 10's speed goals: the plain table unchanged, and a partitioned table rotated by one CALL within 1.10x of
the equivalent bare `UPDATE t SET token = gen_random_uuid()`. Two tables with the same rows: the demo-shaped
plain table (bigint identity key, unique token) and a copy range-partitioned by its key into --partitions
leaves, whose unique index on the token must contain the partition key: UNIQUE (token, id), the same index
work per row. Each round times, after a reset (VACUUM, CHECKPOINT) before every run: the plain table's bare
UPDATE, then one CALL of rotate() on it (batch 3000, one worker, as shipped); the partitioned table's bare
UPDATE (through the parent), then one CALL on the parent. With --base-dsn (a database on the same server
where an older version of the tool is installed, e.g. main's), the plain table's pair is timed there too,
in the same rounds, so the plain ratio before and after a change is compared under the same load. Ratios are
against the same round's bare UPDATE of the same table; medians over --repeat rounds with their spread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import psycopg
from psycopg import sql

from benchmarks import common

PLAIN = "bench_plain"
PARTED = "bench_parted"


def make_partitioned_copy(dsn: str, partitions: int) -> None:
    """bench_parted: bench_plain's rows in a table range-partitioned by id into equal key ranges."""
    with common.connect(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PARTED)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {p} (LIKE {t} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id),"
                " UNIQUE (token, id)) PARTITION BY RANGE (id)"
            ).format(p=sql.Identifier(PARTED), t=sql.Identifier(PLAIN))
        )
        row = conn.execute(sql.SQL("SELECT max(id) FROM {}").format(sql.Identifier(PLAIN))).fetchone()
        top = int(row[0]) if row and row[0] is not None else 0
        bounds = [top * i // partitions + 1 for i in range(partitions)] + [top + 1]
        for i in range(partitions):
            leaf = sql.Identifier(f"{PARTED}_{i + 1}")
            lower = sql.SQL("MINVALUE") if i == 0 else sql.Literal(bounds[i])
            upper = sql.SQL("MAXVALUE") if i == partitions - 1 else sql.Literal(bounds[i + 1])
            conn.execute(
                sql.SQL("CREATE TABLE {l} PARTITION OF {p} FOR VALUES FROM ({lo}) TO ({hi})").format(
                    l=leaf, p=sql.Identifier(PARTED), lo=lower, hi=upper
                )
            )
            conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(leaf))
        conn.execute(
            sql.SQL("INSERT INTO {p} OVERRIDING SYSTEM VALUE SELECT * FROM {t}").format(
                p=sql.Identifier(PARTED), t=sql.Identifier(PLAIN)
            )
        )
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(PARTED)))


def reset(conn: psycopg.Connection, table: str) -> None:
    """VACUUM (every leaf, through the parent) and CHECKPOINT before each measured run."""
    conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))
    conn.execute("CHECKPOINT")


def run(
    dsn: str,
    rows: int,
    repeat: int,
    partitions: int,
    base_dsn: str | None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Measures; returns per configuration the median seconds, median ratio to its bare UPDATE and spreads."""
    common.install(dsn)
    log(f"seeding {rows:,} rows into {PLAIN}, and a copy in {partitions} range partitions ...")
    common.make_scratch_table(dsn, rows, PLAIN)
    make_partitioned_copy(dsn, partitions)
    conns = {"": common.connect(dsn)}
    pairs: list[tuple[str, str, str, str]] = [  # (name, database, table, what the ratio is against)
        ("plain: bare UPDATE", "", PLAIN, ""),
        ("plain: CALL, batch 3000, 1 worker", "", PLAIN, "plain: bare UPDATE"),
        ("partitioned: bare UPDATE", "", PARTED, ""),
        ("partitioned: CALL, batch 3000, 1 worker", "", PARTED, "partitioned: bare UPDATE"),
    ]
    if base_dsn:
        log(f"seeding {rows:,} rows into {PLAIN} of the base database ...")
        common.make_scratch_table(base_dsn, rows, PLAIN)
        conns["base"] = common.connect(base_dsn)
        pairs += [
            ("base plain: bare UPDATE", "base", PLAIN, ""),
            ("base plain: CALL, batch 3000, 1 worker", "base", PLAIN, "base plain: bare UPDATE"),
        ]
    dsns = {"": dsn, "base": base_dsn or dsn}
    seconds: dict[str, list[float]] = {name: [] for name, *_ in pairs}
    ratios: dict[str, list[float]] = {name: [] for name, _, _, against in pairs if against}
    try:
        for name, db, table, _ in pairs:  # warm-up: each table reaches its steady size
            if not seconds[name] and name.endswith("bare UPDATE"):
                reset(conns[db], table)
                common.bare_update(conns[db], table)
        for round_no in range(1, repeat + 1):
            line = []
            for name, db, table, against in pairs:
                reset(conns[db], table)
                with common.timed() as sample:
                    if against:
                        common.call_rotate(dsns[db], table, batch_size=3000)
                    else:
                        common.bare_update(conns[db], table)
                seconds[name].append(sample[0].seconds)
                text = f"{name}: {sample[0].seconds:.2f} s"
                if against:
                    ratios[name].append(sample[0].seconds / seconds[against][-1])
                    text += f" ({ratios[name][-1]:.3f}x)"
                line.append(text)
            log(f"round {round_no}/{repeat}: " + "; ".join(line))
    finally:
        for conn in conns.values():
            conn.close()
    return {
        name: {
            "median_seconds": common.median(seconds[name]),
            "seconds_spread": common.spread(seconds[name]),
            "us_per_row": 1e6 * common.median(seconds[name]) / rows,
            **(
                {
                    "median_ratio": common.median(ratios[name]),
                    "min_ratio": min(ratios[name]),
                    "max_ratio": max(ratios[name]),
                }
                if name in ratios
                else {}
            ),
        }
        for name, *_ in pairs
    }


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--base-dsn", default=None, help="A database with an older version installed (plain pair).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True, help="Alternated rounds.")
@click.option("--partitions", type=click.IntRange(2, 64), default=4, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    dsn: str | None, base_dsn: str | None, rows: int, repeat: int, partitions: int, json_out: Path | None
) -> None:
    """A partitioned table's CALL vs its bare UPDATE, beside the plain table's; prints the median ratios."""
    summary = run(common.resolve_dsn(dsn), rows, repeat, partitions, base_dsn, log=click.echo)
    click.echo(f"\n{rows:,} rows, {partitions} partitions, {repeat} rounds")
    click.echo("ratio = seconds / the same round's bare UPDATE of the same table")
    for name, s in summary.items():
        ratio = (
            f"ratio {s['median_ratio']:.3f}x (min {s['min_ratio']:.3f}, max {s['max_ratio']:.3f})"
            if "median_ratio" in s
            else ""
        )
        click.echo(f"  {name:<45} {s['median_seconds']:7.2f} s  {s['us_per_row']:6.2f} us/row  {ratio}")
    parted = summary["partitioned: CALL, batch 3000, 1 worker"]["median_ratio"]
    verdict = "met" if parted <= 1.10 else "missed"
    click.echo(f"goal issue 10: partitioned <= 1.10x: {verdict} ({parted:.3f}x)")
    if json_out:
        data = {"rows": rows, "partitions": partitions, "repeat": repeat, "results": summary}
        json_out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
