"""Bounded growth: `rotate` VACUUMs the table from a side session as the run goes, so the table does not
double; when an old transaction holds the xmin horizon, the bar, the NOTICE-like note and `status` name it."""

from __future__ import annotations

import psycopg

from token_rotation import reclaim

from helpers import assert_rotated_exactly_once, events, last_run_id, make_table, run, snapshot

SLOW = ("--batch-size", "200", "--sleep", "30ms", "--json", "--progress-interval", "0.2")


def heap_bytes(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_relation_size('tickets')").fetchone()
    assert row is not None
    return int(row[0])


def total_bytes(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_relation_size('tickets') + pg_indexes_size('tickets')").fetchone()
    assert row is not None
    return int(row[0])


def test_reclaim_keeps_the_heap_far_below_double_and_no_reclaim_doubles_it(
    dsn: str, conn: psycopg.Connection
) -> None:
    """With the default --reclaim (every 20% here) the heap ends well under 1.5x its size, and with the
    indexes under 1.6x, though only every second VACUUM cleans the indexes; with --no-reclaim the same
    run leaves both about 2x; both runs are exactly once."""
    conn.execute("ALTER SYSTEM SET autovacuum = off")  # only the driver's VACUUMs count here
    conn.execute("SELECT pg_reload_conf()")
    try:
        grown = {}
        for flag in ("--reclaim", "--no-reclaim"):
            make_table(conn, rows=20_000)
            before_rows, before, before_total = snapshot(conn), heap_bytes(conn), total_bytes(conn)
            result = run(dsn, "rotate", "--table", "tickets", flag, "--reclaim-every", "20", *SLOW)
            assert result.exit_code == 0, result.output
            assert_rotated_exactly_once(conn, before_rows, last_run_id(conn))
            finished = next(e for e in events(result) if e["event"] == "finished")
            grown[flag] = (
                heap_bytes(conn) / before,
                finished.get("reclaim"),
                total_bytes(conn) / before_total,
            )
    finally:
        conn.execute("ALTER SYSTEM RESET autovacuum")
        conn.execute("SELECT pg_reload_conf()")
    ratio, reclaimed, total = grown["--reclaim"]
    assert reclaimed is not None and reclaimed["vacuums"] >= 2, grown
    assert reclaimed["index_vacuums"] == reclaimed["vacuums"] // reclaim.INDEX_EVERY, grown
    assert ratio <= 1.5 and total <= 1.6, grown
    assert grown["--no-reclaim"][2] >= 1.8, grown
    assert grown["--no-reclaim"][0] >= 1.8 and grown["--no-reclaim"][1] is None, grown


def test_an_old_snapshot_is_named_as_what_keeps_vacuum_from_reclaiming(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A REPEATABLE READ transaction opened before the run holds the xmin horizon: the note after a VACUUM
    and the progress lines name its backend, and `status` does too while the run is open."""
    make_table(conn, rows=20_000)
    with psycopg.connect(dsn, application_name="old-report") as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM tickets").fetchone()
        pid = holder.info.backend_pid
        result = run(dsn, "rotate", "--table", "tickets", "--reclaim-every", "20", *SLOW)
        assert result.exit_code == 0, result.output
        notes = [e for e in events(result) if e["event"] == "note" and e.get("xmin_holders")]
        assert notes and f"backend {pid} (old-report" in notes[0]["xmin_holders"], result.output
        assert "could not reclaim" in notes[0]["message"]
        progress = [e for e in events(result) if e["event"] == "progress" and e.get("xmin_holders")]
        assert progress and f"backend {pid}" in progress[-1]["xmin_holders"]

        make_table(conn, "others", rows=2_000)  # not tickets: the holder's lock on it would block the DROP
        stopped = run(dsn, "rotate", "--table", "others", "--max-batches", "1", "--batch-size", "100")
        assert stopped.exit_code == 0, stopped.output
        status = run(dsn, "status", "--table", "others")
        assert f"the xmin horizon is held by: backend {pid} (old-report" in status.stdout, status.output
    status = run(dsn, "status", "--table", "others")
    assert "xmin horizon" not in status.stdout, status.output


def test_without_batch_size_batches_adapt_to_about_10ms_and_a_given_size_is_fixed(
    dsn: str, conn: psycopg.Connection
) -> None:
    """No --batch-size: the run starts at 1000 rows and adapts towards 10 ms a batch (its batch sizes vary);
    --batch-size 3000 means every batch has 3000 rows."""
    make_table(conn, rows=30_000)
    result = run(dsn, "rotate", "--table", "tickets", "--json", "--no-reclaim")
    assert result.exit_code == 0, result.output
    started = next(e for e in events(result) if e["event"] == "started")
    assert started["target_batch_time"] == 0.01 and started["batch_size"] == 1000
    assert "batches adapted to about 10ms each" in started["message"]
    sizes = conn.execute(
        "SELECT array_agg(DISTINCT batch_size) FROM token_rotation.batches WHERE run_id = %s",
        (last_run_id(conn),),
    ).fetchone()
    assert sizes is not None and len(sizes[0]) > 1 and 1000 in sizes[0], sizes
    fixed = run(dsn, "rotate", "--table", "tickets", "--batch-size", "3000", "--no-reclaim", "--json")
    assert fixed.exit_code == 0, fixed.output
    row = conn.execute(
        "SELECT array_agg(DISTINCT batch_size) FROM token_rotation.batches WHERE run_id = %s",
        (last_run_id(conn),),
    ).fetchone()
    assert row == ([3000],)


def test_every_second_reclaim_vacuum_cleans_the_indexes() -> None:
    """The schedule of the reclaim's VACUUMs: heap only, then heap and indexes, in turn."""
    assert [reclaim.Reclaimer.index_cleanup(n) for n in range(1, 7)] == [False, True] * 3


def test_a_reclaim_vacuum_never_truncates_the_table(dsn: str, conn: psycopg.Connection) -> None:
    """Giving the empty pages at the end of a table back needs an ACCESS EXCLUSIVE lock, which would stop
    every query of the application on it: the reclaim's VACUUM leaves them (a plain VACUUM then truncates)."""
    make_table(conn, rows=20_000)
    conn.execute("ALTER TABLE tickets SET (autovacuum_enabled = false)")
    conn.execute("DELETE FROM tickets WHERE id > 5000")  # the last three quarters of the heap are empty
    before = heap_bytes(conn)
    vacuums = reclaim.Reclaimer(dsn, "token-rotation-test", "public.tickets", 0.5)
    vacuums.poll(0, 100)
    vacuums.poll(60, 100)  # past the first half: one VACUUM starts
    vacuums.join()
    assert not vacuums.errors and len(vacuums.done) == 1, vacuums.errors
    assert heap_bytes(conn) == before
    conn.execute("VACUUM tickets")
    assert heap_bytes(conn) < before / 2
