"""Issue 17, the driver's side: findings 10 (--throttle-query escapes its promise), 11 (secrets and control
characters in what the command line prints) and 4 (the driver's own queries resolved through the caller's
search path). Each test plays the attack and asserts that it fails."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from token_rotation import connection, errors, rotation, throttle
from token_rotation.errors import redact

from background import ROOT, cli_env, run_cli
from helpers import make_table, snapshot

# shaped like a base64url:16 token (22 characters of A-Z a-z 0-9 - _): the tool's own format
BASE64URL_SECRET = "Q2x1ZS1pbl90aGVfZGFyaw"
SSL_PASSWORD = "Ssl-pw-never-print-me-7d1c"
PASSWORD = "Pw-never-print-me-8e2f"


def run_cli_env(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the database given in DATABASE_URL (as an operator's shell would), run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "token_rotation", *args],
        capture_output=True,
        text=True,
        env=cli_env(DATABASE_URL=database_url),
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
def loot(conn: psycopg.Connection) -> Iterator[str]:
    """public.loot: a table a throttle query must never write to."""
    conn.execute("CREATE TABLE public.loot (n integer)")
    yield "public.loot"


def test_a_throttle_query_that_smuggles_more_statements_is_refused_and_runs_none(
    dsn: str, conn: psycopg.Connection, loot: str
) -> None:
    """A throttle query that closes the driver's wrapper and adds SET, COMMIT and INSERT is refused (exit 2)
    and none of its statements ran: nothing inserted, no run started."""
    make_table(conn, rows=500)
    before = snapshot(conn)
    query = (
        "SELECT false) AS x; SET default_transaction_read_only = off; SET statement_timeout = 0; COMMIT; "
        f"INSERT INTO {loot} VALUES (1); SELECT * FROM (SELECT false"
    )
    done = run_cli(dsn, "rotate", "--table", "tickets", "--throttle-query", query)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--throttle-query failed" in done.stderr
    assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(loot))).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
    assert snapshot(conn).tokens == before.tokens


def test_settings_a_throttle_query_makes_do_not_survive_to_its_next_poll(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A throttle query that calls set_config(..., false) in its one SELECT (statement_timeout 0, a read-write
    default, a marker of its own): its next poll sees none of it, nor does its session afterwards."""
    make_table(conn, rows=10)
    oid = conn.execute("SELECT 'public.tickets'::regclass::oid").fetchone()
    assert oid is not None
    # says wait only if its marker from an earlier poll is still set; sets the marker and the settings
    query = (
        "SELECT coalesce(current_setting('tr_attack.marker', true), '') = 'stayed'"
        " OR set_config('tr_attack.marker', 'stayed', false) IS NULL"
        " OR set_config('statement_timeout', '0', false) IS NULL"
        " OR set_config('default_transaction_read_only', 'off', false) IS NULL"
    )
    gate = throttle.ThrottleQuery(dsn, "tr-attack", query, int(oid[0]))
    try:
        assert gate.check() is False
        assert gate.verdict() == throttle.Verdict(False, None)  # the second poll: the marker is gone
        with gate.conn.cursor() as cur:
            seen = cur.execute(
                "SELECT coalesce(current_setting('tr_attack.marker', true), ''),"
                " current_setting('statement_timeout'), current_setting('default_transaction_read_only')"
            ).fetchone()
        assert seen == ("", "1s", "on")
    finally:
        gate.close(None)


