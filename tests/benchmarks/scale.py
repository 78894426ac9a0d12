"""`python -m benchmarks.scale` (`make bench-scale`): time per row at 1M against 10M, interleaved.

Issue 4's scale goal (time per row at 10M at most 1.3x that at 1M) compares two sizes; measured in two
separate runs, half an hour apart on a shared machine, the drift between them is as large as the effect
(2026-11-29: the same 10M command took 109 s, then 116 s for the bare UPDATE). So this script seeds one table
of each size and alternates them inside every round: the bare UPDATE, then one CALL of rotate() (batch 3000)
on one worker and on --workers sessions, on the small table, then the same on the large one, each after a
reset (VACUUM, CHECKPOINT). Each round yields a per-row ratio large / small per configuration; the medians are
printed with their spread. Goal (printed, never asserted): <= 1.3x.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from benchmarks import common


def run(
    dsn: str,
    sizes: tuple[int, int],
    repeat: int,
    workers: int,
    batch_size: int,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Measures; returns per configuration the median per-row ratio (large / small) and its range."""
    common.install(dsn)
    tables = {rows: f"bench_scale_{rows}" for rows in sizes}
    conn = common.connect(dsn)
    try:
        for rows, table in tables.items():
            log(f"seeding {rows:,} rows into {table} ...")
            common.make_scratch_table(dsn, rows, table)
            common.reset(conn, table)
            common.bare_update(conn, table)  # warm-up: the table reaches its steady size
        configs: dict[str, Callable[[str], object]] = {
            "bare UPDATE": lambda t: common.bare_update(conn, t),
            f"CALL, batch {batch_size}, 1 worker": lambda t: common.call_rotate(
                dsn, t, batch_size=batch_size
            ),
        }
        if workers > 1:
            configs[f"CALL, batch {batch_size}, {workers} workers"] = lambda t: common.call_rotate(
                dsn, t, batch_size=batch_size, workers=workers
            )
        ratios: dict[str, list[float]] = {name: [] for name in configs}
        per_row: dict[str, dict[int, list[float]]] = {name: {rows: [] for rows in sizes} for name in configs}
        for round_no in range(1, repeat + 1):
            for rows, table in tables.items():
                for name, fn in configs.items():
                    common.reset(conn, table)
                    with common.timed() as sample:
                        fn(table)
                    per_row[name][rows].append(1e6 * sample[0].seconds / rows)
            line = []
            for name in configs:
                small, large = (per_row[name][rows][-1] for rows in sizes)
                ratios[name].append(large / small)
                line.append(f"{name}: {small:.2f} -> {large:.2f} us/row ({large / small:.3f}x)")
            log(f"round {round_no}/{repeat}: " + "; ".join(line))
    finally:
        conn.close()
    return {
        name: {
            **{f"us_per_row_{rows}": common.median(per_row[name][rows]) for rows in sizes},
            "median_ratio": common.median(ratios[name]),
            "min_ratio": min(ratios[name]),
            "max_ratio": max(ratios[name]),
        }
        for name in configs
    }


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option(
    "--small", type=click.IntRange(1), default=1_000_000, show_default=True, help="Rows, small table."
)
@click.option(
    "--large", type=click.IntRange(1), default=10_000_000, show_default=True, help="Rows, large table."
)
@click.option("--repeat", type=click.IntRange(1), default=2, show_default=True, help="Alternated rounds.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=3000, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    dsn: str | None,
    small: int,
    large: int,
    repeat: int,
    workers: int,
    batch_size: int,
    json_out: Path | None,
) -> None:
    """Time per row on a large table against a small one, alternated in every round."""
    summary = run(common.resolve_dsn(dsn), (small, large), repeat, workers, batch_size, log=click.echo)
    click.echo(f"\n{small:,} against {large:,} rows, {repeat} rounds; ratio = time per row large / small")
    for name, s in summary.items():
        click.echo(
            f"  {name:<30} {s[f'us_per_row_{small}']:6.2f} -> {s[f'us_per_row_{large}']:6.2f} us/row  "
            f"ratio {s['median_ratio']:.3f}x (min {s['min_ratio']:.3f}, max {s['max_ratio']:.3f})"
        )
    for name, s in summary.items():
        if name != "bare UPDATE":
            verdict = "met" if s["median_ratio"] <= 1.3 else "missed"
            click.echo(f"goal issue 4: {name} per row <= 1.3x: {verdict} ({s['median_ratio']:.3f}x)")
    if json_out:
        report = {"small": small, "large": large, "repeat": repeat, "results": summary}
        json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
