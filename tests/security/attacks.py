"""The attacker's payload, one copy for every attack test: public.escalate(what) records what ran it and as
whom (public.escalations, which every role may insert into) and tries to make the attacker a superuser, which
succeeds only when a superuser runs it. Each test wraps it in the shape its attack needs (a look-alike of a
built-in, a format function, a trigger, an index expression) and checks afterwards that nobody but the
attacker ran it and that the attacker is still an ordinary role."""

from __future__ import annotations

import psycopg
from psycopg import sql

ESCALATE = """
CREATE TABLE IF NOT EXISTS public.escalations (what text, ran_as name);
GRANT INSERT ON public.escalations TO PUBLIC;
CREATE OR REPLACE FUNCTION public.escalate(p_what text) RETURNS void LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    INSERT INTO public.escalations VALUES (p_what, current_user);
    BEGIN
        EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', {attacker});
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
END $f$;
"""


def plant_escalation(attacker_conn: psycopg.Connection, attacker: str) -> None:
    """Creates public.escalate() and public.escalations as the attacker."""
    attacker_conn.execute(ESCALATE.replace("{attacker}", sql.Literal(attacker).as_string(attacker_conn)))


def escalations(conn: psycopg.Connection, *, except_by: str | None = None) -> list[tuple[str, str]]:
    """What ran the payload and as whom, but the runs as `except_by` (the attacker's own, e.g. while it
    created an index on its expression)."""
    rows = conn.execute(
        "SELECT what, ran_as::text FROM public.escalations WHERE ran_as IS DISTINCT FROM %s ORDER BY what",
        (except_by,),
    ).fetchall()
    return [(str(what), str(ran_as)) for what, ran_as in rows]


def is_superuser(conn: psycopg.Connection, role: str) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    assert row is not None, f"no role {role}"
    return bool(row[0])
