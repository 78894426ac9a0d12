"""Keys other than a single-column primary key: composite primary keys walked as rows, another unique key
named with p_key / --key (Django REST framework's authtoken_token, whose token is its primary key), the
refusals of a key that cannot serve, and a run that keeps its key when resumed."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from token_rotation.cli import cli

from helpers import assert_rotated_exactly_once, last_run_id, snapshot, table_checksum

COMPOSITE = (
    "CREATE TABLE tickets (tenant integer NOT NULL, id integer NOT NULL, created_at timestamptz NOT NULL,"
    " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text, PRIMARY KEY (tenant, created_at, id))"
)
# 5 tenants x 500 rows; created_at repeats across tenants, so the key's later columns decide the order
COMPOSITE_ROWS = (
    "INSERT INTO tickets (tenant, id, created_at, title)"
    " SELECT g % 5, g, timestamptz '2026-01-01' + (g / 5) * interval '1 hour', 'ticket ' || g"
    " FROM generate_series(1, 2500) AS g"
)
# Django REST framework's authtoken_token: the token `key` is the primary key, user_id is unique (here the
# token is a uuid; its text formats are another feature)
AUTHTOKEN = (
    "CREATE TABLE authtoken_token (key uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " created timestamptz NOT NULL DEFAULT now(), user_id integer NOT NULL UNIQUE)"
)
AUTHTOKEN_ROWS = "INSERT INTO authtoken_token (user_id) SELECT g * 3 FROM generate_series(1, 2000) AS g"


def test_a_composite_primary_key_is_walked_as_a_row_and_every_row_rotated_once(
    conn: psycopg.Connection,
) -> None:
    """A three-column primary key (tenant, created_at, id): one run, every row rotated once, checkpoints of
    three elements in key order, verify passes."""
    conn.execute(COMPOSITE)
    conn.execute(COMPOSITE_ROWS)
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 300, p_quiet => true)")
    run_id = last_run_id(conn)
    assert_rotated_exactly_once(conn, before, run_id)
    keys = conn.execute(
        "SELECT key_columns::text[], key_types::text[] FROM token_rotation.runs WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert keys == (["tenant", "created_at", "id"], ["integer", "timestamp with time zone", "integer"])
    batches = conn.execute(
        "SELECT count(*), bool_and(cardinality(last_key) = 3) FROM token_rotation.batches WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    assert batches == (9, True)


def test_a_composite_key_resumed_under_another_datestyle_rotates_every_row_once(
    conn: psycopg.Connection,
) -> None:
    """A run stopped under DateStyle 'SQL, DMY' and resumed under 'SQL, MDY', with worker slices: the
    timestamptz element of each checkpoint reads back the same, so no row is skipped or rotated twice."""
    conn.execute(COMPOSITE)
    conn.execute(COMPOSITE_ROWS)
    before = snapshot(conn)
    conn.execute("SET datestyle = 'SQL, DMY'")
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 200, p_workers => 2, p_max_batches => 3,"
        " p_quiet => true)"
    )
    conn.execute("SET datestyle = 'SQL, MDY'")
    for _ in range(4):
        conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 200, p_quiet => true)")
    conn.execute("RESET datestyle")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_drf_authtoken_token_is_walked_by_user_id_when_the_token_is_the_primary_key(
    conn: psycopg.Connection,
) -> None:
    """The token `key` is the primary key: refused by default with a hint naming user_id; with
    p_key => '{user_id}' every token is new, once, and verify passes."""
    conn.execute(AUTHTOKEN)
    conn.execute(AUTHTOKEN_ROWS)
    before = snapshot(conn, "authtoken_token", "key", key="user_id")
    checksum = table_checksum(conn, "authtoken_token")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
        conn.execute("CALL token_rotation.rotate('authtoken_token', p_column => 'key')")
    assert "primary key" in str(refused.value)
    assert "p_key, e.g. user_id" in (refused.value.diag.message_hint or "")
    assert table_checksum(conn, "authtoken_token") == checksum
    conn.execute(
        "CALL token_rotation.rotate('authtoken_token', p_column => 'key', p_key => '{user_id}',"
        " p_batch_size => 300, p_quiet => true)"
    )
    assert_rotated_exactly_once(
        conn, before, last_run_id(conn, "authtoken_token"), "authtoken_token", "key", key="user_id"
    )


def test_the_cli_rotates_authtoken_token_with_key_user_id_in_two_workers(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`rotate --table authtoken_token --column key --key user_id --workers 2`: every token new, once."""
    conn.execute(AUTHTOKEN)
    conn.execute(AUTHTOKEN_ROWS)
    before = snapshot(conn, "authtoken_token", "key", key="user_id")
    result = CliRunner().invoke(
        cli,
        [
            "--dsn",
            dsn,
            "rotate",
            "--table",
            "authtoken_token",
            "--column",
            "key",
            "--key",
            "user_id",
            "--workers",
            "2",
            "--batch-size",
            "250",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert_rotated_exactly_once(
        conn, before, last_run_id(conn, "authtoken_token"), "authtoken_token", "key", key="user_id"
    )


def test_a_resumed_run_keeps_its_key_and_refuses_another(conn: psycopg.Connection) -> None:
    """A run started with p_key resumes with a bare CALL (which alone would be refused: the token is the
    primary key); a resume that names another key is refused with 55006 and changes nothing."""
    conn.execute(AUTHTOKEN)
    conn.execute(AUTHTOKEN_ROWS)
    conn.execute("ALTER TABLE authtoken_token ADD COLUMN n integer NOT NULL DEFAULT 0")
    conn.execute("UPDATE authtoken_token SET n = user_id + 1")
    conn.execute("CREATE UNIQUE INDEX ON authtoken_token (n)")
    before = snapshot(conn, "authtoken_token", "key", key="user_id")
    conn.execute(
        "CALL token_rotation.rotate('authtoken_token', p_column => 'key', p_key => '{user_id}',"
        " p_batch_size => 300, p_max_batches => 2, p_quiet => true)"
    )
    with pytest.raises(psycopg.errors.ObjectInUse) as refused:
        conn.execute(
            "CALL token_rotation.rotate('authtoken_token', p_column => 'key', p_key => '{n}',"
            " p_quiet => true)"
        )
    assert "walks the key (user_id)" in str(refused.value)
    conn.execute(
        "CALL token_rotation.rotate('authtoken_token', p_column => 'key', p_batch_size => 300,"
        " p_quiet => true)"
    )
    assert_rotated_exactly_once(
        conn, before, last_run_id(conn, "authtoken_token"), "authtoken_token", "key", key="user_id"
    )


@pytest.mark.parametrize(
    "ddl, key, error, message, hint",
    [
        (
            "CREATE TABLE t (id integer PRIMARY KEY, token uuid DEFAULT gen_random_uuid(), u integer UNIQUE)",
            "{u}",
            psycopg.errors.InvalidParameterValue,
            "nullable",
            "SET NOT NULL",
        ),
        (
            "CREATE TABLE t (id integer PRIMARY KEY, token uuid DEFAULT gen_random_uuid(),"
            " u integer NOT NULL)",
            "{u}",
            psycopg.errors.InvalidParameterValue,
            "no unique index",
            "CREATE UNIQUE INDEX",
        ),
        (
            "CREATE TABLE t (id integer PRIMARY KEY, token uuid DEFAULT gen_random_uuid(),"
            " u integer NOT NULL); CREATE UNIQUE INDEX ON t (u) WHERE u > 0",
            "{u}",
            psycopg.errors.InvalidParameterValue,
            "no unique index",
            "e.g. id",
        ),
        (
            "CREATE TABLE t (id integer PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid())",
            "{id,token}",
            psycopg.errors.FeatureNotSupported,
            "is in the key",
            "e.g. id",
        ),
        (
            "CREATE TABLE t (id integer PRIMARY KEY, token uuid DEFAULT gen_random_uuid())",
            "{no_such}",
            psycopg.errors.UndefinedColumn,
            "do not exist",
            "existing columns",
        ),
        (
            "CREATE TABLE t (id integer PRIMARY KEY, token uuid DEFAULT gen_random_uuid())",
            "{id,id}",
            psycopg.errors.InvalidParameterValue,
            "distinct columns",
            "without repeats",
        ),
        (
            "CREATE TABLE t (id integer, token uuid DEFAULT gen_random_uuid(), u integer NOT NULL UNIQUE)",
            None,
            psycopg.errors.InvalidTableDefinition,
            "no primary key",
            "e.g. u",
        ),
    ],
    ids=[
        "nullable",
        "not-unique",
        "partial-unique-index",
        "token-in-key",
        "no-such-column",
        "repeated",
        "no-primary-key-suggests-unique",
    ],
)
def test_a_key_that_cannot_serve_is_refused_and_nothing_changes(
    conn: psycopg.Connection, ddl: str, key: str | None, error: type[psycopg.Error], message: str, hint: str
) -> None:
    """Nullable key columns, no unique index covering them (a partial one does not), the token in the key,
    unknown or repeated columns, no primary key: each refused with its SQLSTATE, the reason and a hint (a
    usable unique key when there is one), before any change."""
    conn.execute(ddl)
    conn.execute(
        "INSERT INTO t (id, u) SELECT g, g FROM generate_series(1, 50) AS g"
        if "u integer" in ddl
        else "INSERT INTO t (id) SELECT g FROM generate_series(1, 50) AS g"
    )
    checksum = table_checksum(conn, "t")
    with pytest.raises(error) as refused:
        conn.execute("CALL token_rotation.rotate('t', p_key => %s::name[])", (key,))
    assert message in str(refused.value)
    assert hint in (refused.value.diag.message_hint or "")
    assert table_checksum(conn, "t") == checksum
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_the_cli_says_key_for_p_key_in_a_refusal(dsn: str, conn: psycopg.Connection) -> None:
    """A refusal that names p_key reads --key on the command line, and exits 2 (bad input)."""
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, token uuid DEFAULT gen_random_uuid(), u integer)")
    result = CliRunner().invoke(
        cli, ["--dsn", dsn, "rotate", "--table", "t", "--key", "u"], catch_exceptions=False
    )
    assert result.exit_code == 2, result.output
    assert "nullable" in result.output and "--key" in result.output and "p_key" not in result.output


def test_dry_run_plans_with_the_key_given(dsn: str, conn: psycopg.Connection) -> None:
    """`rotate --dry-run --key user_id` plans the walk by user_id and changes nothing."""
    conn.execute(AUTHTOKEN)
    conn.execute(AUTHTOKEN_ROWS)
    checksum = table_checksum(conn, "authtoken_token")
    result = CliRunner().invoke(
        cli,
        [
            "--dsn",
            dsn,
            "rotate",
            "--table",
            "authtoken_token",
            "--column",
            "key",
            "--key",
            "user_id",
            "--dry-run",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "(key user_id)" in result.output and "2,000 rows" in result.output
    assert table_checksum(conn, "authtoken_token") == checksum


def test_a_key_of_char_and_numeric_columns_is_compared_with_their_modifiers(conn: psycopg.Connection) -> None:
    """A key (code char(6), price numeric(8,2)): each bound is cast to the column's full type (a bare
    ::character would cut 'ab0001' to 'a'), so every row is rotated once."""
    conn.execute(
        "CREATE TABLE t (code char(6) NOT NULL, price numeric(8,2) NOT NULL, id integer PRIMARY KEY,"
        " token uuid NOT NULL DEFAULT gen_random_uuid(), UNIQUE (code, price))"
    )
    conn.execute(
        "INSERT INTO t (code, price, id) SELECT 'ab' || lpad((g % 300)::text, 4, '0'), (g / 300) + 0.25, g"
        " FROM generate_series(1, 1500) AS g"
    )
    before = snapshot(conn, "t")
    conn.execute(
        "CALL token_rotation.rotate('t', p_key => '{code,price}', p_batch_size => 100, p_quiet => true)"
    )
    assert_rotated_exactly_once(conn, before, last_run_id(conn, "t"), "t")


def test_a_key_option_with_an_empty_name_is_bad_input(dsn: str) -> None:
    """`--key id,` names an empty column: exit 2 before any connection, saying how to write the list."""
    result = CliRunner().invoke(cli, ["--dsn", dsn, "rotate", "--table", "t", "--key", "id,"])
    assert result.exit_code == 2 and "empty column name" in result.output


def test_drf_authtoken_token_with_a_varchar_key_gets_hex_tokens_walked_by_user_id(
    dsn: str, conn: psycopg.Connection
) -> None:
    """DRF's real authtoken_token (key varchar(40) primary key, user_id unique): `rotate --column key --key
    user_id --format hex:20 --workers 2` gives every row a new, well-formed, unique 40-digit hex key, once."""
    conn.execute(
        "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY,"
        " created timestamptz NOT NULL DEFAULT now(), user_id integer NOT NULL UNIQUE)"
    )
    conn.execute(
        "INSERT INTO authtoken_token (key, user_id)"
        " SELECT encode(sha256(g::text::bytea), 'hex')::varchar(40), g FROM generate_series(1, 3000) AS g"
    )
    conn.execute("CREATE TEMP TABLE old_keys AS SELECT user_id, key FROM authtoken_token")
    result = CliRunner().invoke(
        cli,
        ["--dsn", dsn, "rotate", "--table", "authtoken_token", "--column", "key", "--key", "user_id",
         "--format", "hex:20", "--workers", "2", "--batch-size", "400"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    row = conn.execute(
        "SELECT count(*), count(DISTINCT t.key), count(*) FILTER (WHERE t.key ~ '^[0-9a-f]{40}$'),"
        " count(*) FILTER (WHERE t.key = o.key), count(*) FILTER (WHERE t.key IN (SELECT key FROM old_keys))"
        " FROM authtoken_token t JOIN old_keys o USING (user_id)"
    ).fetchone()
    assert row == (3000, 3000, 3000, 0, 0)
    checks = conn.execute(
        "SELECT bool_and(ok) FROM token_rotation.verify(%s)", (last_run_id(conn, "authtoken_token"),)
    ).fetchone()
    assert checks == (True,)
