"""Token formats (hex, base64url, bytes, a user's function, null), the prefix, the grace columns, the checks
that refuse a format before anything changes (too long for the column, wrong type, unknown function, a
foreign key without ON UPDATE CASCADE), and a run that keeps its options across resumes."""

from __future__ import annotations

import json

import psycopg
import pytest

from background import run_cli
from helpers import last_run_id, table_checksum

ROWS = 5000


def api_keys(conn: psycopg.Connection, rows: int = ROWS) -> dict[int, str]:
    """A varchar(64) hex-key table with grace columns; returns the old keys by id."""
    conn.execute("""
        CREATE TABLE api_keys (
              id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
            , api_key          varchar(64) NOT NULL UNIQUE
            , previous_api_key varchar(64)
            , rotated_at       timestamptz
            , short_key        varchar(40)
            , label            text NOT NULL DEFAULT 'k'
        )""")
    conn.execute(
        "INSERT INTO api_keys (api_key, short_key) SELECT md5(g::text), left(md5(g::text), 40)"
        " FROM generate_series(1, %s) g",
        (rows,),
    )
    return dict(conn.execute("SELECT id, api_key FROM api_keys").fetchall())


def verify_ok(conn: psycopg.Connection, table: str) -> bool:
    run_id = last_run_id(conn, table)
    return all(r[0] for r in conn.execute("SELECT ok FROM token_rotation.verify(%s)", (run_id,)).fetchall())


def test_hex_with_grace_columns_gives_every_row_a_new_key_and_keeps_the_old_one(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`--format hex:32 --previous-column previous_api_key --rotated-at-column rotated_at` on a varchar(64)
    column: every key is new, 64 lower-case hex digits, unique; each row's previous_api_key is its old key
    and rotated_at is set; verify passes."""
    before = api_keys(conn)
    done = run_cli(
        dsn, "rotate", "--table", "api_keys", "--column", "api_key", "--format", "hex:32",
        "--previous-column", "previous_api_key", "--rotated-at-column", "rotated_at", "--batch-size", "700",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = conn.execute("SELECT id, api_key, previous_api_key, rotated_at FROM api_keys").fetchall()
    assert len(rows) == ROWS
    assert all(key != before[i] and prev == before[i] and at is not None for i, key, prev, at in rows)
    assert all(len(key) == 64 and set(key) <= set("0123456789abcdef") for _, key, _, _ in rows)
    assert len({key for _, key, _, _ in rows}) == ROWS
    assert verify_ok(conn, "api_keys")


def test_bytes_format_fills_a_bytea_column_with_unique_random_bytes(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`--format bytes:32` on a bytea column: every secret new, 32 bytes, unique, and no byte position is
    constant over the rows (the fixed version/variant bits of the uuids are left out)."""
    conn.execute("CREATE TABLE secrets (id int PRIMARY KEY, secret bytea NOT NULL UNIQUE)")
    conn.execute(
        "INSERT INTO secrets SELECT g, uuid_send(gen_random_uuid()) FROM generate_series(1, %s) g", (ROWS,)
    )
    before: dict[int, bytes] = dict(conn.execute("SELECT id, secret FROM secrets").fetchall())
    done = run_cli(dsn, "rotate", "--table", "secrets", "--column", "secret", "--format", "bytes:32")
    assert done.returncode == 0, done.stderr
    rows = conn.execute("SELECT id, secret FROM secrets").fetchall()
    assert all(bytes(s) != bytes(before[i]) and len(s) == 32 for i, s in rows)
    assert len({bytes(s) for _, s in rows}) == ROWS
    # every bit position takes both values somewhere: no fixed uuid bits leaked into the secret
    for position in range(32 * 8):
        ones = conn.execute(
            "SELECT count(*) FILTER (WHERE get_bit(secret, %s) = 1) FROM secrets", (position,)
        ).fetchone()
        assert ones is not None and 0 < ones[0] < ROWS, position
    assert verify_ok(conn, "secrets")


def test_base64url_with_a_prefix_gives_url_safe_unpadded_tokens(dsn: str, conn: psycopg.Connection) -> None:
    """`--format base64url:24 --prefix tk_` on a text column: every token new, tk_ then 32 characters of
    A-Z a-z 0-9 - _ (24 bytes, no padding), unique."""
    conn.execute("CREATE TABLE sessions (id int PRIMARY KEY, token text NOT NULL UNIQUE)")
    conn.execute("INSERT INTO sessions SELECT g, 'old' || g FROM generate_series(1, %s) g", (ROWS,))
    done = run_cli(dsn, "rotate", "--table", "sessions", "--format", "base64url:24", "--prefix", "tk_")
    assert done.returncode == 0, done.stderr
    tokens = [r[0] for r in conn.execute("SELECT token FROM sessions").fetchall()]
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert all(t.startswith("tk_") and len(t) == 35 and set(t[3:]) <= alphabet for t in tokens)
    assert len(set(tokens)) == ROWS
    assert verify_ok(conn, "sessions")


def test_a_users_volatile_function_makes_the_tokens(conn: psycopg.Connection) -> None:
    """`p_format => 'function:app.new_token'` calls the user's zero-argument function once per row."""
    conn.execute("CREATE SCHEMA app")
    conn.execute(
        "CREATE FUNCTION app.new_token() RETURNS text LANGUAGE sql VOLATILE"
        " AS $$SELECT 'fn_' || replace(gen_random_uuid()::text, '-', '')$$"
    )
    conn.execute("CREATE TABLE sessions (id int PRIMARY KEY, token text NOT NULL UNIQUE)")
    conn.execute("INSERT INTO sessions SELECT g, 'old' || g FROM generate_series(1, 1000) g")
    conn.execute(
        "CALL token_rotation.rotate('sessions', p_format => 'function:app.new_token', p_quiet => true)"
    )
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE token ~ '^fn_[0-9a-f]{32}$'), count(DISTINCT token) FROM sessions"
    ).fetchone()
    assert row == (1000, 1000)