def test_a_token_quoted_in_a_throttle_query_error_is_not_printed(dsn: str, conn: psycopg.Connection) -> None:
    """A throttle query whose error message quotes a base64url token (an invalid cast of it) is refused
    without the token in anything printed."""
    make_table(conn, rows=100)
    conn.execute("CREATE TABLE public.api_keys (key text)")
    conn.execute("INSERT INTO public.api_keys VALUES (%s)", (BASE64URL_SECRET,))
    done = run_cli(
        dsn,
        "rotate",
        "--table",
        "tickets",
        "--throttle-query",
        "SELECT key::integer > 0 FROM public.api_keys",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "invalid input syntax for type integer" in done.stderr
    assert BASE64URL_SECRET not in done.stdout + done.stderr
    assert BASE64URL_SECRET[:12] not in done.stdout + done.stderr


def test_sslpassword_and_password_in_database_url_are_never_printed(
    dsn: str, conn: psycopg.Connection
) -> None:
    """DATABASE_URL with a password and an sslpassword: install, rotate and rotate --json print the database
    they use, and neither secret."""
    make_table(conn, rows=300)
    secret_dsn = make_conninfo(dsn, password=PASSWORD, sslpassword=SSL_PASSWORD)
    outputs = {
        "install": run_cli_env(secret_dsn, "install"),
        "rotate": run_cli_env(
            secret_dsn, "rotate", "--table", "tickets", "--no-reclaim", "--max-batches", "1"
        ),
        "rotate --json": run_cli_env(secret_dsn, "rotate", "--table", "tickets", "--no-reclaim", "--json"),
    }
    for name, done in outputs.items():
        assert done.returncode == 0, (name, done.stderr)
    assert "installed token_rotation in" in outputs["install"].stdout
    assert "rotating run" in outputs["rotate"].stdout
    events = [json.loads(line) for line in outputs["rotate --json"].stdout.splitlines()]
    assert any("database" in e for e in events)
    leaked = [
        n
        for n, d in outputs.items()
        if SSL_PASSWORD in d.stdout + d.stderr or PASSWORD in d.stdout + d.stderr
    ]
    assert leaked == []


def test_control_characters_in_another_roles_run_do_not_reach_the_terminal(
    dsn: str, conn: psycopg.Connection, attacker_conn: psycopg.Connection
) -> None:
    """Another role's run whose throttled reason and last error carry terminal escapes, a bell, a carriage
    return and C1 controls: `status` (plain and --json) prints them without any control character, the
    newline as a space."""
    attacker_conn.execute(
        "CALL token_rotation.rotate('public.attacker_tickets', p_batch_size => 100, p_max_batches => 1)"
    )
    evil = "\x1b]0;owned\x07\x1b[2Jheld\r\nby \x9b31mthe\x85 dba\x00"[:-1]
    conn.execute("UPDATE token_rotation.slices SET throttled = %s", (evil,))
    conn.execute("UPDATE token_rotation.runs SET last_error = %s", (evil,))
    for args in (("status",), ("status", "--json")):
        done = run_cli(dsn, *args)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        controls = [c for c in out if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
        assert controls == [], args
        assert "\\u001b" not in out and "\\u0007" not in out, args
    plain = run_cli(dsn, "status").stdout
    assert "held by" in plain and "the dba" in plain


def test_status_prometheus_never_calls_a_look_alike_function_in_public(
    dsn: str, conn: psycopg.Connection, attacker_conn: psycopg.Connection, victim: str
) -> None:
    """The attacker plants public.format(text, name, name), an exact-type look-alike that beats
    pg_catalog.format(text, VARIADIC "any"), recording each call: a superuser's `status --format prometheus`
    (and status, verify, rotate) never call it."""
    attacker_conn.execute("CREATE TABLE public.calls (who name)")
    attacker_conn.execute("GRANT INSERT ON public.calls TO PUBLIC")
    attacker_conn.execute("""
        CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE sql VOLATILE AS $$
            INSERT INTO public.calls VALUES (current_user);
            SELECT pg_catalog.format($1, $2, $3)
        $$""")
    attacker_conn.execute("GRANT EXECUTE ON FUNCTION public.format(text, name, name) TO PUBLIC")
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_max_batches => 1)")
    conn.execute("SELECT format('%I.%I', 'x'::name, 'y'::name)")  # an unqualified call: the look-alike wins
    assert conn.execute("SELECT count(*) FROM public.calls").fetchone() == (1,)
    conn.execute("TRUNCATE public.calls")
    for args in (
        ("status", "--format", "prometheus"),
        ("status",),
        ("status", "--json", "--table", "tickets"),
        ("rotate", "--table", "tickets", "--no-reclaim", "--batch-size", "200"),
        ("verify", "--table", "tickets"),
    ):
        done = run_cli(dsn, *args)
        assert done.returncode == 0, (args, done.stderr)
    assert conn.execute("SELECT count(*) FROM public.calls").fetchone() == (0,)


def test_a_workers_own_query_never_calls_a_look_alike_operator_in_public(
    dsn: str, conn: psycopg.Connection, attacker_conn: psycopg.Connection, victim: str
) -> None:
    """The attacker plants public.=(regclass, regclass) (pg_catalog has none: an exact-type look-alike beats
    the oid = oid the comparison would use); the worker's connection keeps the caller's search_path for the
    table's triggers, and the driver's own query on it (is there more work?) never calls the look-alike."""
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_max_batches => 1)")
    attacker_conn.execute("CREATE TABLE public.calls (who name)")
    attacker_conn.execute("GRANT INSERT ON public.calls TO PUBLIC")
    attacker_conn.execute("""
        CREATE FUNCTION public.regclass_eq(regclass, regclass) RETURNS boolean LANGUAGE sql VOLATILE AS $$
            INSERT INTO public.calls VALUES (current_user);
            SELECT $1::oid OPERATOR(pg_catalog.=) $2::oid
        $$""")
    attacker_conn.execute(
        "CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = public.regclass_eq)"
    )
    conn.execute("SELECT 'public.tickets'::regclass = 'public.tickets'::regclass")  # unqualified: it wins
    assert conn.execute("SELECT count(*) FROM public.calls").fetchone() == (1,)
    conn.execute("TRUNCATE public.calls")
    oid = conn.execute("SELECT 'public.tickets'::regclass::oid").fetchone()
    assert oid is not None
    with connection.connect(dsn, application_name="tr-worker") as worker:  # as rotation.py's workers connect
        assert worker.execute(rotation.MORE_WORK, (oid[0],)).fetchone() == (True,)
    assert conn.execute("SELECT count(*) FROM public.calls").fetchone() == (0,)


