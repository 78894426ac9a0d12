"""Hostile and wrong input at the SQL level: odd names work and never inject SQL; everything else is a clear
error (SQLSTATE, and a HINT saying what to do) that leaves the table and the tool's tables unchanged."""

from __future__ import annotations

import shutil
import subprocess
import time

import psycopg
import pytest
from psycopg import ClientCursor, sql

from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot, table_checksum


def run_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone()
    return int(row[0]) if row else 0


def assert_refused(
    conn: psycopg.Connection,
    statement: str,
    error: type[psycopg.Error],
    *,
    hint: str | None = "",
    table: str = "tickets",
    params: tuple[object, ...] | None = None,
) -> psycopg.Error:
    """The statement fails with that error class, names what to do in its HINT (unless hint is None: an
    error PostgreSQL raises before the tool runs), and changes neither the table nor the tool's tables."""
    before, runs = table_checksum(conn, table), run_count(conn)
    with pytest.raises(error) as refused:
        conn.execute(statement, params)
    if hint is not None:
        assert hint in (refused.value.diag.message_hint or ""), refused.value.diag.message_hint
        assert refused.value.diag.message_hint
    assert table_checksum(conn, table) == before
    assert run_count(conn) == runs
    return refused.value


# --- odd names: they work, and never inject SQL -------------------------------------------------------------

ODD_NAMES = [
    # (schema, table, token column, key column)
    ("Odd Schema", 'My "Tickets"; DROP TABLE canary; --', "Tök en", "Id; --"),
    ("public", "CamelCase", "Token", "ID"),
    ("public", "it's a table", "to'ken", "k ey"),
    ("sch;ema", "t$1", "$2", "%I"),
]


@pytest.mark.parametrize(
    "schema, table, token, key", ODD_NAMES, ids=["quotes", "capitals", "apostrophes", "format"]
)
def test_odd_names_rotate_and_never_inject_sql(
    conn: psycopg.Connection, schema: str, table: str, token: str, key: str
) -> None:
    """Schema, table, token and key names with quotes, semicolons, spaces, capitals, $ and % signs work,
    passed as a DBA would (a quoted literal) and as a parameter, and no statement hidden in them runs."""
    conn.execute("CREATE TABLE canary (x int)")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    t = sql.Identifier(schema, table)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {t} ({k} bigint PRIMARY KEY, {tok} uuid NOT NULL UNIQUE DEFAULT gen_random_uuid())"
        ).format(t=t, k=sql.Identifier(key), tok=sql.Identifier(token))
    )
    conn.execute(sql.SQL("INSERT INTO {} SELECT g FROM generate_series(1, 500) g").format(t))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE old AS SELECT {k} AS k, {tok} AS tok FROM {t}").format(
            t=t, k=sql.Identifier(key), tok=sql.Identifier(token)
        )
    )
    qualified = t.as_string(conn)
    # as a DBA types it: the quoted name inside a string literal
    conn.execute(
        sql.SQL("CALL token_rotation.rotate({}, p_column => {}, p_batch_size => 70, p_quiet => true)").format(
            sql.Literal(qualified), sql.Literal(token)
        )
    )
    # as a driver passes it: parameters
    conn.execute(
        "CALL token_rotation.rotate(%s::regclass, p_column => %s, p_batch_size => 70, p_quiet => true)",
        (qualified, token),
    )
    assert conn.execute("SELECT to_regclass('public.canary') IS NOT NULL").fetchone() == (True,)
    runs = conn.execute("SELECT run_id, state FROM token_rotation.runs ORDER BY run_id").fetchall()
    assert [r[1] for r in runs] == ["finished", "finished"]
    for run_id, _ in runs:
        failed = [c for c in conn.execute("SELECT * FROM token_rotation.verify(%s)", (run_id,)) if not c[1]]
        assert not failed
    unchanged = conn.execute(
        sql.SQL("SELECT count(*) FROM {t} JOIN old ON old.k = {t}.{k} WHERE old.tok = {t}.{tok}").format(
            t=t, k=sql.Identifier(key), tok=sql.Identifier(token)
        )
    ).fetchone()
    assert unchanged == (0,)


def test_a_table_name_that_is_not_a_table_name_is_refused_by_the_cast(conn: psycopg.Connection) -> None:
    """A name carrying SQL ('tickets; DROP TABLE tickets') is no valid name to the regclass cast (42602)."""
    make_table(conn, rows=10)
    assert_refused(
        conn,
        "CALL token_rotation.rotate('tickets; DROP TABLE tickets; --')",
        psycopg.errors.InvalidName,
        hint=None,
    )


# --- not a rotatable table ----------------------------------------------------------------------------------


