"""The catalog as the security model says it must be (issue 17, findings 4 and 5): every routine of the tool
pins its search_path, only the bookkeeping functions run as the tool's owner, and rotating roles cannot write
the tool's tables. A routine added later without its SET clause fails here."""

from __future__ import annotations

import psycopg

from token_rotation import migrate

# Routines that cannot carry `SET search_path`: the procedures that COMMIT (rotate, and rotate_citus for a
# Citus distributed table), and the function whose job is to set the path for their transactions (a SET clause
# would undo it on return). They name every object with its schema until the path is pinned.
WITHOUT_SET_CLAUSE = {
    "token_rotation.rotate",
    "token_rotation_internal.rotate_citus",
    "token_rotation_internal.pin_settings",
}

# The functions that write the tool's tables, as its owner, after authorize() / authorize_run().
SECURITY_DEFINER = {
    "token_rotation_internal.claim_slice",
    "token_rotation_internal.keep_options",
    "token_rotation_internal.record_batch",
    "token_rotation_internal.mark_waiting",
    "token_rotation_internal.mark_lock_retry",
    "token_rotation_internal.end_call",
    "token_rotation_internal.set_run_state",
    "token_rotation.hold",
    "token_rotation.set_options",
    "token_rotation_internal.citus_open_run",
    "token_rotation_internal.citus_record",
    "token_rotation_internal.citus_adopt",
    "token_rotation_internal.citus_retire",
}


def routines(conn: psycopg.Connection) -> list[tuple[str, str, bool, list[str]]]:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, p.pronamespace::regnamespace::text || '.' || p.proname,"
        " p.prosecdef,"
        " coalesce(p.proconfig, '{}') FROM pg_proc p"
        f" WHERE p.pronamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
    ).fetchall()
    return [(r[0], r[1], r[2], list(r[3])) for r in rows]


def test_every_routine_but_rotate_and_pin_settings_pins_its_search_path(conn: psycopg.Connection) -> None:
    """Each function of the schema carries SET search_path = pg_catalog, pg_temp (CVE-2018-1058: a look-alike
    in a writable schema wins over a pg_catalog candidate that needs a cast, even with pg_catalog first)."""
    found = routines(conn)
    assert len(found) >= 40
    unpinned = [
        signature
        for signature, name, _, config in found
        if name not in WITHOUT_SET_CLAUSE and "search_path=pg_catalog, pg_temp" not in config
    ]
    assert unpinned == []


def test_only_the_bookkeeping_functions_run_as_the_tools_owner(conn: psycopg.Connection) -> None:
    """SECURITY DEFINER is on exactly the functions that write the tool's tables; no routine sets a role."""
    found = routines(conn)
    assert {name for _, name, definer, _ in found if definer} == SECURITY_DEFINER
    assert [
        signature for signature, _, _, config in found if any(c.startswith("role=") for c in config)
    ] == []


def test_no_role_but_the_owner_may_write_the_tools_tables(conn: psycopg.Connection) -> None:
    """No grant on a table or sequence of the schema other than SELECT, and none at all to PUBLIC."""
    grants = conn.execute(
        "SELECT c.relname, a.grantee::regrole::text, a.privilege_type"
        " FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a"
        f" WHERE c.relnamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
        " AND a.grantee <> c.relowner"
        " AND (a.privilege_type <> 'SELECT' OR a.grantee = 0)"
    ).fetchall()
    assert grants == []