# token-shaped values the tool can write (formats uuid, hex:N, base64url:N, bytes:N, with a prefix) and
# libpq secrets; each must be hidden by redact()
SECRETS = {
    "uuid": "3f1e2d4c-5b6a-4789-8abc-def012345678",
    "uuid without hyphens": "3F1E2D4C5B6A47898ABCDEF012345678",
    "hex:16": "9c41d2e07b3a5f68a1c2e4d6f8091b3c",
    "hex:32 behind a prefix": "tok_" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0" * 2,
    "base64url:16": BASE64URL_SECRET,
    "base64url:32 behind a prefix": "sk_live_" + "aGVsbG8tV29ybGQ_MTIzNDU2Nzg5MGFiY2RlZmdoaWo",
    "base64url behind a dotted prefix": "app.v1:" + BASE64URL_SECRET,
    "bytes:16": "\\x9c41d2e07b3a5f68a1c2e4d6f8091b3c",
    "bytes:2": "\\x9c41",
}
PASSWORDS = {
    "password": f"host=db password={PASSWORD} dbname=x",
    "quoted password": "host=db password='two words' dbname=x",
    "sslpassword": f"host=db sslpassword={SSL_PASSWORD}",
    "oauth_client_secret": "oauth_client_secret=s3cr3t-value",
    "url": f"postgresql://app:{PASSWORD}@db:5432/x",
}
# server text an operator must still read, unchanged
READABLE = [
    "throttle query failed: InvalidTextRepresentation (SQLSTATE 22P02)",
    'relation "public.attacker_tickets_2024_01_01" does not exist',
    "replica lag 120 MB; archive queue 3 files; autovacuum on public.tickets",
    "pass the token column with --column (hint: token_rotation_rows_per_second)",
    "pid 12345 token-rotation/progress slice 2 idle in transaction since 2026-12-03 10:00:00+00",
    "format base64url:32 needs 43 characters, the column holds varchar(40)",
    "paused, lock retry 3 of 10, backup running",
    "deadbeef is a word; 0123456789abcdef (16 hex digits) is short",
]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_redact_hides_every_token_shape_the_tool_writes(name: str) -> None:
    """A uuid, hex, base64url or bytea token, alone or behind a prefix, in server text is replaced."""
    secret = SECRETS[name]
    out = redact(f"Failing row contains (42, {secret}, open).")
    assert "<" in out and out.startswith("Failing row contains (42, ") and out.endswith(", open).")
    core = secret.split("_")[-1].split(":")[-1].lstrip("\\x")
    assert core[:10] not in out


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_redact_hides_libpq_secrets(name: str) -> None:
    """A password, an sslpassword, an OAuth client secret or a URL's password in server text is masked."""
    out = redact(PASSWORDS[name])
    assert "***" in out
    assert all(s not in out for s in (PASSWORD, SSL_PASSWORD, "two words", "s3cr3t"))


@pytest.mark.parametrize("text", READABLE)
def test_redact_keeps_ordinary_messages_readable(text: str) -> None:
    """Words, identifiers, names with digits, SQLSTATEs, times and short hex stay as they are."""
    assert redact(text) == text


def test_redact_strips_control_characters_and_keeps_one_line() -> None:
    """Escape sequences, a bell, C1 controls and DEL go; a line break or a tab becomes a space."""
    assert redact("a\x1b[2Jb\x07\r\nc\td\x85e\x9b31m\x7ff\x00\nx") == "a[2Jb c de31mf x"