def test_a_view_is_refused_with_a_hint(conn: psycopg.Connection) -> None:
    """A view is refused (42809) with a hint to pass the table behind it."""
    make_table(conn, rows=100)
    conn.execute("CREATE VIEW tickets_view AS SELECT * FROM tickets")
    assert_refused(
        conn,
        "CALL token_rotation.rotate('tickets_view')",
        psycopg.errors.WrongObjectType,
        hint="table behind",
    )


def test_a_materialized_view_is_refused_with_a_hint(conn: psycopg.Connection) -> None:
    """A materialized view is refused (42809) as well."""
    make_table(conn, rows=100)
    conn.execute("CREATE MATERIALIZED VIEW tickets_mv AS SELECT * FROM tickets")
    assert_refused(
        conn, "CALL token_rotation.rotate('tickets_mv')", psycopg.errors.WrongObjectType, hint="table behind"
    )


SERIAL_KEY = "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"


@pytest.mark.parametrize(
    "ddl, call, error, hint",
    [
        (
            f"CREATE TABLE tickets ({SERIAL_KEY}, token text DEFAULT md5(random()::text))",
            "CALL token_rotation.rotate('tickets')",
            psycopg.errors.DatatypeMismatch,
            "p_column",
        ),
        (
            f"CREATE TABLE tickets ({SERIAL_KEY}, token uuid DEFAULT gen_random_uuid())",
            "CALL token_rotation.rotate('tickets', p_column => 'no_such_column')",
            psycopg.errors.UndefinedColumn,
            "p_column",
        ),
        (
            "CREATE TABLE tickets (id bigint GENERATED BY DEFAULT AS IDENTITY,"
            " token uuid DEFAULT gen_random_uuid())",
            "CALL token_rotation.rotate('tickets')",
            psycopg.errors.InvalidTableDefinition,
            "primary key",
        ),
        (
            "CREATE TABLE tickets (id uuid DEFAULT gen_random_uuid() PRIMARY KEY,"
            " token uuid DEFAULT gen_random_uuid())",
            "CALL token_rotation.rotate('tickets', p_column => 'id')",
            psycopg.errors.FeatureNotSupported,
            "p_key",
        ),
        (
            f"CREATE TABLE tickets ({SERIAL_KEY}, title text DEFAULT random()::text,"
            " token uuid GENERATED ALWAYS AS (md5(title)::uuid) STORED)",
            "CALL token_rotation.rotate('tickets')",
            psycopg.errors.WrongObjectType,
            "stored token column",
        ),
    ],
    ids=["not-uuid", "no-such-column", "no-primary-key", "token-is-the-key", "generated"],
)
def test_a_table_that_cannot_be_rotated_is_refused_with_a_hint(
    conn: psycopg.Connection, ddl: str, call: str, error: type[psycopg.Error], hint: str
) -> None:
    """Wrong column type, unknown column, no primary key, the key as token, a generated
    token: each a distinct SQLSTATE with a hint, and nothing changes."""
    conn.execute(ddl)
    for _ in range(3):
        conn.execute("INSERT INTO tickets DEFAULT VALUES")
    assert_refused(conn, call, error, hint=hint)


def test_a_table_whose_updates_an_instead_rule_replaces_is_refused(conn: psycopg.Connection) -> None:
    """CREATE RULE ... ON UPDATE DO INSTEAD NOTHING would turn every batch into a no-op, and the run would
    finish with every token unchanged: refused (0A000) naming the rule, with a hint. A DO ALSO rule, or an
    INSTEAD rule that is disabled, does not stop the rotation."""
    make_table(conn, rows=300)
    conn.execute("CREATE RULE keep_tickets AS ON UPDATE TO tickets DO INSTEAD NOTHING")
    refused = assert_refused(
        conn, "CALL token_rotation.rotate('tickets')", psycopg.errors.FeatureNotSupported, hint="DISABLE RULE"
    )
    assert "keep_tickets" in (refused.diag.message_detail or "")
    conn.execute("ALTER TABLE tickets DISABLE RULE keep_tickets")
    conn.execute("CREATE RULE tell_too AS ON UPDATE TO tickets DO ALSO NOTIFY tickets_changed")
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 100, p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_an_unknown_table_is_refused(conn: psycopg.Connection) -> None:
    """An unknown table fails in the regclass cast (42P01), before the tool runs."""
    make_table(conn, rows=10)
    assert_refused(
        conn, "CALL token_rotation.rotate('no_such_table')", psycopg.errors.UndefinedTable, hint=None
    )


def test_a_null_table_is_refused_with_a_hint(conn: psycopg.Connection) -> None:
    """A NULL table is refused (22004) with a hint showing how to pass it."""
    make_table(conn, rows=10)
    assert_refused(
        conn, "CALL token_rotation.rotate(NULL)", psycopg.errors.NullValueNotAllowed, hint="tickets"
    )


