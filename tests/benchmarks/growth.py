"""`python -m benchmarks.growth` (`make bench-growth`): how much the table grows, and how long the
run takes, with the CLI's defaults (batches of about 10 ms, VACUUM after each 5%: --reclaim) against one bare
UPDATE of an identical fresh table, and against the CLI with --no-reclaim.

Each round seeds a fresh demo-shaped table (autovacuum on, as a real table) for each configuration, in
an order that alternates between rounds, and measures the heap and the heap + indexes after the run against
before, and the seconds. Ratios are against the same round's bare UPDATE; medians over --repeat rounds, with
their spread ((max - min) / median). Goals (issue 11, printed, never asserted): heap <= 1.15x, heap +
indexes <= 1.30x, time <= 1.15x the bare UPDATE.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from psycopg import sql

from token_rotation.reclaim import DEFAULT_SHARE

from benchmarks import common

TABLE = "bench_growth"


def sizes(dsn: str) -> tuple[int, int]:
    """Heap bytes and heap + index bytes of the table."""
    return common.sizes(dsn, TABLE)


def fresh(dsn: str, rows: int) -> None:
    """A freshly seeded table with autovacuum on, vacuumed and checkpointed."""
    common.make_scratch_table(dsn, rows, TABLE)
    with common.connect(dsn) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(sql.Identifier(TABLE)))
        conn.execute("CHECKPOINT")


def cli_rotate(dsn: str, *args: str) -> None:
    """The CLI as a user runs it (its own process), JSON output discarded."""
    subprocess.run(
        [sys.executable, "-m", "token_rotation", "--dsn", dsn, "rotate", "--table", TABLE, "--json", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


DEFAULT = f"rotate (defaults: ~10 ms batches, --reclaim every {100 * DEFAULT_SHARE:g}%)"


def run(
    dsn: str, rows: int, repeat: int, log: Callable[[str], None] = print, variants: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """`variants`: `rotate ARGS` to measure instead of the defaults and --no-reclaim ('' is the defaults)."""
    common.install(dsn)
    configs: dict[str, Callable[[], object]] = {"bare UPDATE": lambda: _bare(dsn)}
    if not variants:
        configs[DEFAULT] = lambda: cli_rotate(dsn)
        configs["rotate --no-reclaim (~10 ms batches)"] = lambda: cli_rotate(dsn, "--no-reclaim")
    for args in variants:
        configs[f"rotate {args}".strip() if args else DEFAULT] = functools.partial(
            cli_rotate, dsn, *args.split()
        )
    found: dict[str, dict[str, list[float]]] = {n: {"seconds": [], "heap": [], "total": []} for n in configs}
    time_ratio: dict[str, list[float]] = {n: [] for n in configs}
    for round_no in range(1, repeat + 1):
        names = list(configs)
        order = names if round_no % 2 else [names[0], *reversed(names[1:])]
        bare_seconds = None
        line = []
        for name in order:
            fresh(dsn, rows)
            heap0, total0 = sizes(dsn)
            started = time.perf_counter()
            configs[name]()
            seconds = time.perf_counter() - started
            heap1, total1 = sizes(dsn)
            found[name]["seconds"].append(seconds)
            found[name]["heap"].append(heap1 / heap0)
            found[name]["total"].append(total1 / total0)
            if name == "bare UPDATE":
                bare_seconds = seconds
            line.append(
                f"{name}: {seconds:.2f} s, heap {heap1 / heap0:.2f}x, +indexes {total1 / total0:.2f}x"
            )
        assert bare_seconds is not None
        for name in configs:
            time_ratio[name].append(found[name]["seconds"][-1] / bare_seconds)
        log(f"round {round_no}/{repeat}: " + "; ".join(line))
    return {
        name: {
            "median_seconds": common.median(found[name]["seconds"]),
            "seconds_spread": common.spread(found[name]["seconds"]),
            "median_time_ratio": common.median(time_ratio[name]),
            "time_ratio_spread": common.spread(time_ratio[name]),
            "median_heap_ratio": common.median(found[name]["heap"]),
            "max_heap_ratio": max(found[name]["heap"]),
            "median_total_ratio": common.median(found[name]["total"]),
            "max_total_ratio": max(found[name]["total"]),
        }
        for name in configs
    }


def _bare(dsn: str) -> None:
    with common.connect(dsn) as conn:
        common.bare_update(conn, TABLE)


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=3, show_default=True, help="Alternated rounds.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--config",
    "variants",
    multiple=True,
    metavar="ARGS",
    help="Measure `rotate ARGS` instead of the defaults and --no-reclaim (repeatable; '' is the defaults), "
    "e.g. --config '' --config '--reclaim-every 5'.",
)
def main(dsn: str | None, rows: int, repeat: int, json_out: Path | None, variants: tuple[str, ...]) -> None:
    """Growth and time of the CLI's defaults vs a bare UPDATE of an identical fresh table."""
    target = common.resolve_dsn(dsn)
    with common.connect(target) as conn:
        click.echo(f"machine: {common.machine(conn).describe()}")
    summary = run(target, rows, repeat, log=click.echo, variants=variants)
    click.echo(f"\n{rows:,} rows, {repeat} rounds, fresh table each run, autovacuum on; medians (spread)")
    for name, s in summary.items():
        click.echo(
            f"  {name:<55} {s['median_seconds']:6.2f} s ({s['seconds_spread']:.0%})  time "
            f"{s['median_time_ratio']:.3f}x  heap {s['median_heap_ratio']:.2f}x "
            f"(max {s['max_heap_ratio']:.2f})"
            f"  heap+indexes {s['median_total_ratio']:.2f}x (max {s['max_total_ratio']:.2f})"
        )
    if DEFAULT not in summary:
        common.write_results(json_out, rows, repeat, summary)
        return
    d = summary[DEFAULT]
    for goal, value, limit in (
        ("heap", d["median_heap_ratio"], 1.15),
        ("heap + indexes", d["median_total_ratio"], 1.30),
        ("time vs bare UPDATE", d["median_time_ratio"], 1.15),
    ):
        click.echo(common.goal(11, goal, value, limit))
    common.write_results(json_out, rows, repeat, summary)


if __name__ == "__main__":
    main()
