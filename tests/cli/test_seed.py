"""Demo data: token_rotation.seed creates a tickets table like the original's and fills it in chunks."""

from __future__ import annotations

import psycopg
import pytest

from token_rotation.seed import DEMO_COMMENT, SeedError, chunks, seed

from helpers import last_run_id, snapshot


def test_seed_creates_a_ticket_table_with_unique_tokens(dsn: str, conn: psycopg.Connection) -> None:
    """seed fills exactly the rows asked for, ids 1..N, every token set and distinct, and analyzes."""
    result = seed(dsn, 2500, batch=1000)
    assert result.rows == 2500 and result.table == '"tickets"'
    count, distinct, lo, hi, reltuples = conn.execute(
        "SELECT count(*), count(DISTINCT token), min(id), max(id),"
        " (SELECT reltuples FROM pg_class WHERE oid = 'tickets'::regclass) FROM tickets"
    ).fetchone()  # type: ignore[misc]
    assert (count, distinct, lo, hi) == (2500, 2500, 1, 2500)
    assert reltuples == 2500


def test_seeded_table_has_a_unique_token_and_a_single_column_primary_key(
    dsn: str, conn: psycopg.Connection
) -> None:
    """The demo table is one the rotation accepts: bigint primary key and a unique uuid token column."""
    seed(dsn, 10)
    key, key_type = conn.execute(
        "SELECT key_columns[1], key_types[1]::text FROM"
        " token_rotation_internal.describe_target('tickets', 'token')"
    ).fetchone()  # type: ignore[misc]
    assert (key, key_type) == ("id", "bigint")
    unique = conn.execute(
        "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = i.indkey[0] WHERE i.indrelid = 'tickets'::regclass AND i.indisunique"
        " AND NOT i.indisprimary AND a.attname = 'token'"
    ).fetchone()
    assert unique == (1,)


def test_progress_is_reported_per_chunk_up_to_the_total(dsn: str) -> None:
    """on_progress gets (0, total) first, then the rows done after each committed chunk, ending at total."""
    calls: list[tuple[int, int]] = []
    seed(dsn, 2500, batch=1000, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]


def test_each_chunk_is_committed_on_its_own(dsn: str, conn: psycopg.Connection) -> None:
    """A seed stopped in the middle keeps the chunks it committed (one transaction per chunk)."""

    def stop_after_two_chunks(done: int, total: int) -> None:
        if done >= 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seed(dsn, 5000, batch=1000, on_progress=stop_after_two_chunks)
    assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (2000,)


def test_seeding_again_replaces_the_demo_table(dsn: str, conn: psycopg.Connection) -> None:
    """A second seed of the same demo table starts from scratch instead of appending."""
    seed(dsn, 300)
    seed(dsn, 120)
    assert conn.execute("SELECT count(*), min(id) FROM tickets").fetchone() == (120, 1)
    comment = conn.execute("SELECT obj_description('tickets'::regclass, 'pg_class')").fetchone()
    assert comment == (DEMO_COMMENT,)


def test_an_existing_table_that_is_not_a_demo_table_is_refused(dsn: str, conn: psycopg.Connection) -> None:
    """seed never drops a table it did not create: a user's own table of that name stays as it was."""
    conn.execute("CREATE TABLE tickets (id bigint PRIMARY KEY, token uuid)")
    conn.execute("INSERT INTO tickets VALUES (1, gen_random_uuid())")
    with pytest.raises(SeedError, match="not a demo table"):
        seed(dsn, 10)
    assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (1,)


def test_table_names_are_quoted_not_injected(dsn: str, conn: psycopg.Connection) -> None:
    """A name with capitals, spaces, quotes and a semicolon becomes that very name; nothing else runs."""
    name = 'My "Tickets"; DROP TABLE x; --'
    conn.execute("CREATE TABLE x (a int)")
    seed(dsn, 50, table=name, schema="public")
    found = conn.execute("SELECT count(*) FROM pg_class WHERE relname = %s", (name,)).fetchone()
    assert found == (1,)
    assert conn.execute("SELECT to_regclass('x') IS NOT NULL").fetchone() == (True,)


def test_zero_rows_gives_an_empty_table_and_bad_sizes_are_refused(dsn: str, conn: psycopg.Connection) -> None:
    """rows=0 creates the empty table; a negative row count or a batch below 1 is refused up front."""
    assert seed(dsn, 0).rows == 0
    assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (0,)
    with pytest.raises(SeedError, match="rows"):
        seed(dsn, -1)
    with pytest.raises(SeedError, match="batch"):
        seed(dsn, 10, batch=0)


def test_seeded_table_rotates_exactly_once(dsn: str, conn: psycopg.Connection) -> None:
    """The demo table is rotated by the procedure: every token changes, and the run verifies."""
    seed(dsn, 1500)
    before = snapshot(conn)
    conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 400, p_quiet => true)")
    after = snapshot(conn)
    assert all(after.tokens[k] != v for k, v in before.tokens.items())
    assert after.others == before.others
    checks = conn.execute("SELECT bool_and(ok) FROM token_rotation.verify(%s)", (last_run_id(conn),))
    assert checks.fetchone() == (True,)


@pytest.mark.parametrize(
    ("total", "batch", "expected"),
    [(0, 10, []), (5, 10, [(1, 5)]), (10, 5, [(1, 5), (6, 10)]), (11, 5, [(1, 5), (6, 10), (11, 11)])],
)
def test_chunks_cover_every_row_number_once(total: int, batch: int, expected: list[tuple[int, int]]) -> None:
    """The chunk ranges are consecutive, inclusive, no longer than the batch, and end at the total."""
    assert chunks(total, batch) == expected