@pytest.mark.parametrize(
    ("call", "sqlstate", "words"),
    [
        ("p_column => 'short_key', p_format => 'hex:32'", "22001", "does not fit column short_key"),
        ("p_column => 'api_key', p_format => 'function:public.no_such_fn'", "42883", "does not exist"),
        ("p_column => 'api_key', p_format => 'function:public.int_token'", "42804", "does not return"),
        ("p_column => 'api_key', p_format => 'function:public.stable_token'", "22023", "is not VOLATILE"),
        ("p_column => 'api_key', p_format => 'bytes:16'", "42804", "needs a bytea column"),
        ("p_column => 'api_key'", "42804", "not of type uuid"),
        ("p_column => 'api_key', p_format => 'hex:0'", "22023", "invalid token format"),
        ("p_column => 'api_key', p_format => 'hex:16', p_prefix => 'x''y'", "22023", "invalid token prefix"),
        ("p_column => 'api_key', p_format => 'null'", "22023", "clears a previous column only"),
        (
            "p_column => 'api_key', p_format => 'hex:16', p_previous_column => 'label'",
            "42804",
            "previous token",
        ),
        (
            "p_column => 'api_key', p_format => 'hex:16', p_rotated_at_column => 'label'",
            "42804",
            "rotation time",
        ),
    ],
)
def test_a_format_that_does_not_fit_is_refused_before_any_change(
    conn: psycopg.Connection, call: str, sqlstate: str, words: str
) -> None:
    """Each bad format, prefix or grace column fails with its SQLSTATE and says why; the table is
    unchanged and no run is started."""
    api_keys(conn, rows=100)
    conn.execute("CREATE FUNCTION public.int_token() RETURNS integer LANGUAGE sql VOLATILE AS 'SELECT 1'")
    conn.execute("CREATE FUNCTION public.stable_token() RETURNS text LANGUAGE sql STABLE AS 'SELECT ''x'''")
    before = table_checksum(conn, "api_keys")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(f"CALL token_rotation.rotate('api_keys', {call}, p_quiet => true)")
    assert refused.value.sqlstate == sqlstate
    assert words in str(refused.value)
    assert refused.value.diag.message_hint
    assert table_checksum(conn, "api_keys") == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_a_token_referenced_without_on_update_cascade_is_refused_naming_the_constraint(
    conn: psycopg.Connection,
) -> None:
    """A foreign key to the token column without ON UPDATE CASCADE is refused (55 dependent objects, the
    constraint named); with ON UPDATE CASCADE the run goes on and the referencing rows follow."""
    api_keys(conn, rows=200)
    conn.execute(
        "CREATE TABLE uses (id int PRIMARY KEY,"
        " key varchar(64) CONSTRAINT uses_key_fk REFERENCES api_keys (api_key))"
    )
    conn.execute("INSERT INTO uses SELECT id, api_key FROM api_keys")
    before = table_checksum(conn, "api_keys")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as refused:
        conn.execute("CALL token_rotation.rotate('api_keys', p_column => 'api_key', p_format => 'hex:32')")
    assert "uses_key_fk" in (refused.value.diag.message_detail or "")
    assert table_checksum(conn, "api_keys") == before
    conn.execute("ALTER TABLE uses DROP CONSTRAINT uses_key_fk")
    conn.execute(
        "ALTER TABLE uses ADD CONSTRAINT uses_key_fk FOREIGN KEY (key) REFERENCES api_keys (api_key)"
        " ON UPDATE CASCADE"
    )
    conn.execute(
        "CALL token_rotation.rotate('api_keys', p_column => 'api_key', p_format => 'hex:32', p_quiet => true)"
    )
    row = conn.execute(
        "SELECT count(*) FROM uses u JOIN api_keys k ON k.id = u.id"
        " WHERE u.key = k.api_key AND k.api_key ~ '^[0-9a-f]{64}$'"
    ).fetchone()
    assert row == (200,)


