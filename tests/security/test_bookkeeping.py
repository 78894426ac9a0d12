"""Attacks on the tool's bookkeeping (issue 17, findings 1, 2 and 3, and the recipe itself): a role with
nothing but the recipe's grants (sql/examples/grants.sql) for a table of its own tries to steer, forge or
control the run of a table it may not rotate.

Each attack must be refused with 42501 (InsufficientPrivilege) and leave the victim's run as it was; the
scenario tests then let the superuser go on and check that the victim's table is rotated exactly once and
that nothing of the attacker's ran. They record whether each attack was refused and assert it last, so that
on code that lets it through the failure says what the attack achieved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from helpers import Snapshot, assert_rotated_exactly_once, last_run_id, snapshot, table_checksum
from roles import dsn_as

VICTIM = "public.tickets"
OWN = "public.attacker_tickets"
OPEN_VICTIM_RUN = (
    "CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_max_batches => 1, p_quiet => true)"
)


@dataclass
class VictimRun:
    """The victim's open run: one batch of 100 of its 1,000 rows done by the superuser."""

    run_id: int
    slice_id: int
    before: Snapshot  # the victim's table before the run started


@pytest.fixture
def victim_run(conn: psycopg.Connection, victim: str) -> VictimRun:
    """The superuser opens a run of the victim's table and stops it after its first batch."""
    before = snapshot(conn, victim)
    conn.execute(OPEN_VICTIM_RUN)
    run_id = last_run_id(conn, victim)
    row = conn.execute(
        "SELECT r.state, s.slice_id, s.rows_done FROM token_rotation.runs r"
        " JOIN token_rotation.slices s USING (run_id) WHERE r.run_id = %s",
        (run_id,),
    ).fetchall()
    assert [(state, done) for state, _, done in row] == [("active", 100)], f"not one open slice: {row}"
    return VictimRun(run_id, row[0][1], before)


def bookkeeping(conn: psycopg.Connection, run_id: int) -> tuple[Any, ...]:
    """Everything the tool keeps about a run (its runs row, slices and progress log), and how many runs the
    tool knows: equal before and after an attack means the attack changed nothing."""
    row = conn.execute(
        "SELECT (SELECT to_jsonb(r) FROM token_rotation.runs r WHERE r.run_id = %(run)s),"
        " (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.slice_id) FROM token_rotation.slices s"
        "   WHERE s.run_id = %(run)s),"
        " (SELECT jsonb_agg(to_jsonb(b) ORDER BY b.slice_id, b.batch_no) FROM token_rotation.batches b"
        "   WHERE b.run_id = %(run)s),"
        " (SELECT count(*) FROM token_rotation.runs)",
        {"run": run_id},
    ).fetchone()
    assert row is not None
    return tuple(row)


def attempt(connection: psycopg.Connection, query: str, params: Any = None) -> psycopg.Error | None:
    """Runs one statement of the attacker's; returns the error that refused it, None when it went through."""
    try:
        connection.execute(query, params)  # type: ignore[arg-type]
    except psycopg.Error as error:
        return error
    return None


def assert_refused(error: psycopg.Error | None, attack: str) -> None:
    """The attack was refused for lack of privilege (42501), not let through nor stopped by accident."""
    if error is None:
        raise AssertionError(f"{attack}: not refused, the attack went through")
    assert isinstance(error, psycopg.errors.InsufficientPrivilege), (
        f"{attack}: refused with {type(error).__name__} ({error.sqlstate}) instead of 42501: {error}"
    )


@dataclass
class Evil:
    """The attacker's token function and where it leaves its traces."""

    format: str  # the run option that makes a rotation call it: function:<schema>.tr_evil
    loot: str  # the attacker's table into which it copies every token it makes, and who ran it


