"""Keys walked with their own operators, and keys that would walk what the run rewrites (issue 17, findings 6
and 7).

Finding 6: a key whose btree order is not the one that operators found by name give (a citext key whose
extension lives in a schema off the caller's path falls back to text's operators; a text key ordered by
another collation than the one it is compared with) lost rows while the run said finished and verify passed.
Every test here rotates 3,000 rows in small batches and asserts that every row got a new token exactly once.

Finding 7: p_key naming the previous-token column (or the token or rotated-at column) rotated rows twice.
"""

from __future__ import annotations

import psycopg
import pytest

from helpers import Snapshot, last_run_id, snapshot, table_checksum

ROWS = 3000
# mixed-case keys, whose case-insensitive or linguistic order differs from their byte order ('b.' < 'C.')
MIXED_CASE_ROWS = (
    "INSERT INTO public.tickets (id, title)"
    " SELECT CASE WHEN g %% 2 = 0 THEN upper(m) ELSE m END, 't' || g"
    " FROM (SELECT g, substr(md5(g::text), 1, 12) AS m FROM generate_series(1, %s) AS g) AS s"
)


def assert_every_row_rotated_once(conn: psycopg.Connection, before: Snapshot, key: str = "id") -> None:
    """The run of public.tickets is finished; every row has a new token, none an old one of any row; the log
    counts exactly the table's rows (a row rotated twice would count twice, one skipped kept its token); and
    verify passes. (helpers.assert_rotated_exactly_once also compares keys with operators found by name, the
    very thing these keys defeat.)"""
    run_id = last_run_id(conn, "public.tickets")
    assert conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone() == (
        "finished",
    )
    after = snapshot(conn, "public.tickets", key=key)
    assert set(after.tokens) == set(before.tokens)
    unchanged = [k for k in before.tokens if after.tokens[k] == before.tokens[k]]
    assert not unchanged, f"{len(unchanged)} of {len(before.tokens)} rows kept their old token"
    assert not set(before.tokens.values()) & set(after.tokens.values()), "a new token is an old one"
    logged = conn.execute(
        "SELECT coalesce(sum(rows), 0) FROM token_rotation.batches WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert logged == (len(before.tokens),), f"log counts {logged}, table has {len(before.tokens)} rows"
    failed = conn.execute("SELECT check_name, detail FROM token_rotation.verify(%s) WHERE NOT ok", (run_id,))
    assert not failed.fetchall()


def _has_collation(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_collation WHERE collname = %s)", (name,)
    ).fetchone() == (True,)


def _other_collation(conn: psycopg.Connection) -> str:
    """A collation whose order of mixed-case strings differs from "C" (ICU, or a libc English locale)."""
    for name in ("en-x-icu", "und-x-icu", "en_US.utf8", "en_US.UTF-8", "en_US"):
        if _has_collation(conn, name):
            return name
    pytest.skip("no collation other than C/POSIX on this server (no ICU, no en_US locale)")


def test_a_citext_key_from_a_schema_off_the_callers_path_rotates_every_row_once(
    conn: psycopg.Connection,
) -> None:
    """A citext primary key (extension in its own schema, as Supabase installs extensions): every one of
    3,000 mixed-case keys gets a new token once, and verify agrees."""
    if conn.execute(
        "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'citext')"
    ).fetchone() != (True,):
        pytest.skip("this server does not ship the citext extension")
    conn.execute("CREATE SCHEMA tr_ext")
    conn.execute("CREATE EXTENSION citext SCHEMA tr_ext")
    conn.execute(
        "CREATE TABLE public.tickets (id tr_ext.citext PRIMARY KEY,"
        " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text NOT NULL)"
    )
    # keys whose citext order (case-insensitive) differs from their text order: 'b...' < 'C...' in citext
    conn.execute(
        MIXED_CASE_ROWS,
        (ROWS,),
    )
    before = snapshot(conn, "public.tickets")
    conn.execute("SET search_path = public")  # the caller's path does not know tr_ext
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 97, p_quiet => true)")
    conn.execute("RESET search_path")
    assert_every_row_rotated_once(conn, before)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_text_key_whose_index_has_another_collation_rotates_every_row_once(
    conn: psycopg.Connection, workers: int
) -> None:
    """A text key of collation "C" walked (p_key) through a unique index of an ICU/English collation, with
    one and with three slices: every one of 3,000 mixed-case keys gets a new token once, verify agrees."""
    other = _other_collation(conn)
    conn.execute(
        'CREATE TABLE public.tickets (id integer PRIMARY KEY, code text COLLATE "C" NOT NULL,'
        " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text NOT NULL)"
    )
    conn.execute(f'CREATE UNIQUE INDEX tickets_code ON public.tickets (code COLLATE "{other}")')
    conn.execute(
        "INSERT INTO public.tickets (id, code, title)"
        " SELECT g, CASE WHEN g %% 2 = 0 THEN upper(m) ELSE m END, 't' || g"
        " FROM (SELECT g, substr(md5(g::text), 1, 12) AS m FROM generate_series(1, %s) AS g) AS s",
        (ROWS,),
    )
    before = snapshot(conn, "public.tickets", key="code")
    conn.execute(
        "CALL token_rotation.rotate('public.tickets', p_key => '{code}', p_batch_size => 97,"
        " p_workers => %s, p_quiet => true)",
        (workers,),
    )
    for _ in range(workers - 1):
        conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 97, p_quiet => true)")
    assert_every_row_rotated_once(conn, before, key="code")