def test_the_previous_column_is_cleared_in_batches_by_a_null_run(dsn: str, conn: psycopg.Connection) -> None:
    """After a run that kept old keys in previous_api_key, `--column previous_api_key --format null` clears
    it in batches (one log row per batch), leaving the keys alone."""
    api_keys(conn, rows=1000)
    first = run_cli(
        dsn, "rotate", "--table", "api_keys", "--column", "api_key", "--format", "hex:32",
        "--previous-column", "previous_api_key",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    keys: dict[int, str] = dict(conn.execute("SELECT id, api_key FROM api_keys").fetchall())
    done = run_cli(
        dsn, "rotate", "--table", "api_keys", "--column", "previous_api_key", "--format", "null",
        "--batch-size", "300",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT count(previous_api_key) FROM api_keys").fetchone() == (0,)
    assert dict(conn.execute("SELECT id, api_key FROM api_keys").fetchall()) == keys
    run_id = last_run_id(conn, "api_keys")
    assert conn.execute(
        "SELECT count(*) FROM token_rotation.batches WHERE run_id = %s", (run_id,)
    ).fetchone() == (4,)


def test_a_bare_call_resumes_with_the_options_the_run_started_with(conn: psycopg.Connection) -> None:
    """A run started with a format, grace columns, batch size, sleep and lock timeout, stopped by
    p_max_batches, resumes from a bare CALL with all of them (same batch size, same format, grace columns
    filled for every row)."""
    before = api_keys(conn, rows=1000)
    conn.execute(
        "CALL token_rotation.rotate('api_keys', p_column => 'api_key', p_format => 'hex:20',"
        " p_batch_size => 100,"
        " p_sleep => '1ms', p_lock_timeout => '3s', p_previous_column => 'previous_api_key',"
        " p_rotated_at_column => 'rotated_at', p_max_batches => 2, p_quiet => true)"
    )
    conn.execute("CALL token_rotation.rotate('api_keys', p_quiet => true)")
    rows = conn.execute("SELECT id, api_key, previous_api_key, rotated_at FROM api_keys").fetchall()
    assert all(len(k) == 40 and p == before[i] and at is not None for i, k, p, at in rows)
    sizes = conn.execute("SELECT DISTINCT batch_size FROM token_rotation.batches").fetchall()
    assert sizes == [(100,)]
    options = conn.execute("SELECT options FROM token_rotation.runs").fetchone()
    assert options is not None
    assert options[0]["sleep"] == "00:00:00.001" and options[0]["lock_timeout"] == "00:00:03"


def test_a_resume_that_gives_another_value_changes_it_and_says_so(dsn: str, conn: psycopg.Connection) -> None:
    """Resuming with another sleep changes the stored option for the rest of the run: a NOTICE (SQLSTATE
    TROPT) in psql, a line from the CLI; a resume that gives nothing new says nothing."""
    api_keys(conn, rows=1000)
    conn.execute(
        "CALL token_rotation.rotate('api_keys', p_column => 'api_key', p_format => 'hex:20',"
        " p_batch_size => 100,"
        " p_sleep => '1ms', p_max_batches => 1, p_quiet => true)"
    )
    notices: list[tuple[str | None, str]] = []  # read in the handler: a Diagnostic lives only there
    conn.add_notice_handler(lambda d: notices.append((d.sqlstate, d.message_primary or "")))
    conn.execute(
        "CALL token_rotation.rotate('api_keys', p_sleep => '2ms', p_max_batches => 1, p_quiet => true)"
    )
    changed = [message for state, message in notices if state == "TROPT"]
    assert len(changed) == 1 and "sleep 00:00:00.001 -> 00:00:00.002" in changed[0]
    notices.clear()
    conn.execute(
        "CALL token_rotation.rotate('api_keys', p_sleep => '2ms', p_max_batches => 1, p_quiet => true)"
    )
    assert [state for state, _ in notices if state == "TROPT"] == []
    done = run_cli(dsn, "rotate", "--table", "api_keys", "--batch-size", "250", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    notes = [e["message"] for e in events if e.get("event") == "note"]
    assert any("batch_size 100 -> 250" in n for n in notes), notes
    started = next(e for e in events if e.get("event") == "started")
    assert started["format"] == "hex:20" and started["column"] == "api_key"
    assert conn.execute("SELECT options->>'sleep' FROM token_rotation.runs").fetchone() == ("00:00:00.002",)


def test_a_null_option_means_not_given_and_a_new_run_takes_the_default(conn: psycopg.Connection) -> None:
    """p_batch_size => NULL and p_lock_timeout => NULL on a new run are the defaults (default_options(): a
    first batch of 1000 adapted to 10 ms, 1s), stored with the run."""
    api_keys(conn, rows=10)
    conn.execute(
        "CALL token_rotation.rotate('api_keys', p_column => 'api_key', p_format => 'hex:32',"
        " p_batch_size => NULL,"
        " p_lock_timeout => NULL, p_quiet => true)"
    )
    row = conn.execute(
        "SELECT options->>'batch_size', options->>'target_batch_time', options->>'lock_timeout'"
        " FROM token_rotation.runs"
    ).fetchone()
    assert row == ("1000", "00:00:00.01", "00:00:01")


def test_base64url_of_any_length_has_no_padding_and_no_line_breaks(conn: psycopg.Connection) -> None:
    """base64url:17 (not a multiple of 3: base64 would pad) and base64url:100 (past base64's 76-character
    lines) give exactly ceil(4N/3) URL-safe characters, nothing else."""
    conn.execute("CREATE TABLE sessions (id int PRIMARY KEY, token text NOT NULL UNIQUE)")
    conn.execute("INSERT INTO sessions SELECT g, 'old' || g FROM generate_series(1, 200) g")
    for n, length in ((17, 23), (100, 134)):
        conn.execute(
            "CALL token_rotation.rotate('sessions', p_format => %s, p_quiet => true)", (f"base64url:{n}",)
        )
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE token ~ ('^[A-Za-z0-9_-]{' || %s || '}$')) FROM sessions",
            (length,),
        ).fetchone()
        assert row == (200,), n


def test_the_dry_run_checks_and_samples_the_format_without_changing_a_row(
    dsn: str, conn: psycopg.Connection
) -> None:
    """`rotate --dry-run --format hex:32 ...` plans the run (its sample batch uses the format, then rolls
    back); with a format too long for the column it exits 2 with the length in the message."""
    api_keys(conn, rows=500)
    before = table_checksum(conn, "api_keys")
    done = run_cli(
        dsn, "rotate", "--table", "api_keys", "--column", "api_key", "--format", "hex:32",
        "--previous-column", "previous_api_key", "--dry-run", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    refused = run_cli(
        dsn, "rotate", "--table", "api_keys", "--column", "short_key", "--format", "hex:32", "--dry-run"
    )
    assert refused.returncode == 2 and "does not fit column short_key" in refused.stderr
    assert table_checksum(conn, "api_keys") == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
