"""`python -m benchmarks.engine` (`make bench-engine`): one CALL vs one bare UPDATE, alternated.

Issue 2's must-show, and issue 4's worker and durability numbers: on a 1M-row demo-shaped table (unique index
on the token), each round times the reference bare `UPDATE t SET token = gen_random_uuid()`, then one CALL of
token_rotation.rotate() with batch 3000 on one worker as shipped (synchronous_commit off), the same with
p_synchronous_commit => true, and the same on --workers sessions; the table is reset (VACUUM, CHECKPOINT)
before every run. Each round's ratios are taken against that round's reference; the medians over --repeat
rounds are printed with their spread ((max - min) / median). Goals (printed, never asserted): one worker
<= 1.15x (issue 2) and <= 1.05x (issue 4), two workers <= 0.60x.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from benchmarks import common

TABLE = "bench_engine"


def run(
    dsn: str, rows: int, repeat: int, workers: int, batch_size: int, log: Callable[[str], None] = print
) -> dict[str, dict[str, float]]:
    """Measures; returns per configuration the median seconds, median ratio and spreads."""
    common.install(dsn)
    log(f"seeding {rows:,} rows into {TABLE} ...")
    common.make_scratch_table(dsn, rows, TABLE)
    configs: dict[str, Callable[[], object]] = {}
    conn = common.connect(dsn)
    configs["bare UPDATE"] = lambda: common.bare_update(conn, TABLE)
    configs[f"CALL, batch {batch_size}, 1 worker"] = lambda: common.call_rotate(
        dsn, TABLE, batch_size=batch_size
    )
    configs[f"CALL, batch {batch_size}, 1 worker, synchronous_commit on"] = lambda: common.call_rotate(
        dsn, TABLE, batch_size=batch_size, synchronous_commit=True
    )
    if workers > 1:
        configs[f"CALL, batch {batch_size}, {workers} workers"] = lambda: common.call_rotate(
            dsn, TABLE, batch_size=batch_size, workers=workers
        )
        configs[f"CALL, batch {batch_size}, {workers} workers, synchronous_commit on"] = lambda: (
            common.call_rotate(dsn, TABLE, batch_size=batch_size, workers=workers, synchronous_commit=True)
        )
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    ratios: dict[str, list[float]] = {name: [] for name in configs}
    try:
        common.reset(conn, TABLE)
        common.bare_update(conn, TABLE)  # warm-up: the table reaches its steady size
        for round_no in range(1, repeat + 1):
            line = []
            for name, fn in configs.items():
                common.reset(conn, TABLE)
                with common.timed() as sample:
                    fn()
                seconds[name].append(sample[0].seconds)
                ratios[name].append(sample[0].seconds / seconds["bare UPDATE"][-1])
                line.append(f"{name}: {sample[0].seconds:.2f} s ({ratios[name][-1]:.3f}x)")
            log(f"round {round_no}/{repeat}: " + "; ".join(line))
    finally:
        conn.close()
    summary = {
        name: {
            "median_seconds": common.median(seconds[name]),
            "seconds_spread": common.spread(seconds[name]),
            "median_ratio": common.median(ratios[name]),
            "min_ratio": min(ratios[name]),
            "max_ratio": max(ratios[name]),
            "us_per_row": 1e6 * common.median(seconds[name]) / rows,
        }
        for name in configs
    }
    return summary


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True, help="Alternated rounds.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=3000, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    dsn: str | None, rows: int, repeat: int, workers: int, batch_size: int, json_out: Path | None
) -> None:
    """One CALL of rotate() vs one bare UPDATE, alternated; prints the median ratios."""
    summary = run(common.resolve_dsn(dsn), rows, repeat, workers, batch_size, log=click.echo)
    click.echo(f"\n{rows:,} rows, {repeat} rounds; ratio = seconds / the same round's bare UPDATE")
    for name, s in summary.items():
        click.echo(
            f"  {name:<55} {s['median_seconds']:7.2f} s  {s['us_per_row']:6.2f} us/row  "
            f"ratio {s['median_ratio']:.3f}x (min {s['min_ratio']:.3f}, max {s['max_ratio']:.3f})"
        )
    one = summary[f"CALL, batch {batch_size}, 1 worker"]["median_ratio"]
    click.echo(common.goal(2, "one worker", one, 1.15))
    click.echo(common.goal(4, "one worker", one, 1.05))
    if workers > 1:
        many = summary[f"CALL, batch {batch_size}, {workers} workers"]["median_ratio"]
        click.echo(common.goal(4, f"{workers} workers", many, 0.60))
    common.write_results(json_out, rows, repeat, summary)


if __name__ == "__main__":
    main()