def test_python_and_sql_redaction_agree(conn: psycopg.Connection) -> None:
    """token_rotation_internal.redact() in SQL gives what errors.redact() gives, on every sample above, on
    tokens drawn the way the tool draws them, and on control characters."""
    drawn = conn.execute(
        "SELECT gen_random_uuid()::text, replace(gen_random_uuid()::text, '-', ''),"
        " encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex'),"
        " rtrim(translate(encode(uuid_send(gen_random_uuid()), 'base64'), '+/', '-_'), '='),"
        " (uuid_send(gen_random_uuid()))::text"
    ).fetchone()
    assert drawn is not None
    samples = [
        *(f"Failing row contains (42, {s}, open)." for s in SECRETS.values()),
        *PASSWORDS.values(),
        *READABLE,
        *(f"Key (token)=({s}) already exists" for s in drawn),
        "a\x1b[2Jb\x07\r\nc\td\x85e\x9b31m\x7ff",
        "mixed: tok_A1b2C3d4E5f6G7h8I9j0 and \\x00ff and password = 'x y'z and ://u:p@h",
    ]
    in_sql = [
        row[0]
        for row in conn.execute(
            "SELECT token_rotation_internal.redact(s) FROM unnest(%s::text[]) WITH ORDINALITY AS"
            " t(s, n) ORDER BY n",
            (samples,),
        ).fetchall()
    ]
    assert in_sql == [redact(s) for s in samples]
    assert conn.execute("SELECT token_rotation_internal.redact(NULL)").fetchone() == (None,)
    function = conn.execute(
        "SELECT provolatile, proconfig FROM pg_proc WHERE oid ="
        " 'token_rotation_internal.redact(text)'::regprocedure"
    ).fetchone()
    assert function == ("i", ["search_path=pg_catalog, pg_temp"])


# base64url tokens without a digit (about 2.5% of base64url:16 tokens): REDACTIONS alone let them pass, the
# run's own format hides them
DIGITLESS = {
    ("base64url:16", None): "DhOaRzfbetnNpafeGExsqA",
    ("base64url:16", "tk_"): "tk_DhOaRzfbetnNpafeGExsqA",
    ("base64url:16", "app.v1:"): "app.v1:DhOaRzfbetnNpafeGExsqA",
    ("base64url:16", None) + ("lower",): "dhoarzfbetnnpafegexsqa",
    ("base64url:300", None): "QwErTy-_" * 50,
}


@pytest.mark.parametrize("case", sorted(DIGITLESS, key=str))
def test_redact_with_the_runs_format_hides_a_token_of_any_mix(case: tuple[str, ...]) -> None:
    """A base64url token with no digit (or no upper case) is left by redact() alone, and hidden, prefix and
    all, once the run's format is protected; the protection ends with its context."""
    token_format, prefix = case[0], case[1]
    text = f"Key (token)=({DIGITLESS[case]}) already exists"
    assert redact(text) == text  # the hole that the run's format closes
    with errors.protecting():
        errors.protect(token_format, prefix)
        shown = redact(text)
        body = DIGITLESS[case].removeprefix(prefix or "")
        assert shown.endswith("<base64url>) already exists") and body[:8] not in shown, shown
    assert redact(text) == text


def test_the_runs_format_keeps_ordinary_messages_readable() -> None:
    """Under base64url:16's protection (22 characters), words, identifiers and names stay readable."""
    with errors.protecting():
        errors.protect("base64url:16", None)
        assert [redact(t) for t in READABLE] == READABLE


def test_python_and_sql_redaction_with_a_format_agree(conn: psycopg.Connection) -> None:
    """token_rotation_internal.redact(text, format, prefix) gives what errors.redact() gives under
    protect(format, prefix), and hides exactly the runs of the format's length: digit-free tokens of
    base64url:16 to :1024 (the long ones written in chunks of 200), behind a prefix or not, hidden; one
    character longer, kept; formats that need no rule of their own (uuid, hex, none) and ordinary messages, as
    redact() alone."""
    cases: list[tuple[str | None, str | None, str, bool]] = [
        (case[0], case[1], f"Key (token)=({token}) already exists", True) for case, token in DIGITLESS.items()
    ]
    for n in (16, 17, 18, 150, 151, 300, 1024):
        drawn = base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip("=")
        token = drawn.translate(str.maketrans("0123456789", "ABCDEFGHIJ"))
        assert len(token) == (4 * n + 2) // 3
        cases += [
            (f"base64url:{n}", None, f"x {token} y", True),
            (f"base64url:{n}", "k-", f"x k-{token}, y", True),
            (f"base64url:{n}", None, f"x {token}Z y", False),
        ]
    cases += [("uuid", None, t, False) for t in READABLE] + [("hex:16", "tk_", READABLE[4], False)]
    cases += [(None, None, READABLE[3], False)] + [("base64url:16", None, t, False) for t in READABLE]
    in_sql = [
        row[0]
        for row in conn.execute(
            "SELECT token_rotation_internal.redact(t, f, p)"
            " FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS c(f, p, t, n) ORDER BY n",
            ([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases]),
        ).fetchall()
    ]
    in_python = []
    for token_format, prefix, text, _ in cases:
        with errors.protecting():
            errors.protect(token_format, prefix)
            in_python.append(redact(text))
    assert in_sql == in_python
    assert [r != c[2] for r, c in zip(in_sql, cases, strict=True)] == [c[3] for c in cases]
    assert all("<base64url>" in r for r, c in zip(in_sql, cases, strict=True) if c[3])
