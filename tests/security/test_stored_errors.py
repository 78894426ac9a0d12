"""Finding 11 of issue 17, where the error is stored: runs.last_error, which every watching role reads, never
holds a token that a trigger's message quoted."""

from __future__ import annotations

import re

import psycopg
import pytest

from background import run_cli

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def test_a_triggers_message_quoting_a_live_token_is_stored_redacted(
    conn: psycopg.Connection, victim: str
) -> None:
    """A trigger that fails quoting the row's new and old token ends the CALL; runs.last_error keeps the
    SQLSTATE and the message with both tokens redacted."""
    conn.execute(
        "CREATE FUNCTION public.picky() RETURNS trigger LANGUAGE plpgsql AS $f$"
        " BEGIN IF NEW.id = 5000 THEN RAISE EXCEPTION 'token % replaced %', NEW.token, OLD.token; END IF;"
        " RETURN NEW; END $f$"
    )
    conn.execute(
        "CREATE TRIGGER picky BEFORE UPDATE ON public.tickets FOR EACH ROW EXECUTE FUNCTION public.picky()"
    )
    with pytest.raises(psycopg.errors.RaiseException):
        conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 100, p_quiet => true)")
    row = conn.execute("SELECT last_error FROM token_rotation.runs").fetchone()
    assert row is not None and row[0] is not None
    assert row[0].startswith("P0001: token ")
    assert UUID.search(row[0]) is None


DIGITLESS_TRIGGER = """
    CREATE FUNCTION public.no_digitless() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF NEW.key !~ '[0-9]' THEN  -- about 2.5% of base64url:16 tokens: quote the new token
            RAISE EXCEPTION 'key % has no digit', NEW.key;
        END IF;
        RETURN NEW;
    END $f$;
    CREATE TRIGGER no_digitless BEFORE UPDATE ON public.api_keys
        FOR EACH ROW EXECUTE FUNCTION public.no_digitless()
"""
# a base64url:16 token behind the prefix, as the trigger would quote it
PREFIXED = re.compile(r"tk_[A-Za-z0-9_-]{22}")


@pytest.fixture
def api_keys(conn: psycopg.Connection) -> str:
    """public.api_keys: 3,000 rows of a text key, and a trigger that fails quoting a new token that has no
    digit (the shape redact() alone missed); with 3,000 rows some batch meets one (0.975^3000 ~ 0)."""
    conn.execute("CREATE TABLE public.api_keys (id bigint PRIMARY KEY, key text NOT NULL)")
    conn.execute("INSERT INTO public.api_keys SELECT g, 'tk_0' || g FROM generate_series(1, 3000) AS g")
    conn.execute(DIGITLESS_TRIGGER)
    return "public.api_keys"


def test_a_quoted_token_without_a_digit_is_hidden_from_psql_last_error_and_other_roles(
    conn: psycopg.Connection, api_keys: str, attacker_conn: psycopg.Connection
) -> None:
    """A superuser's CALL from psql meets the trigger: the error it raises, runs.last_error and what another
    rotating role reads in the progress view say <base64url> where the trigger quoted the token."""
    with pytest.raises(psycopg.errors.RaiseException) as raised:
        conn.execute(
            "CALL token_rotation.rotate('public.api_keys', p_column => 'key', p_format => 'base64url:16',"
            " p_prefix => 'tk_', p_batch_size => 100, p_quiet => true)"
        )
    assert "has no digit" in str(raised.value) and "key <base64url> has no digit" in str(raised.value)
    assert PREFIXED.search(str(raised.value)) is None
    stored = conn.execute("SELECT last_error FROM token_rotation.runs").fetchone()
    assert stored is not None and stored[0] is not None and "key <base64url> has no digit" in stored[0]
    seen = attacker_conn.execute("SELECT last_error FROM token_rotation.progress").fetchall()
    assert seen and all(PREFIXED.search(row[0] or "") is None for row in seen)
    assert any("key <base64url> has no digit" in (row[0] or "") for row in seen)


def test_a_quoted_token_without_a_digit_is_never_printed_by_the_command_line(
    dsn: str, conn: psycopg.Connection, api_keys: str
) -> None:
    """The same failure through `rotate`, new and resumed (the format then comes from the run), text and
    --json: the error is printed with the token hidden, the command exits 1."""
    outputs = [
        run_cli(
            dsn,
            "rotate",
            "--table",
            api_keys,
            "--column",
            "key",
            "--format",
            "base64url:16",
            "--prefix",
            "tk_",
            "--no-reclaim",
        ),
        run_cli(dsn, "rotate", "--table", api_keys, "--no-reclaim", "--json"),
    ]
    for done in outputs:
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "has no digit" in done.stdout + done.stderr
        assert PREFIXED.search(done.stdout + done.stderr) is None, done.stdout + done.stderr