# --- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        "p_batch_size => 0",
        "p_batch_size => -1",
        "p_batch_size => 1000000000",
        "p_workers => 0",
        "p_workers => 65",
        "p_max_batches => 0",
        "p_sleep => '-1s'",
        "p_lock_retries => -1",
        "p_target_batch_time => '0s'",
        "p_max_replication_lag => -1",
    ],
)
def test_an_out_of_range_parameter_is_refused_with_a_hint(conn: psycopg.Connection, args: str) -> None:
    """Batch size 0, -1 or 10^9, and every other parameter out of its range: 22023 with the value in DETAIL
    and a hint, before any run starts. (NULL is "not given": tests/engine/test_formats.py.)"""
    make_table(conn, rows=100)
    err = assert_refused(
        conn, f"CALL token_rotation.rotate('tickets', {args})", psycopg.errors.InvalidParameterValue
    )
    assert err.diag.message_detail


def test_a_batch_size_that_is_not_a_number_is_refused_by_postgresql(conn: psycopg.Connection) -> None:
    """p_batch_size => 'abc' fails in PostgreSQL's own input parsing (22P02) before the tool runs."""
    make_table(conn, rows=100)
    assert_refused(
        conn,
        "CALL token_rotation.rotate('tickets', p_batch_size => 'abc')",
        psycopg.errors.InvalidTextRepresentation,
        hint=None,
    )


def test_verify_of_a_run_that_does_not_exist_says_where_to_look(conn: psycopg.Connection) -> None:
    """token_rotation.verify(run id that does not exist) fails with P0002 and a hint listing the runs."""
    make_table(conn, rows=10)
    assert_refused(
        conn,
        "SELECT * FROM token_rotation.verify(424242)",
        psycopg.errors.NoDataFound,
        hint="token_rotation.progress",
    )


# --- CALL inside an open transaction ------------------------------------------------------------------------

CALL = "CALL token_rotation.rotate('tickets', p_batch_size => 10, p_quiet => true)"


@pytest.mark.parametrize("protocol", ["extended", "simple", "pipeline"])
def test_a_call_inside_a_psycopg_transaction_is_refused_before_anything_changes(
    dsn: str, conn: psycopg.Connection, protocol: str
) -> None:
    """psycopg without autocommit opens a transaction first: the CALL is refused, whatever the protocol
    (extended, simple, pipeline), with 25001 and a hint when the transaction began over a second before,
    else with PostgreSQL's own 2D000 at the procedure's first COMMIT; no token and no run changes."""
    make_table(conn, rows=100)
    before, runs = table_checksum(conn), run_count(conn)
    factory = ClientCursor if protocol == "simple" else psycopg.Cursor
    with psycopg.connect(dsn, cursor_factory=factory) as app:  # type: ignore[call-overload]
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            if protocol == "pipeline":
                with app.pipeline():
                    app.execute(CALL)
            else:
                app.execute(CALL)
        app.rollback()
        app.execute("SELECT 1")
        time.sleep(1.1)
        with pytest.raises(psycopg.errors.ActiveSqlTransaction) as refused:
            app.execute(CALL)
        assert "autocommit" in (refused.value.diag.message_hint or "")
    assert table_checksum(conn) == before
    assert run_count(conn) == runs


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
@pytest.mark.parametrize(
    "how",
    ["script", "one-message", "autocommit-off"],
)
def test_a_call_inside_a_psql_transaction_block_is_refused_before_anything_changes(
    dsn: str, conn: psycopg.Connection, how: str
) -> None:
    """psql with BEGIN; CALL ... (as a script, as one -c message) or with AUTOCOMMIT off: the CALL fails
    (PostgreSQL's "invalid transaction termination" at the first COMMIT, before any change) and nothing
    changes; after BEGIN and a pause, the tool's own error explains what to do."""
    make_table(conn, rows=100)
    before, runs = table_checksum(conn), run_count(conn)
    args = ["psql", "--no-psqlrc", "-X", "-v", "ON_ERROR_STOP=1", dsn]
    if how == "script":
        result = subprocess.run(args, input=f"BEGIN;\n{CALL};\n", capture_output=True, text=True, timeout=60)
    elif how == "one-message":
        result = subprocess.run([*args, "-c", f"BEGIN; {CALL}"], capture_output=True, text=True, timeout=60)
    else:
        script = f"\\set AUTOCOMMIT off\nSELECT 1;\nSELECT pg_sleep(1.1);\n{CALL};\n"
        result = subprocess.run(args, input=script, capture_output=True, text=True, timeout=60)
    # psql: 3 for an error in a script under ON_ERROR_STOP, 1 for an error in -c
    assert result.returncode == (1 if how == "one-message" else 3), result.stderr
    if how == "autocommit-off":
        assert "cannot run inside a transaction block" in result.stderr
        assert "HINT:" in result.stderr
    else:
        assert "invalid transaction termination" in result.stderr or "transaction block" in result.stderr
    assert table_checksum(conn) == before
    assert run_count(conn) == runs
