"""Least privilege: the GRANT recipe in sql/examples/grants.sql is enough to rotate; less is refused before
anything changes; the rotation runs with the caller's rights (the bookkeeping functions that run as the tool's
owner: tests/security/test_catalog.py); row-level security that would hide rows from the rotation is refused
rather than silently skipped."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot, table_checksum
from roles import grant_recipe, temporary_role


def runs(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone()
    return int(row[0]) if row else 0


def test_a_role_with_the_documented_grants_rotates_reads_progress_and_verifies(
    conn: psycopg.Connection,
) -> None:
    """A plain role (no superuser, not the owner) with only the grants of sql/examples/grants.sql rotates the
    table exactly once, reads the progress view, verifies the run, and pauses and cancels runs."""
    make_table(conn, rows=1000)
    before = snapshot(conn)
    with temporary_role(conn, "tr_least") as role:
        grant_recipe(conn, role)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
        assert conn.execute("SELECT state, percent FROM token_rotation.progress").fetchone() == (
            "finished",
            100,
        )
        run_id = last_run_id(conn)
        assert all(ok for _, ok, _ in conn.execute("SELECT * FROM token_rotation.verify(%s)", (run_id,)))
        conn.execute(
            "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_max_batches => 1, p_quiet => true)"
        )
        conn.execute("SELECT token_rotation.pause('tickets')")
        conn.execute("SELECT token_rotation.cancel('tickets')")
        conn.execute("RESET ROLE")
    assert_rotated_exactly_once(conn, before, run_id)


def test_column_grants_on_the_key_and_the_token_are_enough_to_rotate(conn: psycopg.Connection) -> None:
    """SELECT on the key column and UPDATE on the token column (no table-wide grant) suffice."""
    make_table(conn, rows=500)
    before = snapshot(conn)
    with temporary_role(conn, "tr_columns") as role:
        grant_recipe(conn, role, skip="public.tickets")
        r = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT SELECT (id), UPDATE (token) ON tickets TO {}").format(r))
        conn.execute(sql.SQL("SET ROLE {}").format(r))
        conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
        conn.execute("RESET ROLE")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


@pytest.mark.parametrize(
    "table_grant",
    ["SELECT", "UPDATE", "SELECT (title), UPDATE (token)"],
    ids=["no-update", "no-select", "no-key"],
)
def test_a_role_that_may_not_update_the_table_is_refused_before_anything_changes(
    conn: psycopg.Connection, table_grant: str
) -> None:
    """Without UPDATE on the token (or SELECT on the key) the CALL fails with 42501 naming the table and the
    GRANT to run; no token changes and no run is recorded. A SECURITY DEFINER procedure would have rotated."""
    make_table(conn, rows=300)
    checksum, before_runs = table_checksum(conn), runs(conn)
    with temporary_role(conn, "tr_noupdate") as role:
        grant_recipe(conn, role, skip="public.tickets")
        r = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT {} ON tickets TO {}").format(sql.SQL(table_grant), r))
        conn.execute(sql.SQL("SET ROLE {}").format(r))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
        conn.execute("RESET ROLE")
    assert "public.tickets" in refused.value.diag.message_primary  # type: ignore[operator]
    assert "GRANT SELECT, UPDATE ON public.tickets" in (refused.value.diag.message_hint or "")
    assert table_checksum(conn) == checksum
    assert runs(conn) == before_runs


def test_row_level_security_that_hides_rows_is_refused_instead_of_skipping_them(
    conn: psycopg.Connection,
) -> None:
    """If row-level security applies to the caller, rows its policies hide would silently keep their token
    while the run reports them done: the CALL is refused (42501) with a hint, and nothing changes. The table's
    owner (here a superuser, to whom the policies do not apply) rotates every row."""
    make_table(conn, rows=300)
    conn.execute("ALTER TABLE tickets ENABLE ROW LEVEL SECURITY")
    conn.execute("CREATE POLICY open_tickets ON tickets USING (status <> 3)")
    checksum, before_runs = table_checksum(conn), runs(conn)
    with temporary_role(conn, "tr_rls") as role:
        grant_recipe(conn, role)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
        conn.execute("RESET ROLE")
    assert "row-level security" in str(refused.value)
    assert "BYPASSRLS" in (refused.value.diag.message_hint or "")
    assert table_checksum(conn) == checksum
    assert runs(conn) == before_runs
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
