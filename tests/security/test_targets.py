"""Finding 9 of issue 17: dangerous targets. System catalogs, information_schema, TOAST tables and the tool's
own tables are never rotated, not even by a superuser; and a table whose owner the rotating role does not
trust, and which runs code of that owner on UPDATE (triggers, index expressions or predicates, CHECK
constraints, generated columns, rules), is refused unless the caller says it reviewed that code
(p_trust_table_owner => true, --trust-table-owner): that code would otherwise run with the caller's rights.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from .attacks import escalations, is_superuser, plant_escalation
from background import run_cli
from helpers import table_checksum
from roles import dsn_as, grant_recipe, temporary_role

# The attacker's code, the payload of attacks.py in the shapes an UPDATE runs: escalate_value() wraps it for
# index expressions, CHECK constraints and generated columns, which take only IMMUTABLE functions (a claim
# PostgreSQL does not verify), escalate_trigger() for triggers.
ESCALATE = """
CREATE FUNCTION public.escalate_value(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN PERFORM public.escalate('value'); RETURN $1; END $f$;
CREATE FUNCTION public.escalate_trigger() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.escalate('trigger'); RETURN NEW; END $f$;
"""

# a trigger of the attacker's that does no harm: it counts the updates of each row
HARMLESS_TRIGGER = (
    "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS"
    " $f$BEGIN NEW.touched := OLD.touched + 1; RETURN NEW; END$f$;"
    " CREATE TRIGGER touch_owned BEFORE UPDATE ON public.owned FOR EACH ROW"
    " EXECUTE FUNCTION public.touch()"
)

OWNED = (
    "CREATE TABLE public.owned (id integer PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid(),"
    " touched integer NOT NULL DEFAULT 0);"
    " INSERT INTO public.owned (id) SELECT g FROM generate_series(1, 300) g;"
)

# each kind of code an UPDATE of public.owned runs, and the words the refusal's DETAIL names it by
CODE = {
    "trigger": (
        "CREATE TRIGGER audit_owned BEFORE UPDATE ON public.owned FOR EACH ROW"
        " EXECUTE FUNCTION public.escalate_trigger()",
        "trigger audit_owned",
    ),
    "expression index": (
        "CREATE INDEX owned_expr ON public.owned ((public.escalate_value(id)))",
        "owned_expr",
    ),
    "partial index": (
        "CREATE INDEX owned_partial ON public.owned (id) WHERE public.escalate_value(id) > 0",
        "owned_partial",
    ),
    "check constraint": (
        "ALTER TABLE public.owned ADD CONSTRAINT owned_check CHECK (public.escalate_value(id) > 0)",
        "owned_check",
    ),
    "generated column": (
        "ALTER TABLE public.owned ADD COLUMN derived integer"
        " GENERATED ALWAYS AS (public.escalate_value(id)) STORED",
        "derived",
    ),
    "rule": (
        "CREATE RULE owned_also AS ON UPDATE TO public.owned DO ALSO SELECT public.escalate('rule')",
        "owned_also",
    ),
}


def plant(attacker_conn: psycopg.Connection, attacker: str, code: str) -> None:
    """The attacker creates public.owned (its own table), its escalation functions and one piece of code."""
    plant_escalation(attacker_conn, attacker)
    attacker_conn.execute(ESCALATE)
    attacker_conn.execute(OWNED)
    attacker_conn.execute(code)


def assert_not_escalated(conn: psycopg.Connection, attacker: str) -> None:
    """The attacker's code ran as nobody but the attacker (creating an index or a constraint runs it too)."""
    assert escalations(conn, except_by=attacker) == []
    assert not is_superuser(conn, attacker)


@pytest.mark.parametrize(
    "call",
    [
        "CALL token_rotation.rotate('pg_catalog.pg_description', p_column => 'description',"
        " p_format => 'hex:16', p_quiet => true)",
        "CALL token_rotation.rotate('information_schema.sql_features', p_column => 'comments',"
        " p_format => 'hex:16', p_key => '{feature_id,sub_feature_id}', p_quiet => true)",
        "SELECT * FROM token_rotation.plan('pg_catalog.pg_authid', p_column => 'rolpassword',"
        " p_format => 'hex:16')",
        "CALL token_rotation.rotate('token_rotation.runs', p_column => 'state', p_format => 'hex:16',"
        " p_quiet => true)",
        "TOAST",
    ],
    ids=["pg_description", "information_schema", "pg_authid", "token_rotation.runs", "pg_toast"],
)
def test_system_catalogs_information_schema_toast_and_the_tools_own_tables_are_refused_even_to_a_superuser(
    conn: psycopg.Connection, call: str
) -> None:
    """rotate() and plan() refuse pg_catalog.pg_description (a superuser's run rewrote every comment),
    pg_authid.rolpassword, a table of information_schema, a TOAST table and token_rotation.runs with 42501,
    a DETAIL and a HINT; nothing changes and no run starts."""
    if call == "TOAST":
        toast = conn.execute(
            "SELECT reltoastrelid::regclass::text FROM pg_class"
            " WHERE oid = 'pg_catalog.pg_description'::regclass"
        ).fetchone()
        assert toast is not None
        call = f"CALL token_rotation.rotate('{toast[0]}', p_column => 'chunk_data', p_format => 'bytes:16')"
    before = table_checksum(conn, "pg_catalog.pg_description")
    runs = conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone()
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(call)
    assert refused.value.sqlstate == "42501", refused.value
    assert "permission denied to rotate" in (refused.value.diag.message_primary or "")
    assert refused.value.diag.message_detail and refused.value.diag.message_hint
    assert table_checksum(conn, "pg_catalog.pg_description") == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == runs


@pytest.mark.parametrize("kind", list(CODE))
def test_a_superusers_rotate_of_a_table_whose_untrusted_owner_planted_code_is_refused(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str, kind: str
) -> None:
    """The attacker owns a table whose UPDATE runs its code (a trigger that would ALTER ROLE attacker
    SUPERUSER when a superuser fires it, or an index expression, partial index, CHECK constraint, generated
    column or rule calling the same): the superuser's rotate and plan are refused with 42501 naming the table
    and its owner, the code in DETAIL, SET ROLE and p_trust_table_owner in HINT; nothing ran or changed."""
    statement, words = CODE[kind]
    plant(attacker_conn, attacker, statement)
    before = table_checksum(conn, "public.owned")
    for call in (
        "CALL token_rotation.rotate('public.owned', p_quiet => true)",
        "SELECT * FROM token_rotation.plan('public.owned', p_sample => true)",
    ):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(call)
        assert refused.value.sqlstate == "42501", refused.value
        message = refused.value.diag.message_primary or ""
        assert "public.owned" in message and attacker in message
        assert words in (refused.value.diag.message_detail or "")
        hint = refused.value.diag.message_hint or ""
        assert f"SET ROLE {attacker}" in hint and "p_trust_table_owner => true" in hint
    assert_not_escalated(conn, attacker)
    assert table_checksum(conn, "public.owned") == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_a_trigger_on_a_leaf_partition_of_the_attacker_is_refused_too(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str
) -> None:
    """A partitioned table of the attacker with its trigger on one leaf partition only: the superuser's rotate
    through the parent is refused, naming that trigger; the attacker stays an ordinary role."""
    plant_escalation(attacker_conn, attacker)
    attacker_conn.execute(ESCALATE)
    attacker_conn.execute(
        "CREATE TABLE public.parted (id integer PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid())"
        " PARTITION BY RANGE (id);"
        " CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (1) TO (101);"
        " CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (101) TO (201);"
        " INSERT INTO public.parted (id) SELECT g FROM generate_series(1, 200) g;"
        " CREATE TRIGGER audit_leaf BEFORE UPDATE ON public.parted_2 FOR EACH ROW"
        " EXECUTE FUNCTION public.escalate_trigger()"
    )
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("CALL token_rotation.rotate('public.parted', p_quiet => true)")
    assert refused.value.sqlstate == "42501", refused.value
    assert "audit_leaf" in (refused.value.diag.message_detail or "")
    assert_not_escalated(conn, attacker)


def test_a_format_function_of_an_untrusted_table_owner_is_its_code_too(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str
) -> None:
    """The attacker's table has no code of its own, so the superuser rotates it as before; but a format
    function:public.fresh owned by the attacker runs in every batch: refused with 42501 unless
    p_trust_table_owner => true."""
    attacker_conn.execute(OWNED)
    attacker_conn.execute(
        "CREATE FUNCTION public.fresh() RETURNS uuid LANGUAGE sql VOLATILE AS 'SELECT gen_random_uuid()'"
    )
    conn.execute("CALL token_rotation.rotate('public.owned', p_quiet => true)")  # no code: trusted enough
    before = table_checksum(conn, "public.owned")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(
            "CALL token_rotation.rotate('public.owned', p_format => 'function:public.fresh', p_quiet => true)"
        )
    assert refused.value.sqlstate == "42501", refused.value
    assert "fresh" in str(refused.value)
    assert "p_trust_table_owner => true" in (refused.value.diag.message_hint or "")
    assert table_checksum(conn, "public.owned") == before
    conn.execute(
        "CALL token_rotation.rotate('public.owned', p_format => 'function:public.fresh',"
        " p_trust_table_owner => true, p_quiet => true)"
    )
    assert table_checksum(conn, "public.owned") != before


def test_with_trust_table_owner_the_table_of_another_owner_is_rotated(
    dsn: str, conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str
) -> None:
    """After reviewing the owner's harmless trigger, the superuser passes p_trust_table_owner => true (CLI
    --trust-table-owner, for the dry run too): every row is rotated and the trigger ran once per row. The
    choice is per CALL, never stored with the run: a resume without it is refused again."""
    attacker_conn.execute(OWNED)
    attacker_conn.execute(HARMLESS_TRIGGER)
    refused = run_cli(dsn, "rotate", "--table", "public.owned", "--dry-run")
    assert refused.returncode == 1 and "--trust-table-owner" in refused.stderr, refused.stderr
    planned = run_cli(dsn, "rotate", "--table", "public.owned", "--dry-run", "--trust-table-owner", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout.splitlines()[-1])["rows_total"] == 300

    conn.execute(
        "CALL token_rotation.rotate('public.owned', p_batch_size => 100, p_max_batches => 1,"
        " p_trust_table_owner => true, p_quiet => true)"
    )
    assert conn.execute("SELECT options ? 'trust_table_owner' FROM token_rotation.runs").fetchone() == (
        False,
    )
    with pytest.raises(psycopg.Error) as again:
        conn.execute("CALL token_rotation.rotate('public.owned', p_quiet => true)")
    assert again.value.sqlstate == "42501"
    done = run_cli(dsn, "rotate", "--table", "public.owned", "--trust-table-owner", "--json")
    assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT min(touched), max(touched) FROM public.owned").fetchone() == (1, 1)
    assert conn.execute("SELECT state FROM token_rotation.runs").fetchone() == ("finished",)


def test_a_table_whose_owner_already_holds_the_callers_rights_is_trusted(
    dsn: str, conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str
) -> None:
    """A rotator role rotates, without p_trust_table_owner, a table with a trigger owned by a role that is a
    member of the rotator (its code gains nothing from the rotator's rights); the attacker's table with a
    trigger stays refused to that rotator, as the attacker is not a member of it."""
    attacker_conn.execute(OWNED)
    attacker_conn.execute(HARMLESS_TRIGGER)
    with temporary_role(conn, "tr_rotator") as rotator, temporary_role(conn, "tr_member") as member:
        ident = {"r": sql.Identifier(rotator), "m": sql.Identifier(member)}
        conn.execute(sql.SQL("GRANT {r} TO {m}").format(**ident))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {m}").format(**ident))
        with psycopg.connect(dsn_as(dsn, member), autocommit=True) as member_conn:
            member_conn.execute(OWNED.replace("public.owned", "public.members"))
            member_conn.execute(
                "CREATE FUNCTION public.touch_members() RETURNS trigger LANGUAGE plpgsql AS"
                " $f$BEGIN NEW.touched := OLD.touched + 1; RETURN NEW; END$f$;"
                " CREATE TRIGGER touch_members BEFORE UPDATE ON public.members FOR EACH ROW"
                " EXECUTE FUNCTION public.touch_members()"
            )
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {m}").format(**ident))
        grant_recipe(conn, rotator, table="public.members")
        conn.execute(sql.SQL("GRANT SELECT, UPDATE ON public.owned TO {r}").format(**ident))
        with psycopg.connect(dsn_as(dsn, rotator), autocommit=True) as rotator_conn:
            rotator_conn.execute("CALL token_rotation.rotate('public.members', p_quiet => true)")
            with pytest.raises(psycopg.Error) as refused:
                rotator_conn.execute("CALL token_rotation.rotate('public.owned', p_quiet => true)")
            assert refused.value.sqlstate == "42501"
            assert "touch_owned" in (refused.value.diag.message_detail or "")
        assert conn.execute("SELECT min(touched), max(touched) FROM public.members").fetchone() == (1, 1)
