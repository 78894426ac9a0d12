"""`python -m benchmarks.formats` (`make bench-formats`): a hex text token against the same bare
UPDATE, and the plain uuid table as a control, alternated.

Issue 10's speed must-show. Two tables of --rows rows: the demo-shaped uuid table (unique index on the token)
and `bench_formats` (bigint key, `api_key varchar(64)` with a unique index, hex keys). Each round times, each
after a reset (VACUUM, CHECKPOINT): the bare `UPDATE bench_engine SET token = gen_random_uuid()`, one CALL of
rotate() on it (batch 3000, one worker), the bare `UPDATE bench_formats SET <expression>` with the very SET
list that token_rotation_internal.token_value() builds for `hex:32` (read from the server, so both sides
compute the same expression), and one CALL with `p_format => 'hex:32'`. Each CALL's ratio is taken against the
same round's bare UPDATE of its table; medians over --repeat rounds with min and max. Goal (printed, never
asserted): hex <= 1.10x, and the uuid ratio as before (BENCHMARKS.md, engine).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import psycopg
from psycopg import sql

from benchmarks import common

UUID_TABLE = "bench_engine"
HEX_TABLE = "bench_formats"
FORMAT = "hex:32"


def make_hex_table(conn: psycopg.Connection, rows: int) -> None:
    """The hex-key table, filled with distinct hex keys, autovacuum off, vacuumed."""
    t = sql.Identifier(HEX_TABLE)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " api_key varchar(64) NOT NULL UNIQUE, owner text NOT NULL DEFAULT 'bench')"
            " WITH (autovacuum_enabled = false)"
        ).format(t)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (api_key)"
            " SELECT encode(sha256(g::text::bytea), 'hex') FROM generate_series(1, %s) g"
        ).format(t),
        (rows,),
    )
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(t))


def set_list(conn: psycopg.Connection) -> str:
    """The SET list rotate() uses for hex:32 on the hex table, as token_value() builds it."""
    row = conn.execute(
        "SELECT set_list FROM token_rotation_internal.token_value(%s::regclass, 'api_key', %s)",
        (HEX_TABLE, FORMAT),
    ).fetchone()
    assert row is not None
    return str(row[0])


def call(dsn: str, statement: sql.Composed) -> None:
    with common.connect(dsn) as conn:
        conn.execute(statement)


def run(dsn: str, rows: int, repeat: int, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Measures; returns per configuration the median seconds and ratio with its min and max."""
    common.install(dsn)
    log(f"seeding {rows:,} rows into {UUID_TABLE} and {HEX_TABLE} ...")
    common.make_scratch_table(dsn, rows, UUID_TABLE)
    conn = common.connect(dsn)
    make_hex_table(conn, rows)
    bare_hex = sql.SQL("UPDATE {} SET ").format(sql.Identifier(HEX_TABLE)) + sql.SQL(set_list(conn))
    configs: dict[str, tuple[str, Callable[[], object]]] = {
        "uuid: bare UPDATE": (UUID_TABLE, lambda: common.bare_update(conn, UUID_TABLE)),
        "uuid: CALL": (UUID_TABLE, lambda: common.call_rotate(dsn, UUID_TABLE)),
        "hex:32: bare UPDATE": (HEX_TABLE, lambda: conn.execute(bare_hex)),
        "hex:32: CALL": (
            HEX_TABLE,
            lambda: call(
                dsn,
                sql.SQL(
                    "CALL token_rotation.rotate({t}, p_column => 'api_key', p_format => {f}, p_quiet => true)"
                ).format(t=sql.Literal(HEX_TABLE), f=sql.Literal(FORMAT)),
            ),
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    ratios: dict[str, list[float]] = {name: [] for name in configs}
    try:
        for table in (UUID_TABLE, HEX_TABLE):  # warm-up: each table reaches its steady size
            common.reset(conn, table)
        common.bare_update(conn, UUID_TABLE)
        conn.execute(bare_hex)
        for round_no in range(1, repeat + 1):
            line = []
            for name, (table, fn) in configs.items():
                common.reset(conn, table)
                with common.timed() as sample:
                    fn()
                seconds[name].append(sample[0].seconds)
                reference = "uuid: bare UPDATE" if table == UUID_TABLE else "hex:32: bare UPDATE"
                ratios[name].append(sample[0].seconds / seconds[reference][-1])
                line.append(f"{name}: {sample[0].seconds:.2f} s ({ratios[name][-1]:.3f}x)")
            log(f"round {round_no}/{repeat}: " + "; ".join(line))
    finally:
        conn.close()
    return {
        name: {
            "median_seconds": common.median(seconds[name]),
            "median_ratio": common.median(ratios[name]),
            "min_ratio": min(ratios[name]),
            "max_ratio": max(ratios[name]),
            "us_per_row": 1e6 * common.median(seconds[name]) / rows,
        }
        for name in configs
    }


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=3, show_default=True, help="Alternated rounds.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(dsn: str | None, rows: int, repeat: int, json_out: Path | None) -> None:
    """A hex:32 token and a uuid token, each CALL against the same round's bare UPDATE; median ratios."""
    summary = run(common.resolve_dsn(dsn), rows, repeat, log=click.echo)
    click.echo(
        f"\n{rows:,} rows, {repeat} rounds; ratio = seconds / the same round's bare UPDATE of the table"
    )
    for name, s in summary.items():
        click.echo(
            f"  {name:<22} {s['median_seconds']:7.2f} s  {s['us_per_row']:6.2f} us/row  "
            f"ratio {s['median_ratio']:.3f}x (min {s['min_ratio']:.3f}, max {s['max_ratio']:.3f})"
        )
    hex_ratio = summary["hex:32: CALL"]["median_ratio"]
    click.echo(common.goal(10, "hex:32", hex_ratio, 1.10))
    common.write_results(json_out, rows, repeat, summary)


if __name__ == "__main__":
    main()