@pytest.fixture(params=["public", "pg_temp"])
def evil(request: pytest.FixtureRequest, attacker_conn: psycopg.Connection, attacker: str) -> Iterator[Evil]:
    """A uuid-returning VOLATILE function of the attacker's, in a schema it may create in (public) or in its
    own temporary schema: it copies each token it makes into a table of the attacker's (INSERT granted to
    PUBLIC) and, run by a superuser, makes the attacker superuser."""
    attacker_conn.execute("CREATE TABLE public.tr_loot (token uuid, taken_by name)")
    attacker_conn.execute("GRANT INSERT ON public.tr_loot TO PUBLIC")
    if request.param == "pg_temp":
        row = attacker_conn.execute("SELECT pg_my_temp_schema()::regnamespace::text").fetchone()
        if row is None or row[0] == "-":  # no temporary schema yet: making a table makes one
            attacker_conn.execute("CREATE TEMPORARY TABLE tr_scratch ()")
            row = attacker_conn.execute("SELECT pg_my_temp_schema()::regnamespace::text").fetchone()
        assert row is not None
        schema = str(row[0])
    else:
        schema = "public"
    attacker_conn.execute(
        sql.SQL(
            """
            CREATE FUNCTION {schema}.tr_evil() RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
            DECLARE
                v_token uuid := pg_catalog.gen_random_uuid();
            BEGIN
                INSERT INTO public.tr_loot VALUES (v_token, current_user);
                IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
                   AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = {attacker}) THEN
                    EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', {attacker});
                END IF;
                RETURN v_token;
            END
            $$
            """
        ).format(schema=sql.Identifier(schema), attacker=sql.Literal(attacker))
    )
    yield Evil(format=f"function:{schema}.tr_evil", loot="public.tr_loot")


def assert_the_attackers_code_never_ran(conn: psycopg.Connection, evil: Evil, attacker: str) -> None:
    """The attacker's function made no token (its loot table is empty) and the attacker is no superuser."""
    taken = conn.execute(
        sql.SQL("SELECT count(*), coalesce(string_agg(DISTINCT taken_by, ', '), '') FROM {}").format(
            sql.SQL(evil.loot)
        )
    ).fetchone()
    promoted = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (attacker,)).fetchone()
    assert taken is not None and promoted is not None
    assert (taken[0], promoted[0]) == (0, False), (
        f"the attacker's {evil.format} ran {taken[0]} times as {taken[1] or 'nobody'}, copying the new tokens"
        f" into {evil.loot}; {attacker} {'became' if promoted[0] else 'is not'} superuser"
    )


# --- findings 1 and 2: the tool's tables -------------------------------------------------------------------

DIRECT_WRITES = {
    "insert-run": (
        "INSERT INTO token_rotation.runs (target, token_column, state, batch_size, key_columns,"
        " key_types) VALUES ('public.tickets'::regclass, 'token', 'cancelled', 100, '{id}', '{bigint}')"
    ),
    "update-run": (
        "UPDATE token_rotation.runs SET options = options || '{\"batch_size\": 1}' WHERE run_id = %(run)s"
    ),
    "delete-run": "DELETE FROM token_rotation.runs WHERE run_id = %(run)s",
    "insert-slice": (
        "INSERT INTO token_rotation.slices (run_id, slice_no, lo, hi)"
        " VALUES (%(run)s, 99, '{1000}', '{2000}')"
    ),
    "update-slice": "UPDATE token_rotation.slices SET done = true WHERE run_id = %(run)s",
    "delete-slice": "DELETE FROM token_rotation.slices WHERE run_id = %(run)s",
    "insert-batch": (
        "INSERT INTO token_rotation.batches (slice_id, batch_no, run_id, after_key, last_key,"
        " rows, batch_size, started_at, finished_at)"
        " VALUES (%(slice)s, 99, %(run)s, '{100}', '{1000}', 900, 100, now(), now())"
    ),
    "update-batch": "UPDATE token_rotation.batches SET rows = 0 WHERE run_id = %(run)s",
    "delete-batch": "DELETE FROM token_rotation.batches WHERE run_id = %(run)s",
}


