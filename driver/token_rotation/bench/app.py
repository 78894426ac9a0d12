"""`python -m token_rotation.bench.app` (`make bench-app`): what an application feels while a rotation runs.

pgbench drives an application at a fixed rate (-R): each transaction reads a random row's token and updates
that row (`SELECT token ...; UPDATE ... SET updated_at = now() ...`), so it waits whenever its row is in the
batch being rotated. For each configuration (the CLI's default, ~10 ms batches; a fixed --batch-size 3000),
on a fresh table: pgbench alone for the baseline, then pgbench again with `rotate` started a few seconds in;
the transactions from the rotation's start to 15 s after its end are "during+after". From pgbench's
per-transaction log: p50, p99, worst latency, throughput, failed transactions. Goal (issue 11, printed): p99
<= max(2x the baseline p99, 3 ms) and worst <= 20 ms, none failed, for the default.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click

from token_rotation.bench import common

TABLE = "bench_app"
AFTER = 15.0  # seconds after the rotation that still count as "during+after" (autovacuum, checkpoints)

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
        [
            "pgbench",
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-R",
            str(rate),
            "-T",
            str(seconds),
            "-D",
            f"rows={rows}",
            "-f",
            str(script),
            "-l",
            "--log-prefix",
            str(workdir / tag),
            dsn,
        ],
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


def measure(dsn: str, rows: int, rate: int, baseline: int, args: Sequence[str]) -> dict[str, object]:
    common.make_scratch_table(dsn, rows, TABLE)
    with common.connect(dsn) as conn:
        conn.execute(f"ALTER TABLE {TABLE} RESET (autovacuum_enabled)")
        conn.execute("CHECKPOINT")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.time()
        proc = pgbench(dsn, rows, rate, baseline, workdir, "base")
        proc.communicate()
        base = stats(*read_log(workdir, "base", started + 1, time.time()), baseline - 1)
        proc = pgbench(dsn, rows, rate, 600, workdir, "during")
        time.sleep(3)
        rot_start = time.time()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "token_rotation",
                "--dsn",
                dsn,
                "rotate",
                "--table",
                TABLE,
                "--json",
                *args,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        rot_end = time.time()
        time.sleep(AFTER + 3)  # pgbench buffers its log: what it loses when stopped is past the window
        proc.terminate()
        proc.communicate()
        window = rot_end + AFTER - rot_start
        during_after = stats(*read_log(workdir, "during", rot_start, rot_end + AFTER), window)
        during = stats(*read_log(workdir, "during", rot_start, rot_end), rot_end - rot_start)
        after = stats(*read_log(workdir, "during", rot_end, rot_end + AFTER), AFTER)
    return {
        "rotation_seconds": rot_end - rot_start,
        "baseline": base,
        "during_after": during_after,
        "during": during,
        "after": after,
    }


CONFIGS = {"default (~10 ms batches)": [], "--batch-size 3000": ["--batch-size", "3000"]}


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--rate", type=click.IntRange(1), default=400, show_default=True, help="Application tx/s.")
@click.option("--baseline", type=click.IntRange(3), default=15, show_default=True, help="Seconds alone.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--config",
    "configs",
    multiple=True,
    metavar="ARGS",
    help="Measure `rotate ARGS` instead of the default and --batch-size 3000 (repeatable; '' is the "
    "default), e.g. --config '--no-reclaim' --config '--sleep 2ms'.",
)
def main(
    dsn: str | None, rows: int, rate: int, baseline: int, json_out: Path | None, configs: tuple[str, ...]
) -> None:
    """An application at a fixed rate, alone and during+after a rotation (default, and fixed 3000)."""
    target = common.resolve_dsn(dsn)
    common.install(target)
    with common.connect(target) as conn:
        click.echo(f"machine: {common.machine(conn).describe()}; load average {os.getloadavg()[0]:.1f}")
    results = {}
    chosen = {c or "default": c.split() for c in configs} if configs else CONFIGS
    for name, args in chosen.items():
        results[name] = r = measure(target, rows, rate, baseline, args)
        click.echo(f"{name}: rotation {r['rotation_seconds']:.1f} s")
        for phase in ("baseline", "during_after", "during", "after"):
            s = r[phase]
            assert isinstance(s, dict)
            click.echo(
                f"  {phase:<13} p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  "
                f"worst {s['worst_ms']:6.2f} ms  {s['tps']:6.1f} tx/s  failed {s['failed']}"
            )
        base, during = r["baseline"], r["during_after"]
        assert isinstance(base, dict) and isinstance(during, dict)
        limit = max(2 * base["p99_ms"], 3.0)
        met = during["p99_ms"] <= limit and during["worst_ms"] <= 20 and during["failed"] == 0
        click.echo(f"  goal: p99 <= {limit:.2f} ms, worst <= 20 ms, no failure: {'met' if met else 'missed'}")
    if json_out:
        json_out.write_text(json.dumps({"rows": rows, "rate": rate, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
