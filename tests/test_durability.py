"""The durability default: batches commit with synchronous_commit off, and a server crash in the middle of a
parallel run still ends, after restart and resume, with every row rotated exactly once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from token_rotation import migrate, server

from background import BackgroundCall, batches_done, wait_until
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot


def test_synchronous_commit_is_off_by_default_only_for_the_batches(conn: psycopg.Connection) -> None:
    """rotate()'s default is p_synchronous_commit => false; the caller's session setting is left as it was."""
    row = conn.execute(
        "SELECT pg_get_function_arguments('token_rotation.rotate'::regproc) LIKE"
        " '%p_synchronous_commit boolean DEFAULT false%'"
    ).fetchone()
    assert row == (True,)
    make_table(conn, rows=300)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


@pytest.mark.slow
def test_crash_of_the_server_during_a_parallel_run_with_the_default_durability(tmp_path: Path) -> None:
    """Two workers with the default (synchronous_commit off) are cut by an immediate shutdown of a dedicated
    server; after restart every slice resumes from its durable checkpoint and each row is rotated once."""
    pgdata = tmp_path / "pgdata"
    url = server.start(pgdata)
    try:
        migrate.upgrade(url)
        with psycopg.connect(url, autocommit=True) as c:
            make_table(c, rows=8000)
            before = snapshot(c)
        call = (
            "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_workers => 2, p_sleep => '5ms',"
            " p_quiet => true)"
        )
        workers = [BackgroundCall(url, call, f"tr-crash-{i}").start() for i in (1, 2)]
        with psycopg.connect(url, autocommit=True) as c:
            wait_until(lambda: batches_done(c) >= 30, what="batches committed")
            server.stop(pgdata, mode="immediate")
        for worker in workers:
            worker.join()
            assert isinstance(worker.error, psycopg.OperationalError)
        url = server.start(pgdata)
        with psycopg.connect(url, autocommit=True) as c:
            durable = batches_done(c)
            assert durable > 0  # async commits may lose the last few batches, with their checkpoints
            assert c.execute("SELECT state FROM token_rotation.runs").fetchone() == ("active",)
            resumed = [
                BackgroundCall(url, call.replace("'5ms'", "'0'"), f"tr-resume-{i}").start() for i in (1, 2)
            ]
            for worker in resumed:
                worker.join()
                assert worker.error is None
            assert_rotated_exactly_once(c, before, last_run_id(c))
    finally:
        server.stop(pgdata, mode="immediate")
