"""The rotation engine, CALLed as a DBA would in psql: token_rotation.rotate() on real tables."""

from __future__ import annotations

import time

import psycopg
import pytest

from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot


@pytest.mark.parametrize("key_type", ["integer", "bigint", "uuid", "text"])
def test_every_row_gets_a_new_token_once_for_each_key_type(conn: psycopg.Connection, key_type: str) -> None:
    """Keys of type int, bigint, uuid and text are walked in order, each row rotated exactly once."""
    make_table(conn, rows=2500, key_type=key_type)
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 300, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_batches_never_exceed_the_batch_size(conn: psycopg.Connection) -> None:
    """Each committed batch touches at most p_batch_size rows, and all but the last exactly that many."""
    make_table(conn, rows=1000, key_type="integer")
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 70, p_quiet => true)")
    rows = [r[0] for r in conn.execute("SELECT rows FROM token_rotation.batches ORDER BY batch_no")]
    assert len(rows) == 15
    assert rows[:-1] == [70] * 14 and rows[-1] == 1000 - 14 * 70


def test_keys_with_large_holes_are_covered(conn: psycopg.Connection) -> None:
    """Keys spread over a huge range with holes (and negative keys) are all rotated exactly once."""
    make_table(
        conn,
        rows=3000,
        key_type="bigint",
        key_expr="CASE WHEN mod(g, 3) = 0 THEN -g::bigint * 1000000007 ELSE g::bigint * g * g * 99991 END",
    )
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 250, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_empty_table_finishes_at_once(conn: psycopg.Connection) -> None:
    """A table with no rows gives a run that is finished immediately, with no batch."""
    make_table(conn, rows=0)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    state, batches = conn.execute(
        "SELECT state, (SELECT count(*) FROM token_rotation.batches) FROM token_rotation.runs"
    ).fetchone()  # type: ignore[misc]
    assert (state, batches) == ("finished", 0)


def test_max_batches_stops_early_and_the_next_call_resumes(conn: psycopg.Connection) -> None:
    """p_max_batches ends the CALL with the run open; the next CALL continues from the checkpoint, and
    elapsed time accumulates over both CALLs."""
    make_table(conn, rows=1000)
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_max_batches => 3, p_quiet => true)"
    )
    state, done, elapsed1 = conn.execute(
        "SELECT state, rows_done, extract(epoch FROM elapsed)::float8 FROM token_rotation.runs"
    ).fetchone()  # type: ignore[misc]
    assert (state, done) == ("active", 300)
    conn.execute("SELECT pg_sleep(1)")  # time between CALLs is not working time
    started = time.monotonic()
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    wall = time.monotonic() - started
    runs = conn.execute(
        "SELECT run_id, state, rows_done, extract(epoch FROM elapsed)::float8 FROM token_rotation.runs"
    ).fetchall()
    assert len(runs) == 1 and runs[0][1:3] == ("finished", 1000)
    assert elapsed1 < runs[0][3] <= elapsed1 + wall + 0.01
    assert_rotated_exactly_once(conn, before, runs[0][0])


def test_a_finished_run_is_followed_by_a_new_run_without_reset(conn: psycopg.Connection) -> None:
    """Once a run is finished, the next CALL starts a new run that rotates every row again."""
    make_table(conn, rows=500)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    run_id = last_run_id(conn)
    assert run_id == 2
    assert_rotated_exactly_once(conn, before, run_id)


def test_rows_inserted_after_the_start_are_not_chased(conn: psycopg.Connection) -> None:
    """The key range is fixed when the run starts: rows inserted later (beyond it) keep their token."""
    make_table(conn, rows=1000)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_max_batches => 2, p_quiet => true)"
    )
    conn.execute(
        "INSERT INTO tickets (id, title, status, created_at)"
        " SELECT g * 1000, 'late', 0, now() FROM generate_series(2001, 2100) g"
    )
    conn.execute("CREATE TABLE late AS SELECT id, token FROM tickets WHERE id > 1000000")
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    kept = "SELECT count(*) FROM tickets t JOIN late l USING (id) WHERE t.token = l.token"
    assert conn.execute(kept).fetchone() == (100,)
    assert conn.execute("SELECT rows_done FROM token_rotation.runs").fetchone() == (1000,)


def test_rows_deleted_during_the_run_are_fine(conn: psycopg.Connection) -> None:
    """Rows deleted between batches just are not there; the run finishes and covers the rest once."""
    make_table(conn, rows=1000)
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_max_batches => 2, p_quiet => true)"
    )
    conn.execute("DELETE FROM tickets WHERE id % 3000 = 0")
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn), deleted_ok=True)


