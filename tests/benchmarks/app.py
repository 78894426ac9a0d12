"""`python -m benchmarks.app` (`make bench-app`): what an application feels while a rotation runs,
against what it feels while the same amount of work runs beside it.

pgbench drives an application at a fixed rate (-R): each transaction reads a random row's token and updates
that row (`SELECT token ...; UPDATE ... SET updated_at = now() ...`), so it waits whenever its row is in the
batch being rotated. The control is one bare `UPDATE twin SET token = gen_random_uuid()` of an identical
fresh twin table, which shares no row with the application: the same work, without a lock the application
can meet. Each configuration runs on a fresh table (autovacuum on, as a real table), in an order that
alternates between rounds: pgbench starts, 10 s of the application alone, then the work (the control's
UPDATE, or `rotate ARGS` as a user runs it, in its own process) and the 15 s after it. Latencies from
pgbench's per-transaction log (with -R they count from the scheduled start, as the application feels them).

Printed per configuration, medians over the rounds: p99 and worst latency during the work and the 15 s after
it, and their ratios to the same round's control; failed transactions; the worked table's heap and heap +
indexes after the work against before; the work's seconds against the control's UPDATE. Goals (issue 20,
printed, never asserted): p99 and worst <= 1.25x the control's, no failure, heap <= 1.15x, heap + indexes <=
1.30x, time <= 1.15x.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from psycopg import sql

from benchmarks import common

TABLE = "bench_app"
TWIN = "bench_app_twin"
ALONE = 10.0  # seconds of the application alone before the work
AFTER = 15.0  # seconds after the work that still count (autovacuum, checkpoints)

SCRIPT = f"""\\set id random(1, :rows)
BEGIN;
SELECT token FROM {TABLE} WHERE id = :id;
UPDATE {TABLE} SET updated_at = now() WHERE id = :id;
END;
"""


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def pgbench(dsn: str, rows: int, rate: int, seconds: int, workdir: Path, tag: str) -> subprocess.Popen[bytes]:
    """Starts pgbench at `rate` tx/s for `seconds`, logging every transaction into workdir/tag.*."""
    script = workdir / "app.sql"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        ["pgbench", "-n", "-c", "4", "-j", "2", "-R", str(rate), "-T", str(seconds), "-D", f"rows={rows}"]
        + ["-f", str(script), "-l", "--log-prefix", str(workdir / tag), dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def read_log(workdir: Path, tag: str, start: float, end: float) -> tuple[list[float], int]:
    """Latencies (ms) of the transactions that ended within [start, end], and the failed ones."""
    latencies: list[float] = []
    failed = 0
    for name in glob.glob(str(workdir / f"{tag}.*")):
        with open(name) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:  # the last line of a log cut short when pgbench was stopped
                    continue
                ended = int(parts[4]) + int(parts[5]) / 1e6
                if not start <= ended <= end:
                    continue
                if parts[2] in ("failed", "skipped"):
                    failed += 1
                else:
                    latencies.append(int(parts[2]) / 1000)
    return latencies, failed


def stats(latencies: list[float], failed: int, seconds: float) -> dict[str, float]:
    return {
        "transactions": len(latencies),
        "tps": len(latencies) / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "worst_ms": max(latencies, default=0.0),
        "failed": failed,
    }


def fresh(dsn: str, rows: int, table: str) -> None:
    """A freshly seeded table with autovacuum on (as a real table), vacuumed."""
    common.make_scratch_table(dsn, rows, table)
    with common.connect(dsn) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(sql.Identifier(table)))


@dataclass(frozen=True)
class Config:
    """One way of doing the work: the control's bare UPDATE of the twin, a psql user's CALL statement, or
    `rotate ARGS` (with environment variables for its process, e.g. PGOPTIONS, given as leading NAME=value
    words)."""

    name: str
    env: dict[str, str]
    args: tuple[str, ...]
    control: bool = False
    statement: str | None = None  # a CALL, run as written on one connection, without the driver

    @classmethod
    def parse(cls, text: str) -> Config:
        if text.upper().startswith("CALL"):  # a psql user's CALL, as written
            return cls(text, {}, (), statement=text)
        words = shlex.split(text)
        env = {}
        while words and "=" in words[0] and not words[0].startswith("-"):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        return cls(f"rotate {text}".strip() if text else "rotate (defaults)", env, tuple(words))

    @property
    def table(self) -> str:
        return TWIN if self.control else TABLE

    def work(self, dsn: str) -> None:
        if self.control:
            with common.connect(dsn) as conn:
                common.bare_update(conn, TWIN)
            return
        if self.statement is not None:
            with common.connect(dsn) as conn:
                conn.execute(self.statement)
            return
        subprocess.run(
            [sys.executable, "-m", "token_rotation", "--dsn", dsn, "rotate", "--table", TABLE, "--json"]
            + list(self.args),
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )


CONTROL = Config("bare UPDATE of the twin (control)", {}, (), control=True)


@dataclass(frozen=True)
class Result:
    """One configuration in one round: the work's seconds, the worked table's growth, and the application's
    latencies per window (alone, during_after, during, after)."""

    seconds: float
    heap: float
    total: float
    windows: dict[str, dict[str, float]]

    def stat(self, field: str, window: str = "during_after") -> float:
        return self.windows[window][field]


def measure(dsn: str, rows: int, rate: int, config: Config) -> Result:
    """One configuration on fresh tables: the application alone, then during the work and 15 s after it."""
    fresh(dsn, rows, TABLE)
    if config.control:
        fresh(dsn, rows, TWIN)
    with common.connect(dsn) as conn:
        conn.execute("CHECKPOINT")
    heap0, total0 = common.sizes(dsn, config.table)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc = pgbench(dsn, rows, rate, 900, workdir, "tx")
        time.sleep(2)
        alone_start = time.time()
        time.sleep(ALONE)
        start = time.time()
        config.work(dsn)
        end = time.time()
        heap1, total1 = common.sizes(dsn, config.table)
        time.sleep(AFTER + 3)  # pgbench buffers its log: what it loses when stopped is past the window
        proc.terminate()
        output = proc.communicate()[0]
        windows = {
            "alone": (alone_start, start),
            "during_after": (start, end + AFTER),
            "during": (start, end),
            "after": (end, end + AFTER),
        }
        if not glob.glob(str(workdir / "tx.*")):
            raise click.ClickException(f"pgbench logged nothing: {output.decode(errors='replace')}")
        return Result(
            end - start,
            heap1 / heap0,
            total1 / total0,
            {k: stats(*read_log(workdir, "tx", a, b), b - a) for k, (a, b) in windows.items()},
        )


def run(
    dsn: str, rows: int, rate: int, rounds: int, configs: Sequence[Config], log: Callable[[str], None]
) -> tuple[dict[str, dict[str, float]], dict[str, list[dict[str, object]]]]:
    """Alternated rounds; per configuration the medians and the ratios to the same round's control, and
    every round's results."""
    everything = [CONTROL, *configs]
    found: dict[str, list[Result]] = {c.name: [] for c in everything}
    ratios: dict[str, dict[str, list[float]]] = {
        c.name: {"p99": [], "worst": [], "time": []} for c in configs
    }
    for round_no in range(1, rounds + 1):
        order = everything if round_no % 2 else list(reversed(everything))
        this: dict[str, Result] = {}
        for config in order:
            this[config.name] = r = measure(dsn, rows, rate, config)
            found[config.name].append(r)
            log(
                f"round {round_no}/{rounds} {config.name}: {r.seconds:.1f} s, heap {r.heap:.2f}x, "
                f"+indexes {r.total:.2f}x; during+after p99 {r.stat('p99_ms'):.2f} ms, worst "
                f"{r.stat('worst_ms'):.2f} ms, failed {r.stat('failed'):.0f}"
            )
        control = this[CONTROL.name]
        for config in configs:
            mine, mine_ratios = this[config.name], ratios[config.name]
            mine_ratios["p99"].append(mine.stat("p99_ms") / max(control.stat("p99_ms"), 0.001))
            mine_ratios["worst"].append(mine.stat("worst_ms") / max(control.stat("worst_ms"), 0.001))
            mine_ratios["time"].append(mine.seconds / control.seconds)
    summary: dict[str, dict[str, float]] = {}
    for config in everything:
        rs = found[config.name]
        s = {
            "seconds": common.median([r.seconds for r in rs]),
            "heap": common.median([r.heap for r in rs]),
            "total": common.median([r.total for r in rs]),
            "alone_p99_ms": common.median([r.stat("p99_ms", "alone") for r in rs]),
            "alone_worst_ms": common.median([r.stat("worst_ms", "alone") for r in rs]),
            "p99_ms": common.median([r.stat("p99_ms") for r in rs]),
            "worst_ms": common.median([r.stat("worst_ms") for r in rs]),
            "failed": sum(r.stat("failed") for r in rs),
        }
        for key, values in ratios.get(config.name, {}).items():
            s[f"{key}_ratio"] = common.median(values)
            s[f"{key}_ratio_spread"] = common.spread(values)
        summary[config.name] = s
    return summary, {name: [dataclasses.asdict(r) for r in rs] for name, rs in found.items()}


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--rate", type=click.IntRange(1), default=400, show_default=True, help="Application tx/s.")
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True, help="Alternated rounds.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--config",
    "configs",
    multiple=True,
    metavar="ARGS",
    help="Measure `rotate ARGS` instead of the defaults (repeatable; '' is the defaults); leading NAME=value "
    "words set the rotate process's environment, e.g. --config '' --config '--no-reclaim' "
    "--config \"PGOPTIONS='-c vacuum_cost_delay=2ms'\".",
)
def main(
    dsn: str | None, rows: int, rate: int, rounds: int, json_out: Path | None, configs: tuple[str, ...]
) -> None:
    """An application at a fixed rate beside a rotation, against beside a bare UPDATE of an identical twin."""
    target = common.resolve_dsn(dsn)
    common.install(target)
    with common.connect(target) as conn:
        click.echo(f"machine: {common.machine(conn).describe()}; load average {os.getloadavg()[0]:.1f}")
    chosen = [Config.parse(c) for c in configs] if configs else [Config.parse("")]
    summary, raw = run(target, rows, rate, rounds, chosen, click.echo)
    click.echo(f"\n{rows:,} rows, application at {rate} tx/s, {rounds} alternated rounds; medians")
    for name, s in summary.items():
        line = (
            f"  {name:<44} {s['seconds']:6.1f} s  heap {s['heap']:.2f}x  +indexes {s['total']:.2f}x  "
            f"alone p99 {s['alone_p99_ms']:5.2f} worst {s['alone_worst_ms']:6.2f}  during+after p99 "
            f"{s['p99_ms']:5.2f} ms worst {s['worst_ms']:6.2f} ms  failed {s['failed']:.0f}"
        )
        if "p99_ratio" in s:
            line += (
                f"\n  {'':<44} vs control: p99 {s['p99_ratio']:.2f}x ({s['p99_ratio_spread']:.0%}), worst "
                f"{s['worst_ratio']:.2f}x ({s['worst_ratio_spread']:.0%}), time {s['time_ratio']:.3f}x "
                f"({s['time_ratio_spread']:.0%})"
            )
        click.echo(line)
    default = summary.get(Config.parse("").name)
    if default is not None:
        for what, value, limit in (
            ("application p99 vs the control's", default["p99_ratio"], 1.25),
            ("application worst vs the control's", default["worst_ratio"], 1.25),
            ("heap", default["heap"], 1.15),
            ("heap + indexes", default["total"], 1.30),
            ("time vs the bare UPDATE", default["time_ratio"], 1.15),
        ):
            click.echo(common.goal(20, what, value, limit))
        click.echo(f"goal issue 20: no failed transaction: {'met' if default['failed'] == 0 else 'missed'}")
    if json_out:
        json_out.write_text(
            json.dumps({"rows": rows, "rate": rate, "results": summary, "rounds": raw}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