@pytest.mark.parametrize("write", DIRECT_WRITES.values(), ids=DIRECT_WRITES.keys())
def test_a_rotating_role_cannot_write_the_tools_tables_directly(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, victim_run: VictimRun, write: str
) -> None:
    """Findings 1 and 2: INSERT, UPDATE and DELETE on runs, slices and batches by a role with the recipe's
    grants raise 42501, and the victim's run is as it was."""
    state = bookkeeping(conn, victim_run.run_id)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attacker_conn.execute(write, {"run": victim_run.run_id, "slice": victim_run.slice_id})  # type: ignore[arg-type]
    assert bookkeeping(conn, victim_run.run_id) == state


BOOKKEEPING_CALLS = {
    # today's signatures (\df token_rotation.*), each aimed at the victim's open run
    "record_batch": (
        "SELECT token_rotation_internal.record_batch(%(run)s, %(slice)s, '{100}', '{1000}', 900, 100,"
        " now(), now(), 0, true)"
    ),
    "claim_slice": (
        "SELECT token_rotation_internal.claim_slice('public.tickets', 'token', NULL, 100, NULL, true)"
    ),
    "end_call": "SELECT token_rotation_internal.end_call(%(run)s, %(slice)s, now(), '42501', 'forged')",
    "keep_options": (
        "SELECT token_rotation_internal.keep_options(%(run)s, '{\"batch_size\": 1}', '{\"batch_size\": 1}')"
    ),
    "mark_waiting": (
        "SELECT token_rotation_internal.mark_waiting(%(run)s, %(slice)s, 'forged', NULL, now(), true)"
    ),
    "mark_lock_retry": (
        "SELECT token_rotation_internal.mark_lock_retry(%(run)s, %(slice)s, '55P03', 1, 5, 1, true)"
    ),
}


@pytest.mark.parametrize("call", BOOKKEEPING_CALLS.values(), ids=BOOKKEEPING_CALLS.keys())
def test_the_bookkeeping_functions_refuse_a_role_that_may_not_update_the_runs_token_column(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, victim_run: VictimRun, call: str
) -> None:
    """Findings 1 and 2: the functions that write a run's bookkeeping, called directly by a role without
    UPDATE on the run's token column, raise 42501 and change nothing of the victim's run."""
    state = bookkeeping(conn, victim_run.run_id)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attacker_conn.execute(call, {"run": victim_run.run_id, "slice": victim_run.slice_id})  # type: ignore[arg-type]
    assert bookkeeping(conn, victim_run.run_id) == state


def test_a_rotating_role_cannot_point_another_runs_format_at_its_own_function(
    conn: psycopg.Connection,
    attacker_conn: psycopg.Connection,
    attacker: str,
    victim_run: VictimRun,
    evil: Evil,
) -> None:
    """Finding 1: setting the victim's open run's format to function:<attacker's schema>.tr_evil is refused
    (42501); the superuser's resume then rotates every row exactly once with uuids and never calls it."""
    refused = attempt(
        attacker_conn,
        "UPDATE token_rotation.runs SET options = options || jsonb_build_object('format', %s::text)"
        " WHERE target = 'public.tickets'::regclass AND state IN ('active', 'paused')",
        (evil.format,),
    )
    conn.execute("CALL token_rotation.rotate('public.tickets', p_quiet => true)")
    assert_the_attackers_code_never_ran(conn, evil, attacker)
    assert_rotated_exactly_once(conn, victim_run.before, victim_run.run_id, VICTIM)
    used = conn.execute(
        "SELECT options->>'format' FROM token_rotation.runs WHERE run_id = %s", (victim_run.run_id,)
    ).fetchone()
    assert used is not None and used[0] in (None, "uuid"), f"the run's format is {used}"
    assert_refused(refused, "UPDATE token_rotation.runs SET options (format)")


