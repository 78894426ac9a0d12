"""Finding 4 of issue 17: look-alikes of built-ins in a schema on the caller's search_path never run.

CVE-2018-1058's pattern: an unqualified call whose pg_catalog candidate is polymorphic, VARIADIC "any" or
needs a cast loses to an exact-type function of the same name in any schema on the path, pg_catalog first
or not.
The attacker (CREATE on public, as many installations still allow) plants such look-alikes of what the
engine calls; the superuser then rotates, resumes, controls and inspects a run with public on its path.
"""

from __future__ import annotations

import psycopg

from .attacks import escalations, is_superuser, plant_escalation
from helpers import assert_rotated_exactly_once, last_run_id, snapshot

# Each look-alike runs the attacker's payload (attacks.py) and returns what the built-in would, so that
# nothing else shows it ran.
LOOK_ALIKES = """
CREATE FUNCTION public.cardinality(text[]) RETURNS integer LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('cardinality(text[])'); RETURN pg_catalog.cardinality($1::anyarray); END $f$;
CREATE FUNCTION public.concat_ws(text, text, text, text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('concat_ws'); RETURN pg_catalog.concat_ws($1, $2, $3, $4); END $f$;
CREATE FUNCTION public.text_array_eq(text[], text[]) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('= on text[]'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR public.= (LEFTARG = text[], RIGHTARG = text[], FUNCTION = public.text_array_eq);
CREATE FUNCTION public.numeric_times_float(numeric, float8) RETURNS float8 LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('numeric * float8'); RETURN $1::float8 OPERATOR(pg_catalog.*) $2; END $f$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = float8, FUNCTION = public.numeric_times_float);
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('format(text, text)'); RETURN pg_catalog.format($1, $2); END $f$;
"""


def test_look_alikes_in_the_callers_schemas_never_run_during_a_superusers_run(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str, victim: str
) -> None:
    """cardinality(text[]), = on text[], concat_ws, numeric * float8 and format planted in public by the
    attacker: the superuser's rotate, resume, pause, hold, set_options, progress, plan and verify (with
    public on its search_path) call none of them, and the attacker stays an ordinary role."""
    plant_escalation(attacker_conn, attacker)
    attacker_conn.execute(LOOK_ALIKES)
    conn.execute('SET search_path = "$user", public')
    before = snapshot(conn)
    conn.execute(
        "CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_max_batches => 3,"
        " p_workers => 2, p_quiet => true)"
    )
    conn.execute("SELECT token_rotation.pause('public.tickets'), token_rotation.unpause('public.tickets')")
    conn.execute("SELECT token_rotation.hold('public.tickets', 'backup', '1 min')")
    conn.execute("SELECT token_rotation.hold('public.tickets', NULL)")
    conn.execute("SELECT token_rotation.set_options('public.tickets', p_sleep => '1ms')")
    conn.execute("SELECT * FROM token_rotation.progress").fetchall()
    conn.execute("SELECT * FROM token_rotation.plan('public.tickets')").fetchall()
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_quiet => true)")
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_quiet => true)")
    run_id = last_run_id(conn)
    assert all(ok for _, ok, _ in conn.execute("SELECT * FROM token_rotation.verify(%s)", (run_id,)))
    assert escalations(conn) == []
    assert not is_superuser(conn, attacker)
    conn.execute("RESET search_path")
    assert_rotated_exactly_once(conn, before, run_id)
