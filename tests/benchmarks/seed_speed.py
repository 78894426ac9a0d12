"""`python -m benchmarks.seed_speed` (`make bench-seed`): seed vs one bare INSERT, alternated.

Issue 3's goal: `token-rotation seed` of 1,000,000 rows takes at most 1.3x one bare
`INSERT ... SELECT ... FROM generate_series` of the same rows into the same (fresh, empty) table definition.
Each round creates a fresh table and times the bare single-statement INSERT, then times seed() (create the
table, fill it in committed chunks, ANALYZE); a CHECKPOINT precedes each. The median ratio over --repeat
rounds is printed with its spread.
"""

from __future__ import annotations

import time

import click
from psycopg import sql

from token_rotation.seed import DEFAULT_BATCH, FILL_SQL, TABLE_SQL, seed

from benchmarks import common

BARE_TABLE = "bench_seed_bare"
SEED_TABLE = "bench_seed"


def bare_insert(dsn: str, rows: int) -> float:
    """Seconds of one INSERT ... SELECT FROM generate_series of `rows` rows into a fresh demo table."""
    ident = sql.Identifier(BARE_TABLE)
    with common.connect(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL(TABLE_SQL.read_text()).format(table=ident))
        conn.execute("CHECKPOINT")
        started = time.perf_counter()
        conn.execute(sql.SQL(FILL_SQL.read_text()).format(table=ident), {"first": 1, "last": rows})
        seconds = time.perf_counter() - started
        conn.execute(sql.SQL("DROP TABLE {}").format(ident))
    return seconds


def seeded(dsn: str, rows: int, batch: int) -> float:
    with common.connect(dsn) as conn:
        conn.execute("CHECKPOINT")
    return seed(dsn, rows, SEED_TABLE, batch).seconds


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=DEFAULT_BATCH, show_default=True)
def main(dsn: str | None, rows: int, repeat: int, batch: int) -> None:
    """seed() vs one bare INSERT ... SELECT FROM generate_series; prints the median ratio."""
    target = common.resolve_dsn(dsn)
    ratios, bare_s, seed_s = [], [], []
    for round_no in range(1, repeat + 1):
        bare_s.append(bare_insert(target, rows))
        seed_s.append(seeded(target, rows, batch))
        ratios.append(seed_s[-1] / bare_s[-1])
        click.echo(
            f"round {round_no}/{repeat}: bare INSERT {bare_s[-1]:.2f} s, seed {seed_s[-1]:.2f} s, "
            f"{ratios[-1]:.3f}x"
        )
    with common.connect(target) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SEED_TABLE)))
    ratio = common.median(ratios)
    click.echo(
        f"{rows:,} rows, chunks of {batch:,}: bare INSERT median {common.median(bare_s):.2f} s, seed median "
        f"{common.median(seed_s):.2f} s; ratio median {ratio:.3f}x"
        f" (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    click.echo(f"goal issue 3: seed <= 1.3x: {'met' if ratio <= 1.3 else 'missed'}")


if __name__ == "__main__":
    main()