def test_a_fake_open_run_planted_before_the_first_rotate_is_refused(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str, victim: str, evil: Evil
) -> None:
    """Finding 1: a run (with the attacker's format) and its slice, covering every bigint key, planted for the
    victim's table before its first rotate are refused (42501); the superuser's rotate then starts its own
    run, rotates every row exactly once with uuids and never calls the attacker's function."""
    before = snapshot(conn, victim)
    planted_run = attempt(
        attacker_conn,
        "INSERT INTO token_rotation.runs (target, token_column, batch_size, key_columns, key_types, key_min,"
        " key_max, rows_expected, options) VALUES ('public.tickets'::regclass, 'token', 1000, '{id}',"
        " '{bigint}', ARRAY[%(min)s], ARRAY[%(max)s], 1000, jsonb_build_object('format', %(format)s::text))",
        {"min": str(-(2**63)), "max": str(2**63 - 1), "format": evil.format},
    )
    planted_slice = attempt(
        attacker_conn,
        "INSERT INTO token_rotation.slices (run_id, slice_no, lo, hi, rows_expected)"
        " SELECT run_id, 1, NULL, key_max, 1000 FROM token_rotation.runs"
        " WHERE target = 'public.tickets'::regclass AND state = 'active'",
    )
    conn.execute("CALL token_rotation.rotate('public.tickets', p_quiet => true)")
    assert_the_attackers_code_never_ran(conn, evil, attacker)
    run_id = last_run_id(conn, victim)
    assert_rotated_exactly_once(conn, before, run_id, VICTIM)
    runs = conn.execute(
        "SELECT count(*) FROM token_rotation.runs WHERE target = 'public.tickets'::regclass"
    ).fetchone()
    assert runs == (1,), f"{runs} runs of {victim}: one was planted"
    assert_refused(planted_run, "INSERT INTO token_rotation.runs (a fake open run)")
    assert_refused(planted_slice, "INSERT INTO token_rotation.slices (the fake run's slice)")


def test_a_rotating_role_cannot_move_a_runs_checkpoint_past_rows_it_did_not_rotate(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, victim_run: VictimRun
) -> None:
    """Finding 2: a batches row and a slices.last_key forged to cover the 900 rows still to do of the
    victim's run are refused (42501); the run then finishes with every row rotated and verify() all ok."""
    forged_batch = attempt(
        attacker_conn,
        "INSERT INTO token_rotation.batches (slice_id, batch_no, run_id, after_key, last_key, rows,"
        " batch_size, started_at, finished_at)"
        " SELECT s.slice_id, s.batches_done + 1, s.run_id, s.last_key, s.hi, s.rows_expected - s.rows_done,"
        " 100, now(), now() FROM token_rotation.slices s WHERE s.run_id = %s",
        (victim_run.run_id,),
    )
    moved_checkpoint = attempt(
        attacker_conn,
        "UPDATE token_rotation.slices SET last_key = hi, rows_done = rows_expected,"
        " batches_done = batches_done + 1 WHERE run_id = %s",
        (victim_run.run_id,),
    )
    conn.execute("CALL token_rotation.rotate('public.tickets', p_quiet => true)")
    assert_rotated_exactly_once(conn, victim_run.before, victim_run.run_id, VICTIM)
    assert_refused(forged_batch, "INSERT INTO token_rotation.batches (a forged batch)")
    assert_refused(moved_checkpoint, "UPDATE token_rotation.slices SET last_key (a moved checkpoint)")


# --- finding 3: run control --------------------------------------------------------------------------------

CONTROLS = {
    "pause": "SELECT token_rotation.pause(%(t)s)",
    "unpause": "SELECT token_rotation.unpause(%(t)s)",
    "cancel": "SELECT token_rotation.cancel(%(t)s)",
    "hold": "SELECT token_rotation.hold(%(t)s, 'backup running', '1 hour')",
    "set_options": "SELECT token_rotation.set_options(%(t)s, p_batch_size => 1)",
}

