"""How far the ETA is from the real finish on real runs: the progress view's ETA read while a CALL works.

    python -m benchmarks.eta --rows 120000 --rounds 5      (or: make bench-eta)

Each round rotates a fresh copy of a --rows-row table with one CALL (batches of --batch-size rows, each
followed by --sleep, so that the pace is the server's and not only this shared machine's), polls
`token_rotation.progress` every 50 ms from another session, and once the run has finished compares every
reading from 10% of the rows on with the truth: elapsed + eta against the working time the run took
(runs.elapsed). A round's error is its worst reading's predicted finish / real finish - 1. It prints each
round's worst error and the median and spread of the |worst| over rounds; goal: median at most 10%.

The tests check the ETA's arithmetic on logs with known times (tests/engine/test_eta.py); how close it
comes on a real machine depends on how steady that machine is, so it is measured here and not asserted by a
timed test.
"""

from __future__ import annotations

import statistics
import sys
import threading

import click

from benchmarks import common

TABLE = "bench_eta_tickets"
GOAL = 0.10


def one_round(dsn: str, rows: int, batch_size: int, sleep_ms: int) -> tuple[float, float, int]:
    """Rotates a fresh table once while polling the progress view; returns (worst relative error of the
    predicted finish from 10% on, the run's working seconds, the number of readings judged)."""
    common.make_scratch_table(dsn, rows, TABLE)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with common.connect(dsn) as c:
                c.execute(
                    "CALL token_rotation.rotate(%s::regclass, p_batch_size => %s,"
                    " p_sleep => make_interval(secs => %s), p_quiet => true)",
                    (TABLE, batch_size, sleep_ms / 1000),
                )
        except BaseException as exc:  # noqa: BLE001 - raised below
            errors.append(exc)

    readings: list[tuple[float, float]] = []
    with common.connect(dsn) as conn:
        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        while thread.is_alive():
            row = conn.execute(
                "SELECT extract(epoch FROM elapsed)::float8, extract(epoch FROM eta)::float8, rows_done,"
                " rows_total FROM token_rotation.progress WHERE table_name = to_regclass(%s)"
                " AND state = 'active'",
                (TABLE,),
            ).fetchone()
            if row is not None and row[1] is not None and row[2] >= 0.1 * row[3]:
                readings.append((row[0], row[1]))
            thread.join(0.05)
        if errors:
            raise errors[0]
        row = conn.execute(
            "SELECT extract(epoch FROM elapsed)::float8 FROM token_rotation.runs"
            " WHERE target = to_regclass(%s) ORDER BY run_id DESC LIMIT 1",
            (TABLE,),
        ).fetchone()
        assert row is not None
        finish = float(row[0])
        conn.execute("DELETE FROM token_rotation.runs WHERE target = to_regclass(%s)", (TABLE,))
    if not readings:
        raise click.ClickException("no reading from 10% on: make --rows larger or --sleep longer")
    worst = max(((e + eta) / finish - 1 for e, eta in readings), key=abs)
    return worst, finish, len(readings)


@click.command()
@click.option("--dsn", default=None, help="Database (default: DATABASE_URL, else the embedded server).")
@click.option("--rows", default=120_000, show_default=True, help="Rows of the table each round rotates.")
@click.option("--rounds", default=5, show_default=True, help="Real runs to measure.")
@click.option("--batch-size", default=500, show_default=True, help="Rows per batch.")
@click.option("--sleep-ms", default=25, show_default=True, help="Sleep after each batch, in milliseconds.")
def main(dsn: str | None, rows: int, rounds: int, batch_size: int, sleep_ms: int) -> None:
    """The ETA against the real finish over --rounds real runs: each round's worst, their median, spread."""
    dsn = common.resolve_dsn(dsn)
    common.install(dsn)
    worst: list[float] = []
    for n in range(1, rounds + 1):
        error, finish, judged = one_round(dsn, rows, batch_size, sleep_ms)
        worst.append(error)
        click.echo(
            f"round {n}: {finish:.2f} s, {judged} readings from 10% on, worst predicted finish {error:+.1%}"
        )
    sizes = sorted(abs(e) for e in worst)
    median = statistics.median(sizes)
    click.echo(
        f"ETA, worst predicted finish per run: median {median:.1%} (spread {sizes[0]:.1%} to {sizes[-1]:.1%})"
        f" over {rounds} runs; goal <= {GOAL:.0%}: {'met' if median <= GOAL else 'missed'}"
    )
    sys.exit(0 if median <= GOAL else 1)


if __name__ == "__main__":
    main()