def test_a_text_primary_key_of_a_non_default_collation_rotates_every_row_once(
    conn: psycopg.Connection,
) -> None:
    """A text primary key of an ICU/English collation (whose order of mixed case differs from "C"): every one
    of 3,000 rows gets a new token once, verify agrees."""
    other = _other_collation(conn)
    conn.execute(
        f'CREATE TABLE public.tickets (id text COLLATE "{other}" PRIMARY KEY,'
        " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text NOT NULL)"
    )
    conn.execute(
        MIXED_CASE_ROWS,
        (ROWS,),
    )
    before = snapshot(conn, "public.tickets")
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 97, p_quiet => true)")
    assert_every_row_rotated_once(conn, before)


def test_a_key_of_a_collated_domain_under_another_collation_rotates_every_row_once(
    conn: psycopg.Connection,
) -> None:
    """A primary key of a domain COLLATE "C" whose column has an ICU/English collation: the bound cast to the
    domain must not bring the domain's collation into the comparison; every row gets a new token once."""
    other = _other_collation(conn)
    conn.execute('CREATE DOMAIN public.code_c AS text COLLATE "C"')
    conn.execute(
        f'CREATE TABLE public.tickets (id public.code_c COLLATE "{other}" PRIMARY KEY,'
        " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text NOT NULL)"
    )
    conn.execute(
        MIXED_CASE_ROWS,
        (ROWS,),
    )
    before = snapshot(conn, "public.tickets")
    conn.execute(
        "CALL token_rotation.rotate('public.tickets', p_batch_size => 97, p_workers => 2, p_quiet => true)"
    )
    conn.execute("CALL token_rotation.rotate('public.tickets', p_batch_size => 97, p_quiet => true)")
    assert_every_row_rotated_once(conn, before)


GRACE_TABLE = (
    "CREATE TABLE public.tickets (id integer PRIMARY KEY,"
    " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),"
    " previous_token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),"
    " rotated_at timestamptz NOT NULL, title text NOT NULL)"
)
GRACE_ROWS = (
    "INSERT INTO public.tickets (id, rotated_at, title)"
    " SELECT g, timestamptz '2026-01-01' + g * interval '1 second', 't' || g"
    " FROM generate_series(1, 3000) AS g"
)


@pytest.mark.parametrize("key", ["previous_token", "rotated_at"])
def test_a_key_naming_a_grace_column_is_refused_before_anything_changes(
    conn: psycopg.Connection, key: str
) -> None:
    """p_key naming the previous-token or the rotated-at column (each NOT NULL with a unique index, so a key
    describe_target() accepts): refused with 22023, a DETAIL and a HINT; no run, no row changed."""
    conn.execute(GRACE_TABLE)
    conn.execute(GRACE_ROWS)
    if key == "rotated_at":  # unique only here: a batch gives all its rows one rotated_at
        conn.execute("CREATE UNIQUE INDEX tickets_rotated_at ON public.tickets (rotated_at)")
    checksum = table_checksum(conn, "public.tickets")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        conn.execute(
            "CALL token_rotation.rotate('public.tickets', p_key => %s, p_previous_column => 'previous_token',"
            " p_rotated_at_column => 'rotated_at', p_batch_size => 500, p_quiet => true)",
            ([key],),
        )
    assert key in (refused.value.diag.message_primary or "")
    assert refused.value.diag.message_detail and refused.value.diag.message_hint
    assert table_checksum(conn, "public.tickets") == checksum
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_a_key_naming_the_token_column_is_refused_before_anything_changes(conn: psycopg.Connection) -> None:
    """p_key naming the token column, with grace columns: refused (0A000, as before) with a DETAIL and a
    HINT; no run, no row changed."""
    conn.execute(GRACE_TABLE)
    conn.execute(GRACE_ROWS)
    checksum = table_checksum(conn, "public.tickets")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
        conn.execute(
            "CALL token_rotation.rotate('public.tickets', p_key => '{token}',"
            " p_previous_column => 'previous_token', p_rotated_at_column => 'rotated_at', p_quiet => true)"
        )
    assert refused.value.diag.message_detail and refused.value.diag.message_hint
    assert table_checksum(conn, "public.tickets") == checksum
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)
