"""Schedules (issue 19) and the trust model: token_rotation.schedules(), which `status` and `schedule --list`
call (often as a superuser, who sees every role's pg_cron jobs), reads the age of the oldest token from the
table a job names. A role allowed to schedule (USAGE on the schema cron) names the job's table and its
rotated-at column; reading that column must not run code of that role with the reader's rights: not a
view's functions, not an index predicate's function (the planner evaluates an IMMUTABLE one with constant
arguments), not a cast of a type of its own. Such a table's age is left NULL; a plain table's is given.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from .attacks import escalations, is_superuser, plant_escalation
from plugins.cron import needs_cron
from roles import dsn_as, temporary_role
from servers import Server

# the attacker's payload (attacks.py) in the shapes a read of a column runs: a view's column, an IMMUTABLE
# function that an index predicate calls with no argument, and an implicit cast of its own type
SHAPES = """
CREATE FUNCTION public.escalate_time() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('view'); RETURN now(); END $f$;
CREATE VIEW public.evil_view AS
SELECT 1 AS id, gen_random_uuid() AS token, public.escalate_time() AS rotated_at;

CREATE FUNCTION public.escalate_pred() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN PERFORM public.escalate('index predicate'); RETURN true; END $f$;
CREATE TABLE public.evil_index (id integer PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid(),
                                rotated_at timestamptz);
INSERT INTO public.evil_index (id, rotated_at) VALUES (1, now() - interval '1 day');
CREATE INDEX ON public.evil_index (rotated_at) WHERE public.escalate_pred();

CREATE TYPE public.when_t AS (t timestamptz);
CREATE FUNCTION public.escalate_cast(public.when_t) RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('cast'); RETURN $1.t; END $f$;
CREATE CAST (public.when_t AS timestamptz) WITH FUNCTION public.escalate_cast(public.when_t) AS IMPLICIT;
CREATE TABLE public.evil_type (id integer PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid(),
                               rotated_at public.when_t);
INSERT INTO public.evil_type VALUES (1, DEFAULT, ROW(now() - interval '1 day'));
"""


@pytest.fixture
def cron_attacker(cron_server: Server) -> Iterator[tuple[psycopg.Connection, str, psycopg.Connection]]:  # noqa: F811
    """The superuser's connection, an attacker role allowed to schedule (USAGE on cron and token_rotation,
    CREATE on public) and its connection; its objects and jobs dropped afterwards."""
    with (
        psycopg.connect(cron_server.dsn, autocommit=True) as conn,
        temporary_role(conn, "tr_cron_attacker") as role,
    ):
        ident = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA cron, token_rotation TO {}").format(ident))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident))
        try:
            with psycopg.connect(dsn_as(cron_server.dsn, role), autocommit=True) as attacker_conn:
                yield conn, role, attacker_conn
        finally:
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
            conn.execute("DROP TABLE IF EXISTS public.escalations")
            conn.execute("DROP FUNCTION IF EXISTS public.escalate(text)")


@needs_cron
@pytest.mark.slow
@pytest.mark.own_server
def test_a_superuser_listing_schedules_runs_no_code_of_the_jobs_makers(
    cron_attacker: tuple[psycopg.Connection, str, psycopg.Connection],
) -> None:
    """Jobs of an attacker on a view, on a table whose index predicate calls its function, and on a column of
    its own type with an implicit cast: a superuser's schedules() lists them with no oldest-token age and
    runs none of that code (the attacker stays an ordinary role); a plain table of the attacker's with no
    code gets its age."""
    conn, attacker, attacker_conn = cron_attacker
    plant_escalation(attacker_conn, attacker)
    attacker_conn.execute(SHAPES)
    attacker_conn.execute(
        "CREATE TABLE public.plain (id integer PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid(),"
        " rotated_at timestamptz); INSERT INTO public.plain VALUES (1, DEFAULT, now() - interval '2 days')"
    )
    for table in ("evil_view", "evil_index", "evil_type", "plain"):
        attacker_conn.execute(
            "SELECT cron.schedule(%s, '0 1 1 1 *', %s)",
            (
                f"token_rotation:public.{table}",
                f"CALL token_rotation.rotate('public.{table}'::regclass,"
                " p_rotated_at_column => 'rotated_at')",
            ),
        )
    rows = conn.execute(
        "SELECT table_name::text, oldest_token_seconds FROM token_rotation.schedules() ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in rows] == ["evil_index", "evil_type", "evil_view", "plain"]
    ages: dict[str, float | None] = {str(name): age for name, age in rows}
    assert escalations(conn, except_by=attacker) == []
    assert not is_superuser(conn, attacker)
    assert ages["evil_view"] is None and ages["evil_index"] is None and ages["evil_type"] is None
    assert ages["plain"] is not None and 2 * 86400 - 60 < ages["plain"] < 2 * 86400 + 60
