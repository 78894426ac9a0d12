"""The durability default: batches commit with synchronous_commit off, and a server crash in the middle of a
parallel run still ends, after restart and resume, with every row rotated exactly once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from background import BackgroundCall, hold_rows, wait_until, waiting_for_locks
from helpers import (
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
)
from servers import BINARIES, bindir_of, dedicated_server, start, stop

ROWS = 8000


@pytest.mark.parametrize(
    ("argument", "seen"),
    [("", "off"), (", p_synchronous_commit => false", "off"), (", p_synchronous_commit => true", "on")],
    ids=["default", "false", "true"],
)
def test_batches_commit_with_synchronous_commit_off_unless_asked(
    conn: psycopg.Connection, argument: str, seen: str
) -> None:
    """A BEFORE UPDATE trigger records synchronous_commit in every batch's transaction: off by default and
    with p_synchronous_commit => false, on with true; the caller's session setting is left as it was."""
    make_table(conn, rows=300)
    conn.execute("CREATE TABLE seen_settings (batch serial, synchronous_commit text)")
    conn.execute("""
        CREATE FUNCTION record_synchronous_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO seen_settings (synchronous_commit) VALUES (current_setting('synchronous_commit'));
            RETURN NULL;
        END $$""")
    conn.execute(
        "CREATE TRIGGER record_synchronous_commit BEFORE UPDATE ON tickets"
        " FOR EACH STATEMENT EXECUTE FUNCTION record_synchronous_commit()"
    )
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    conn.execute(f"CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true{argument})")
    rows = conn.execute("SELECT synchronous_commit FROM seen_settings ORDER BY batch").fetchall()
    assert rows == [(seen,)] * 3
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


@pytest.mark.slow
@pytest.mark.own_server
@pytest.mark.parametrize("version", BINARIES)
def test_crash_of_the_server_during_a_parallel_run_with_the_default_durability(
    tmp_path: Path, version: str
) -> None:
    """Two workers with the default (synchronous_commit off), each waiting in the middle of its slice for a
    row the application holds, are cut by an immediate shutdown of a dedicated server (wal_writer_delay 10 s,
    so the last commits may be lost). Right after the restart the rows done are at most those committed
    before the crash, and the checkpoints match the data exactly (a batch lost only with its checkpoint, no
    row rotated without its log row); resumed, each row is rotated once. On PostgreSQL 18 and 15."""
    bindir = bindir_of(version)
    with dedicated_server(tmp_path, bindir) as made:
        url = made.dsn
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            c.execute("SELECT pg_reload_conf()")
            make_table(c, rows=ROWS)
            c.execute("CHECKPOINT")
            before = snapshot(c)
        holder = hold_rows(url, 61, 141)  # rows 3025 and 7025: the middle of each slice of 4,000
        call = (
            "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_workers => 2, p_sleep => '5ms',"
            " p_lock_timeout => '60s', p_quiet => true)"
        )
        workers = [BackgroundCall(url, call, f"tr-crash-{i}").start() for i in (1, 2)]
        with psycopg.connect(url, autocommit=True) as c:
            wait_until(
                lambda: sum(waiting_for_locks(c, w.application_name) for w in workers) == 2,
                what="both workers waiting in the middle of their slices",
            )
            committed = assert_mid_run(c, ROWS)
            assert committed == 3000 + 3000  # every batch before each held row
            stop(bindir, made.pgdata)  # -m immediate: a crash, recovered at the next start
        for worker in workers:
            worker.join()
            assert isinstance(worker.error, psycopg.OperationalError)
        holder.close()
        start(bindir, made.pgdata)
        with psycopg.connect(url, autocommit=True) as c:
            assert c.execute("SELECT state FROM token_rotation.runs").fetchone() == ("active",)
            durable = assert_checkpoints_match_the_data(c, before)
            assert durable <= committed  # async commits may lose the last batches, with their checkpoints
            resumed = [
                BackgroundCall(url, call.replace("'5ms'", "'0'"), f"tr-resume-{i}").start() for i in (1, 2)
            ]
            for worker in resumed:
                worker.join()
                assert worker.error is None
            assert_rotated_exactly_once(c, before, last_run_id(c))
