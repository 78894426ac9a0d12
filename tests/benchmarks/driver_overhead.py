"""What the driver costs: `token-rotation rotate` against a bare CALL of the procedure, same table state.

    python -m benchmarks.driver_overhead --rows 1000000      (or: make bench-driver)

On a scratch table of --rows rows it alternates the two, --rounds times (A B, B A, A B ...), resetting the
table before each (VACUUM, CHECKPOINT: common.reset), because this machine is shared and noisy:
- A, the reference: a plain psycopg program (`python -c`, as a subprocess) connects and issues
  `CALL token_rotation.rotate(...)`, nothing else, timed from process start to exit;
- B, the driver: `python -m token_rotation rotate` as a subprocess, its stdout on a pseudo-terminal so that it
  draws the live bar as a user sees it, timed from process start to exit (interpreter start-up, imports,
  the checks before the CALL, the progress polling and the report after it all count). Its peak resident
  memory is the kernel's high-water mark, VmHWM in /proc/PID/status, sampled until it exits.
It prints the median seconds of each, their ratio (B / A; target at most 1.03) and the driver's peak memory
(target at most 80 MB), plus each round's numbers so the noise is visible. Exit code 0 when both targets hold.

On a busy shared machine the two runs of a round can differ by 50% for reasons that have nothing to do with
the driver (another benchmark's checkpoint, a vacuum). So it also reports the driver's own cost in seconds:
each run's wall time minus the working time the procedure itself booked for that run (runs.elapsed, on the
server), for B minus the same for A (connect and round trip), as a share of the median bare CALL; and the
ratio of the procedure's own times in B and A, which shows whether the progress polling slowed it down.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import psycopg
from psycopg import sql

from benchmarks import common

TABLE = "bench_driver_tickets"
MAX_RATIO = 1.03
MAX_PEAK_MB = 80.0


@dataclass
class Round:
    """One A/B pair: wall seconds of the bare CALL and of the driver, the procedure's own working time in
    each (runs.elapsed), and the driver's peak memory."""

    bare_seconds: float
    driver_seconds: float
    driver_peak_mb: float
    bare_server_seconds: float
    driver_server_seconds: float

    @property
    def driver_cost(self) -> float:
        """Seconds the driver added around the procedure, beyond what a bare CALL adds."""
        return (self.driver_seconds - self.driver_server_seconds) - (
            self.bare_seconds - self.bare_server_seconds
        )

    @property
    def ratio(self) -> float:
        return self.driver_seconds / self.bare_seconds


# the reference program: plain psycopg, one connection, one CALL, nothing else
BARE_PROGRAM = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    conn.execute("CALL token_rotation.rotate(%s::regclass, p_batch_size => %s, p_quiet => true)",
                 (sys.argv[2], int(sys.argv[3])))
"""


def bare_call(dsn: str, table: str, batch_size: int) -> float:
    """Seconds from start to exit of a plain-psycopg program that CALLs the procedure once."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", BARE_PROGRAM, dsn, table, str(batch_size)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _drain(fd: int) -> None:
    """Reads (and drops) what the driver draws on its terminal, so it never blocks on a full pty."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def vm_hwm_kb(pid: int) -> int | None:
    """The peak resident set size of a live process, in kB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def driver_call(dsn: str, table: str, batch_size: int) -> tuple[float, float]:
    """Seconds from start to exit of `token-rotation rotate` on a pty, and its peak memory in MB."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(COLUMNS="120", TERM=env.get("TERM", "xterm"))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "token_rotation", "--dsn", dsn, "rotate", "--table", table,
         "--batch-size", str(batch_size)],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    os.close(follower)
    reader = threading.Thread(target=_drain, args=(leader,), daemon=True)
    reader.start()
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max(peak_kb, vm_hwm_kb(proc.pid) or 0)
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    _, err = proc.communicate()
    reader.join(timeout=5)
    os.close(leader)
    if proc.returncode != 0:
        raise RuntimeError(f"token-rotation rotate exited {proc.returncode}: {err.decode(errors='replace')}")
    return seconds, peak_kb / 1024


def finished(conn: psycopg.Connection, table: str) -> float:
    """The working time the procedure booked for the table's last run, which must be finished."""
    row = conn.execute(
        "SELECT state, extract(epoch FROM elapsed)::float8 FROM token_rotation.runs"
        " WHERE target = to_regclass(%s) ORDER BY run_id DESC LIMIT 1",
        (table,),
    ).fetchone()
    if row is None or row[0] != "finished":
        raise RuntimeError(f"the last run of {table} did not finish: {row}")
    return float(row[1])


