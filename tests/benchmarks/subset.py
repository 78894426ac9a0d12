"""What a run over a subset costs against the full rotation of the same table (issue 19).

    python -m benchmarks.subset --rows 1000000 --rounds 3      (or: make bench-subset)

A --rows-row table with 100 tenants interleaved in key order (tenant_id = id % 100: a tenant's rows are on
nearly every page, the worst case for locality) and an index on tenant_id. Each round, in alternation and
after a VACUUM and a CHECKPOINT: one CALL rotating every row, one over a 1% subset (tenant_id = 7) and one
over a 10% subset (tenant_id < 10), each with the procedure's defaults. It prints each round's times and
the median and spread of the subsets' ratios to the full rotation of their round; goals: 1% <= 0.10x, 10%
<= 0.25x.
"""

from __future__ import annotations

import sys
import time

import click
from psycopg import sql

from benchmarks import common

TABLE = "bench_subset_tickets"
SUBSETS = (("1%", "tenant_id = 7", 0.10), ("10%", "tenant_id < 10", 0.25))


def make_table(dsn: str, rows: int) -> None:
    with common.connect(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, tenant_id integer NOT NULL,"
                " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text NOT NULL)"
                " WITH (autovacuum_enabled = false)"
            ).format(t=sql.Identifier(TABLE))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} (id, tenant_id, title) SELECT g, g %% 100, 'ticket ' || g"
                " FROM generate_series(1, %s) g"
            ).format(t=sql.Identifier(TABLE)),
            (rows,),
        )
        conn.execute(sql.SQL("CREATE INDEX ON {t} (tenant_id)").format(t=sql.Identifier(TABLE)))
        conn.execute(sql.SQL("VACUUM (ANALYZE) {t}").format(t=sql.Identifier(TABLE)))


def timed_call(dsn: str, where: str | None) -> tuple[float, int]:
    """One CALL with the procedure's defaults (and p_where); returns (seconds, rows rotated)."""
    with common.connect(dsn) as conn:
        common.reset(conn, TABLE)
        started = time.perf_counter()
        conn.execute(
            "CALL token_rotation.rotate(%s::regclass, p_where => %s, p_quiet => true)", (TABLE, where)
        )
        seconds = time.perf_counter() - started
        row = conn.execute(
            "SELECT state::text, rows_done FROM token_rotation.runs WHERE target = to_regclass(%s)"
            " ORDER BY run_id DESC LIMIT 1",
            (TABLE,),
        ).fetchone()
    if row is None or row[0] != "finished":
        raise click.ClickException(f"the run did not finish: {row}")
    return seconds, int(row[1])


@click.command()
@click.option("--dsn", default=None, help="Database (default: DATABASE_URL, else the embedded server).")
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of the table.")
@click.option("--rounds", default=3, show_default=True, help="Alternated rounds (full, 1%, 10%).")
def main(dsn: str | None, rows: int, rounds: int) -> None:
    """A subset's time against the full rotation of the same table, alternated rounds: medians, spread."""
    dsn = common.resolve_dsn(dsn)
    common.install(dsn)
    make_table(dsn, rows)
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in SUBSETS}
    for n in range(1, rounds + 1):
        full, full_rows = timed_call(dsn, None)
        line = [f"round {n}: full {full:.2f} s ({full_rows:,} rows)"]
        for name, where, _ in SUBSETS:
            seconds, done = timed_call(dsn, where)
            ratios[name].append(seconds / full)
            line.append(f"{name} {seconds:.2f} s ({done:,} rows, {seconds / full:.3f}x)")
        click.echo(", ".join(line))
    met = True
    for name, where, limit in SUBSETS:
        median = common.median(ratios[name])
        met = met and median <= limit
        click.echo(
            f"subset {name} ({where}): median {median:.3f}x the full rotation (from {min(ratios[name]):.3f}x"
            f" to {max(ratios[name]):.3f}x) over {rounds} rounds; goal <= {limit:.2f}x:"
            f" {'met' if median <= limit else 'missed'}"
        )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
