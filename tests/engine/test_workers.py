"""Parallel workers: one CALL per session on disjoint key slices of one run, exactly once, resumable."""

from __future__ import annotations

import threading

import psycopg
import pytest

from background import BackgroundCall, wait_until, waiting_for_locks
from helpers import (
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
)


def run_workers(dsn: str, calls: list[str]) -> list[BaseException | None]:
    """Runs each CALL on its own connection in its own thread, all at once; returns each one's error."""
    errors: list[BaseException | None] = [None] * len(calls)

    def work(i: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=f"worker-{i}") as c:
                c.execute(calls[i])
        except BaseException as exc:  # reported to the test
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), f"{t.name} still running after 60s"
    return errors


def record_sessions(conn: psycopg.Connection) -> None:
    """A row trigger that logs which backend updated each key of tickets."""
    conn.execute("CREATE TABLE updated_by (id bigint, pid integer)")
    conn.execute("""
        CREATE FUNCTION record_session() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO updated_by VALUES (NEW.id, pg_backend_pid());
            RETURN NEW;
        END $$""")
    conn.execute(
        "CREATE TRIGGER record_session BEFORE UPDATE ON tickets"
        " FOR EACH ROW EXECUTE FUNCTION record_session()"
    )


def sessions_per_slice(conn: psycopg.Connection, run_id: int) -> list[list[int]]:
    """For each slice of the run (in order), the distinct backends that updated its keys."""
    rows = conn.execute(
        "SELECT s.slice_no, array_agg(DISTINCT u.pid ORDER BY u.pid) FROM token_rotation.slices s"
        " JOIN updated_by u ON (s.lo IS NULL OR u.id > s.lo[1]::bigint) AND u.id <= s.hi[1]::bigint"
        " WHERE s.run_id = %s GROUP BY s.slice_no ORDER BY s.slice_no",
        (run_id,),
    ).fetchall()
    return [list(r[1]) for r in rows]


@pytest.mark.parametrize("workers", [2, 3])
def test_concurrent_workers_rotate_every_row_exactly_once(
    dsn: str, conn: psycopg.Connection, workers: int
) -> None:
    """N sessions CALLing with p_workers => N each take one slice (the keys of each slice are updated by one
    session, a different one for each slice); together they rotate each row once."""
    make_table(conn, rows=6000)
    before = snapshot(conn)
    record_sessions(conn)
    call = (
        f"CALL token_rotation.rotate('tickets', p_batch_size => 250, p_workers => {workers}, p_quiet => true)"
    )
    assert run_workers(dsn, [call] * workers) == [None] * workers
    run_id = last_run_id(conn)
    per_slice = sessions_per_slice(conn, run_id)
    assert [len(pids) for pids in per_slice] == [1] * workers, "a slice worked by more than one session"
    assert len({pids[0] for pids in per_slice}) == workers, "a session worked more than one slice"
    assert_rotated_exactly_once(conn, before, run_id)
    slices = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE batches_done > 0) FROM token_rotation.slices"
        " WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    assert slices == (workers, workers)


def test_worker_slices_are_disjoint_and_each_worked_by_its_own_session(
    dsn: str, conn: psycopg.Connection
) -> None:
    """Every batch lies inside its slice's (lo, hi] range, the slices' ranges do not overlap, each slice's
    keys are updated by one session and the two slices by two; every row is rotated once."""
    make_table(conn, rows=4000)
    before = snapshot(conn)
    record_sessions(conn)
    call = "CALL token_rotation.rotate('tickets', p_batch_size => 300, p_workers => 2, p_quiet => true)"
    assert run_workers(dsn, [call, call]) == [None, None]
    per_slice = sessions_per_slice(conn, last_run_id(conn))
    assert len(per_slice) == 2 and len(per_slice[0]) == len(per_slice[1]) == 1
    assert per_slice[0] != per_slice[1]
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    outside = conn.execute(
        "SELECT count(*) FROM token_rotation.batches b JOIN token_rotation.slices s USING (slice_id)"
        " WHERE b.last_key[1]::bigint > s.hi[1]::bigint"
        " OR (s.lo IS NOT NULL AND b.last_key[1]::bigint <= s.lo[1]::bigint)"
    ).fetchone()
    assert outside == (0,)
    ranges = conn.execute("SELECT lo, hi FROM token_rotation.slices ORDER BY slice_no").fetchall()
    assert ranges[0][0] is None and ranges[1][0] == ranges[0][1]