@click.command()
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Database (default: as the CLI chooses).")
@click.option("--rows", type=click.IntRange(min=1000), default=1_000_000, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="A/B pairs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(dsn: str | None, rows: int, rounds: int, batch_size: int, json_out: Path | None) -> None:
    """Driver overhead and peak memory of `token-rotation rotate` over a bare CALL."""
    target = common.resolve_dsn(dsn)
    common.install(target)
    click.echo(f"scratch table {TABLE}: seeding {rows:,} rows ...")
    common.make_scratch_table(target, rows, TABLE)
    results: list[Round] = []
    with common.connect(target) as conn:
        for n in range(rounds):
            for method in ("bare", "driver") if n % 2 == 0 else ("driver", "bare"):  # A B B A A B ...
                common.reset(conn, TABLE)
                if method == "bare":
                    bare = bare_call(target, TABLE, batch_size)
                    bare_server = finished(conn, TABLE)
                else:
                    seconds, peak = driver_call(target, TABLE, batch_size)
                    driver_server = finished(conn, TABLE)
            results.append(Round(bare, seconds, peak, bare_server, driver_server))
            click.echo(
                f"round {n + 1}: bare CALL {bare:.2f}s, driver {seconds:.2f}s, "
                f"ratio {results[-1].ratio:.3f}, driver peak {peak:.1f} MB; procedure's own time "
                f"{bare_server:.2f}s / {driver_server:.2f}s, driver cost {results[-1].driver_cost:+.3f}s"
            )
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TABLE)))
    bare_median = common.median([r.bare_seconds for r in results])
    driver_median = common.median([r.driver_seconds for r in results])
    ratio = driver_median / bare_median
    ratio_median = common.median([r.ratio for r in results])
    peak = max(r.driver_peak_mb for r in results)
    click.echo(
        f"{rows:,} rows, batch {batch_size}, {rounds} rounds alternated: "
        f"median bare CALL {bare_median:.2f}s, median driver {driver_median:.2f}s"
    )
    click.echo(
        f"driver overhead: ratio of medians {ratio:.3f} (median of ratios {ratio_median:.3f}; "
        f"target <= {MAX_RATIO}); spread bare {common.spread([r.bare_seconds for r in results]):.1%}, "
        f"driver {common.spread([r.driver_seconds for r in results]):.1%}"
    )
    cost = common.median([r.driver_cost for r in results])
    server_ratio = common.median([r.driver_server_seconds for r in results]) / common.median(
        [r.bare_server_seconds for r in results]
    )
    total_cost = common.median([r.driver_seconds - r.driver_server_seconds for r in results])
    click.echo(
        f"driver's own cost beyond a plain psycopg program: median {cost:+.3f}s per run "
        f"= {cost / bare_median:+.1%} of the bare CALL; everything around the procedure including the "
        f"interpreter and psycopg start-up: {total_cost:.3f}s = {total_cost / bare_median:.1%}"
    )
    click.echo(f"procedure's own time with the driver / without: {server_ratio:.3f} (noise of the machine)")
    click.echo(f"driver peak memory (VmHWM): {peak:.1f} MB (target <= {MAX_PEAK_MB:.0f} MB)")
    if json_out:
        json_out.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "batch_size": batch_size,
                    "rounds": [asdict(r) for r in results],
                    "ratio_of_medians": ratio,
                    "median_of_ratios": ratio_median,
                    "peak_mb": peak,
                    "driver_cost_seconds": cost,
                    "procedure_time_ratio": server_ratio,
                },
                indent=2,
            )  # fmt: skip
        )
    sys.exit(0 if ratio <= MAX_RATIO and peak <= MAX_PEAK_MB else 1)


if __name__ == "__main__":
    main()
