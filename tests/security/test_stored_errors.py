"""Finding 11 of issue 17, where the error is stored: runs.last_error, which every watching role reads, never
holds a token that a trigger's message quoted."""

from __future__ import annotations

import re

import psycopg
import pytest

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
