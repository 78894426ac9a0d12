"""Findings 8 and 1 of issue 17, for token formats: no token weaker than 16 random bytes, no pg_catalog
function but the random ones, and a `function:` format, whether given or read from a run's stored options
on a resume, runs only code of a role the caller already trusts: never a function of another role's, never
one in a temporary schema.
"""

from __future__ import annotations

import psycopg
import pytest

from .attacks import escalations, is_superuser, plant_escalation
from helpers import table_checksum

# Planted by the attacker: runs its payload (attacks.py) and returns a token like any other, so that nothing
# else shows it ran.
EVIL = """
CREATE FUNCTION {schema}.evil() RETURNS uuid LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    PERFORM public.escalate('evil');
    RETURN pg_catalog.gen_random_uuid();
END $f$;
"""

ROTATE = "CALL token_rotation.rotate(%s, p_format => %s, p_quiet => true)"


def sessions(conn: psycopg.Connection) -> None:
    """A text-token table and a bytea-token table of 100 rows each."""
    conn.execute("CREATE TABLE sessions (id int PRIMARY KEY, token text NOT NULL UNIQUE)")
    conn.execute("INSERT INTO sessions SELECT g, 'old' || g FROM generate_series(1, 100) g")
    conn.execute("CREATE TABLE secrets (id int PRIMARY KEY, token bytea NOT NULL UNIQUE)")
    conn.execute("INSERT INTO secrets SELECT g, uuid_send(gen_random_uuid()) FROM generate_series(1, 100) g")


@pytest.mark.parametrize(
    ("table", "token_format"),
    [("sessions", "hex:1"), ("sessions", "base64url:8"), ("secrets", "bytes:15"), ("sessions", "hex:15")],
)
def test_a_format_of_fewer_than_16_random_bytes_is_refused(
    conn: psycopg.Connection, table: str, token_format: str
) -> None:
    """hex:1 (8 bits), base64url:8, bytes:15: refused with 22023, a DETAIL that counts the bytes and a HINT
    naming a strong format, by rotate() and plan() alike; nothing changes and no run starts."""
    sessions(conn)
    before = table_checksum(conn, table)
    for statement in (
        ROTATE,
        "SELECT * FROM token_rotation.plan(%s, p_format => %s)",
    ):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(statement, (table, token_format))
        assert refused.value.sqlstate == "22023"
        assert "too weak" in str(refused.value)
        assert "16" in (refused.value.diag.message_detail or "")
        assert ":32" in (refused.value.diag.message_hint or "")
    assert table_checksum(conn, table) == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
    # the floor itself is accepted
    conn.execute("CALL token_rotation.rotate('sessions', p_format => 'hex:16', p_quiet => true)")
    assert conn.execute("SELECT count(*) FROM sessions WHERE token ~ '^[0-9a-f]{32}$'").fetchone() == (100,)


def test_a_pg_catalog_function_other_than_the_random_ones_is_refused(conn: psycopg.Connection) -> None:
    """function:pg_catalog.timeofday (volatile, text, and a clock: whoever knows when the run went can guess
    every token) is refused with 22023 and a HINT naming a strong format; function:pg_catalog.gen_random_uuid
    stays accepted on a uuid column, and on PostgreSQL 18 uuidv4 too while uuidv7 (a timestamp and 74
    random bits) is refused."""
    sessions(conn)
    conn.execute("CREATE TABLE tickets (id int PRIMARY KEY, token uuid NOT NULL UNIQUE)")
    conn.execute("INSERT INTO tickets SELECT g, gen_random_uuid() FROM generate_series(1, 100) g")
    before = table_checksum(conn, "sessions")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(ROTATE, ("sessions", "function:pg_catalog.timeofday"))
    assert refused.value.sqlstate == "22023"
    assert "timeofday" in str(refused.value)
    assert refused.value.diag.message_detail and refused.value.diag.message_hint
    assert "hex:32" in refused.value.diag.message_hint
    assert table_checksum(conn, "sessions") == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)

    conn.execute(ROTATE, ("tickets", "function:pg_catalog.gen_random_uuid"))
    if conn.info.server_version >= 180000:
        conn.execute(ROTATE, ("tickets", "function:pg_catalog.uuidv4"))
        with pytest.raises(psycopg.Error) as uuidv7:
            conn.execute(ROTATE, ("tickets", "function:pg_catalog.uuidv7"))
        assert uuidv7.value.sqlstate == "22023"
        assert "uuidv7" in str(uuidv7.value)


@pytest.mark.parametrize("where", ["temporary schema", "own schema"])
def test_a_superusers_resume_never_calls_a_function_of_the_attacker_named_by_the_runs_stored_format(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str, victim: str, where: str
) -> None:
    """Finding 1: the stored format of the victim's open run names a function of the attacker's (in its
    temporary schema, or in public): the superuser's plain resume re-checks the format, refuses with 42501
    before any batch, and the function never runs (the attacker stays an ordinary role)."""
    conn.execute(
        "CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_max_batches => 1,"
        " p_quiet => true)"
    )
    plant_escalation(attacker_conn, attacker)
    if where == "temporary schema":
        schema = attacker_conn.execute(
            "SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()"
        ).fetchone()
        if schema is None:  # the session's temporary schema is made by its first temporary object
            attacker_conn.execute("CREATE TEMP TABLE scratch (x int)")
            schema = attacker_conn.execute(
                "SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()"
            ).fetchone()
        assert schema is not None
        function = f"{schema[0]}.evil"
        attacker_conn.execute(EVIL.replace("{schema}", "pg_temp"))
    else:
        function = "public.evil"
        attacker_conn.execute(EVIL.replace("{schema}", "public"))
    # the lead's change revokes the attacker's write on runs: the test writes the format as the superuser
    conn.execute(
        "UPDATE token_rotation.runs SET options = options || jsonb_build_object('format', %s::text)"
        " WHERE target = 'public.tickets'::regclass",
        (f"function:{function}",),
    )
    batches = conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone()
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("CALL token_rotation.rotate('public.tickets', p_quiet => true)")
    assert refused.value.sqlstate == "42501"
    assert "evil" in str(refused.value)
    assert refused.value.diag.message_hint
    assert escalations(conn) == []
    assert not is_superuser(conn, attacker)
    assert conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone() == batches