# what each control does to a run it may control: a column of token_rotation.runs and its value after
CONTROLLED = {
    "pause": ("state", "paused"),
    "unpause": ("state", "active"),
    "cancel": ("state", "cancelled"),
    "hold": ("hold_reason", "backup running"),
    "set_options": ("options->>'batch_size'", "1"),
}


def run_control_state(conn: psycopg.Connection, run_id: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT state, state_changed_at, options, hold_reason, hold_until FROM token_rotation.runs"
        " WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("control", CONTROLS)
def test_run_control_refuses_a_role_that_may_not_update_the_tables_token_column(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, victim_run: VictimRun, control: str
) -> None:
    """Finding 3: pause, unpause, cancel, hold and set_options on the victim's run by a role that may not
    UPDATE its token column raise 42501, and the run's state, options and hold are unchanged."""
    if control == "unpause":
        conn.execute("SELECT token_rotation.pause('public.tickets')")
    state = run_control_state(conn, victim_run.run_id)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attacker_conn.execute(CONTROLS[control], {"t": VICTIM})  # type: ignore[arg-type]
    assert run_control_state(conn, victim_run.run_id) == state


@pytest.mark.parametrize("control", CONTROLS)
def test_run_control_works_for_a_role_that_may_rotate_the_table(
    conn: psycopg.Connection, attacker_conn: psycopg.Connection, attacker: str, control: str
) -> None:
    """Finding 3 (what must keep working): the same controls on the role's own table's open run, which the
    recipe's grants let it rotate, do what they say."""
    attacker_conn.execute(
        "CALL token_rotation.rotate('public.attacker_tickets', p_batch_size => 100, p_max_batches => 1,"
        " p_quiet => true)"
    )
    run_id = last_run_id(conn, OWN)
    if control == "unpause":
        attacker_conn.execute("SELECT token_rotation.pause('public.attacker_tickets')")
    returned = attacker_conn.execute(CONTROLS[control], {"t": OWN}).fetchone()  # type: ignore[arg-type]
    column, value = CONTROLLED[control]
    row = conn.execute(
        sql.SQL("SELECT {} FROM token_rotation.runs WHERE run_id = %s").format(sql.SQL(column)), (run_id,)
    ).fetchone()
    assert row == (value,)
    if control != "set_options":  # set_options returns the run's options, the others its id
        assert returned == (run_id,)


# --- the recipe ---------------------------------------------------------------------------------------------


def test_the_recipes_grants_rotate_the_roles_own_table_and_no_other(
    conn: psycopg.Connection, dsn: str, attacker: str, victim: str
) -> None:
    """The recipe: a role with sql/examples/grants.sql for its own table rotates it exactly once and verify()
    passes for it; its CALL on another table raises 42501 and changes nothing."""
    before = snapshot(conn, OWN)
    victim_checksum = table_checksum(conn, victim)
    with psycopg.connect(dsn_as(dsn, attacker), autocommit=True) as rotator:
        rotator.execute(
            "CALL token_rotation.rotate('public.attacker_tickets', p_batch_size => 100, p_quiet => true)"
        )
        run_id = last_run_id(conn, OWN)
        checks = rotator.execute("SELECT check_name, ok FROM token_rotation.verify(%s)", (run_id,)).fetchall()
        assert checks and all(ok for _, ok in checks), checks
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rotator.execute("CALL token_rotation.rotate('public.tickets', p_quiet => true)")
    assert_rotated_exactly_once(conn, before, run_id, OWN)
    assert table_checksum(conn, victim) == victim_checksum
    runs = conn.execute(
        "SELECT count(*) FROM token_rotation.runs WHERE target = 'public.tickets'::regclass"
    ).fetchone()
    assert runs == (0,)
