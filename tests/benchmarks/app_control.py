"""`python -m benchmarks.app_control`: the control of `bench-app`, without any rotation.

The same application as bench-app (pgbench at a fixed rate, a read and an update of a random row), measured
alone, then while one backend keeps a core busy on arithmetic (no table, no lock, no WAL), then while a bare
UPDATE rewrites another table of the same size (CPU and WAL, no row in common). On a machine with few cores
this shows what any busy backend does to the application's tail, whatever the rotation's batches are.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import psycopg

from benchmarks import app, common

OTHER = "bench_other"


def busy(dsn: str, statement: str) -> tuple[float, float]:
    """Runs one statement on its own connection; its start and end (time.time())."""
    started = time.time()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)
    return started, time.time()


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: the embedded server).")
@click.option("--rows", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--rate", type=click.IntRange(1), default=400, show_default=True, help="Application tx/s.")
def main(dsn: str | None, rows: int, rate: int) -> None:
    """The application alone, beside a CPU-bound backend, and beside a bare UPDATE of another table."""
    target = common.resolve_dsn(dsn)
    common.install(target)
    common.make_scratch_table(target, rows, app.TABLE)
    common.make_scratch_table(target, rows, OTHER)
    with common.connect(target) as conn:
        click.echo(f"machine: {common.machine(conn).describe()}")
        conn.execute("CHECKPOINT")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc = app.pgbench(target, rows, rate, 600, workdir, "control")
        time.sleep(3)
        alone = (time.time(), time.time() + 10)
        time.sleep(10)
        hog = busy(target, f"SELECT sum(i * 2) FROM generate_series(1, {120 * rows}) AS i")
        time.sleep(3)
        update = busy(target, f"UPDATE {OTHER} SET token = gen_random_uuid()")
        time.sleep(3)  # pgbench buffers its log: what it loses when stopped is past the windows
        proc.terminate()
        proc.communicate()
        for name, (start, end) in (
            ("alone", alone),
            (f"one backend on arithmetic ({hog[1] - hog[0]:.1f} s)", hog),
            (f"a bare UPDATE of another table ({update[1] - update[0]:.1f} s)", update),
        ):
            s = app.stats(*app.read_log(workdir, "control", start, end), end - start)
            click.echo(
                f"{name:<48} p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  "
                f"worst {s['worst_ms']:6.2f} ms  {s['tps']:6.1f} tx/s  failed {s['failed']}"
            )


if __name__ == "__main__":
    main()
