"""Issue 19's subsets under issue 17's model: a subset expression runs with the rights of the role that runs
the batch, so it may name only code that role trusts. An attacker's expression stored with its own run is
checked again when a superuser resumes that run, and a look-alike operator that the superuser's search_path
would pick is refused before any batch runs."""

from __future__ import annotations

import psycopg
import pytest

from .attacks import escalations, is_superuser, plant_escalation
from helpers import table_checksum

# the attacker's predicate, declared STABLE (a lie the volatility check cannot see): runs the payload
MATCH = """
CREATE FUNCTION public.evil_match(p_id bigint) RETURNS boolean LANGUAGE plpgsql STABLE AS $f$
BEGIN
    PERFORM public.escalate('evil_match');
    RETURN p_id % 2 = 0;
END $f$;
"""

# a look-alike of = for bigint and numeric: pg_catalog has none without a cast (numeric = numeric), so this
# exact match wins wherever public is on the path, even behind pg_catalog (CVE-2018-1058's pattern)
OPERATOR = """
CREATE FUNCTION public.evil_eq(bigint, numeric) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
    PERFORM public.escalate('evil_eq');
    RETURN $1 = $2;
END $f$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = numeric, FUNCTION = public.evil_eq);
"""


def test_a_superuser_resuming_an_attackers_subset_run_refuses_its_function(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str
) -> None:
    """The attacker starts a run of its own table over p_where => 'public.evil_match(id)' and stops after one
    batch; the superuser's plain resume is refused with 42501 naming the function, before any batch: the
    payload never ran as anyone but the attacker, who is still an ordinary role."""
    plant_escalation(attacker_conn, attacker)
    attacker_conn.execute(MATCH)
    attacker_conn.execute(
        "CALL token_rotation.rotate('public.attacker_tickets', p_where => 'public.evil_match(id)',"
        " p_batch_size => 100, p_max_batches => 1, p_quiet => true)"
    )
    before = table_checksum(conn, "public.attacker_tickets")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("CALL token_rotation.rotate('public.attacker_tickets', p_quiet => true)")
    assert refused.value.sqlstate == "42501"
    assert "evil_match" in (refused.value.diag.message_detail or "")
    assert table_checksum(conn, "public.attacker_tickets") == before
    assert escalations(conn, except_by=attacker) == []
    assert not is_superuser(conn, attacker)


def test_a_look_alike_operator_in_the_callers_path_is_refused_in_a_subset(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str, victim: str
) -> None:
    """The attacker plants public.= (bigint, numeric); a superuser whose search_path has public rotates the
    victim's table with p_where => 'id = 5000.0': the expression resolves to the look-alike, and is
    refused (42501) before any batch; nothing ran as the superuser; nothing changed."""
    plant_escalation(attacker_conn, attacker)
    attacker_conn.execute(OPERATOR)
    before = table_checksum(conn)
    conn.execute('SET search_path = "$user", public')
    try:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(
                "CALL token_rotation.rotate(%s, p_where => 'id = 5000.0', p_quiet => true)", (victim,)
            )
    finally:
        conn.execute("RESET search_path")
    assert refused.value.sqlstate == "42501"
    assert "owned by" in (refused.value.diag.message_detail or "")
    assert table_checksum(conn) == before
    assert escalations(conn, except_by=attacker) == []
    assert not is_superuser(conn, attacker)
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