def test_a_unique_violation_retries_the_batch(conn: psycopg.Connection) -> None:
    """A new token that collides with an existing one (forced here by a trigger, once) makes the batch draw
    again instead of failing the run. The trigger names tables unqualified: the caller's search_path holds."""
    make_table(conn, rows=300)
    conn.execute("CREATE SEQUENCE collide")  # a sequence: its nextval survives the failed attempt's rollback
    conn.execute("""
        CREATE FUNCTION force_collision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = 5000 AND nextval('collide') = 1 THEN  -- first attempt only
                NEW.token := (SELECT token FROM tickets WHERE id = 300000);  -- a row of the last batch
            END IF;
            RETURN NEW;
        END $$""")
    conn.execute(
        "CREATE TRIGGER force_collision BEFORE UPDATE ON tickets"
        " FOR EACH ROW EXECUTE FUNCTION force_collision()"
    )
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
    assert conn.execute("SELECT sum(retries) FROM token_rotation.batches").fetchone() == (1,)


def test_progress_view_reports_a_finished_run(conn: psycopg.Connection) -> None:
    """token_rotation.progress shows rows done of total, 100 percent, a rate, and no ETA once finished."""
    make_table(conn, rows=600)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    row = conn.execute(
        "SELECT state, rows_done, rows_total, percent, rows_per_second > 0, eta, batches_done"
        " FROM token_rotation.progress"
    ).fetchone()
    assert row == ("finished", 600, 600, 100, True, None, 6)


def test_notices_show_progress_unless_quiet(conn: psycopg.Connection) -> None:
    """A DBA in psql sees one NOTICE per batch with rows, percent and rate; p_quiet silences them."""
    make_table(conn, rows=300)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100)")
    batch_lines = [n for n in notices if " batch " in n]
    assert len(batch_lines) == 3
    assert "100 rows, 33.3% done" in batch_lines[0] and "rows/s" in batch_lines[0]
    notices.clear()
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    assert notices == []


def test_verify_reports_duplicate_tokens_when_no_unique_index_guards_them(conn: psycopg.Connection) -> None:
    """verify() counts duplicates itself when no unique index enforces them, and fails on one."""
    make_table(conn, rows=300, unique_token=False)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    run_id = last_run_id(conn)
    check = "SELECT ok, detail FROM token_rotation.verify(%s) WHERE check_name = 'tokens are unique'"
    assert conn.execute(check, (run_id,)).fetchone() == (True, "0 duplicate(s)")
    conn.execute("UPDATE tickets SET token = (SELECT token FROM tickets WHERE id = 1000) WHERE id = 2000")
    assert conn.execute(check, (run_id,)).fetchone() == (False, "1 duplicate(s)")


def test_verify_trusts_a_unique_index_on_the_token(conn: psycopg.Connection) -> None:
    """With a valid unique index on the token column, verify() names it instead of reading every token."""
    make_table(conn, rows=300)
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    row = conn.execute(
        "SELECT ok, detail FROM token_rotation.verify(%s) WHERE check_name = 'tokens are unique'",
        (last_run_id(conn),),
    ).fetchone()
    assert row == (True, "enforced by unique index public.tickets_token_key")


def test_inheritance_children_are_not_rotated_with_their_parent(conn: psycopg.Connection) -> None:
    """Rows of a table that inherits from the target are left alone: every statement says ONLY, so a run
    covers its own table, and the child is rotated by a run of its own."""
    make_table(conn, rows=500)
    conn.execute("CREATE TABLE tickets_archive () INHERITS (tickets)")
    conn.execute(
        "INSERT INTO tickets_archive (id, title, status, created_at)"
        " SELECT g * 1000 + 1, 'archived', 0, now() FROM generate_series(1, 200) g"
    )
    conn.execute("CREATE TABLE archive_before AS SELECT id, token FROM ONLY tickets_archive")
    before = snapshot(conn, "ONLY tickets")
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 70, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn), "ONLY tickets")
    kept = "SELECT count(*) FROM tickets_archive a JOIN archive_before b USING (id) WHERE a.token = b.token"
    assert conn.execute(kept).fetchone() == (200,)


def test_a_run_that_rotated_fewer_rows_than_counted_warns(conn: psycopg.Connection) -> None:
    """A BEFORE UPDATE trigger that returns NULL silently keeps rows' old tokens; the finished run says so
    with a WARNING (even with p_quiet), naming how many rows fell short."""
    make_table(conn, rows=400)
    conn.execute(
        "CREATE FUNCTION skip_some() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF OLD.status = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER skip_some BEFORE UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION skip_some()"
    )
    warnings: list[tuple[str | None, str]] = []
    conn.add_notice_handler(lambda d: warnings.append((d.severity_nonlocalized, d.message_primary or "")))
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    skipped = conn.execute("SELECT count(*) FROM tickets WHERE status = 0").fetchone()
    assert skipped is not None and skipped[0] > 0
    assert warnings == [
        (
            "WARNING",
            f"run 1 of public.tickets finished with {skipped[0]} row(s) fewer than the 400 counted"
            " at its start",
        )
    ]