def test_a_single_session_works_through_all_slices_one_call_each(conn: psycopg.Connection) -> None:
    """Planned for 3 workers but run by one session: each CALL finishes one slice, the third ends the run."""
    make_table(conn, rows=3000)
    before = snapshot(conn)
    states = []
    for _ in range(3):
        conn.execute(
            "CALL token_rotation.rotate('tickets', p_batch_size => 400, p_workers => 3, p_quiet => true)"
        )
        states.append(conn.execute("SELECT state FROM token_rotation.runs").fetchone())
    assert states == [("active",), ("active",), ("finished",)]
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_workers_stopped_by_max_batches_are_resumed_slice_by_slice(
    dsn: str, conn: psycopg.Connection
) -> None:
    """Both workers stop after a few batches; new CALLs continue each unfinished slice from its checkpoint.
    The application holds a row of each slice's third batch until both workers wait on it, so that both
    work at once (else the second CALL, started after the first ended, would take the first slice on)."""
    make_table(conn, rows=5000)
    before = snapshot(conn)
    first = (
        "CALL token_rotation.rotate('tickets', p_batch_size => 200, p_workers => 2, p_max_batches => 3,"
        " p_lock_timeout => '60s', p_quiet => true)"
    )
    holder = psycopg.connect(dsn, application_name="tr-app")
    # rows 500 and 3000 (keys g * 1000): in the third batch of 200 of each 2500-row slice
    holder.execute("SELECT 1 FROM tickets WHERE id = ANY(%s) FOR UPDATE", ([500_000, 3_000_000],))
    calls = [BackgroundCall(dsn, first, "tr-worker").start() for _ in range(2)]
    wait_until(lambda: waiting_for_locks(conn, "tr-worker") == 2, what="both workers in their third batch")
    holder.rollback()
    holder.close()
    assert [c.join().error for c in calls] == [None, None]
    done = conn.execute(
        "SELECT array_agg(batches_done ORDER BY slice_no) FROM token_rotation.slices"
    ).fetchone()
    assert done == ([3, 3],)
    again = "CALL token_rotation.rotate('tickets', p_batch_size => 200, p_quiet => true)"
    assert run_workers(dsn, [again, again]) == [None, None]
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_a_cancelled_worker_leaves_its_slice_for_the_next_call(dsn: str, conn: psycopg.Connection) -> None:
    """pg_cancel_backend on one worker stops only that worker; the other finishes its slice, the run stays
    open, and the next CALL resumes the cancelled slice from its checkpoint: every row exactly once."""
    make_table(conn, rows=4000)
    before = snapshot(conn)
    slow = (
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_workers => 2, p_sleep => '20ms',"
        " p_quiet => true)"
    )
    errors: list[BaseException | None] = []
    runner = threading.Thread(target=lambda: errors.extend(run_workers(dsn, [slow, slow])))
    runner.start()
    wait_until(
        lambda: (
            conn.execute(
                "SELECT count(*) FROM token_rotation.slices"
                " WHERE backend_pid IS NOT NULL AND batches_done >= 2"
            ).fetchone()
            == (2,)
        ),
        what="both workers past their second batch",
    )
    assert_mid_run(conn, 4000)
    conn.execute(
        "SELECT pg_cancel_backend(backend_pid) FROM token_rotation.slices WHERE slice_no = 2"
        " AND backend_pid IS NOT NULL"
    )
    runner.join(60)
    assert not runner.is_alive()
    assert sorted(type(e).__name__ for e in errors) == ["NoneType", "QueryCanceled"]
    row = conn.execute(
        "SELECT r.state, array_agg(s.done ORDER BY s.slice_no) FROM token_rotation.runs r"
        " JOIN token_rotation.slices s USING (run_id) GROUP BY r.state"
    ).fetchone()
    assert row == ("active", [True, False])
    assert 2000 < assert_checkpoints_match_the_data(conn, before) < 4000
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_more_sessions_than_slices_are_refused_with_the_holders_named(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A third session on a two-slice run finds every slice taken and fails at once, naming the holders."""
    make_table(conn, rows=4000)
    slow = (
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_workers => 2, p_sleep => '20ms',"
        " p_quiet => true)"
    )
    errors: list[BaseException | None] = []
    runner = threading.Thread(target=lambda: errors.extend(run_workers(dsn, [slow, slow])))
    runner.start()
    try:
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM token_rotation.slices WHERE backend_pid IS NOT NULL"
                ).fetchone()
                == (2,)
            ),
            what="both slices taken",
        )
        with pytest.raises(psycopg.errors.ObjectInUse) as refused:
            conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
        assert "worker-" in (refused.value.diag.message_detail or "")
    finally:
        conn.execute("SELECT token_rotation.cancel('tickets')")
        runner.join(60)
    assert not runner.is_alive()
    assert errors == [None, None]
