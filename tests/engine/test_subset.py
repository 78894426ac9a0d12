"""Rotating what needs rotating (issue 19): a subset of the rows (p_where / --where), the tokens older than an
age (p_older_than / --older-than), NULL tokens left alone unless --fill-null, and a window (p_stop_at,
p_max_duration / --until, --for) after which the run stops cleanly and a later CALL resumes it."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from token_rotation.cli import cli

from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot, table_checksum

# 6 tenants x 500 rows, composite primary key (tenant_id, id): the key's index serves tenant_id = N
TENANTS = (
    "CREATE TABLE tickets (tenant_id integer NOT NULL, id integer NOT NULL,"
    " token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), title text, PRIMARY KEY (tenant_id, id));"
    "INSERT INTO tickets (tenant_id, id, title)"
    " SELECT g % 6, g, 'ticket ' || g FROM generate_series(1, 3000) g;"
    "ANALYZE tickets"
)


def tokens_of(conn: psycopg.Connection, where: str, table: str = "tickets") -> dict[str, str]:
    rows = conn.execute(f"SELECT id::text, token::text FROM {table} WHERE {where}").fetchall()
    return {r[0]: r[1] for r in rows}


def assert_only_subset_rotated(before: dict[str, str], after: dict[str, str], subset: set[str]) -> None:
    """Every row of the subset has a new token, every other row its old one."""
    assert subset, "the subset is empty: the test proves nothing"
    kept = [k for k in subset if after[k] == before[k]]
    assert not kept, f"{len(kept)} of {len(subset)} rows of the subset kept their token"
    changed = [k for k in before if k not in subset and after[k] != before[k]]
    assert not changed, f"{len(changed)} rows outside the subset were rotated"


def run_of(conn: psycopg.Connection, table: str = "tickets") -> tuple[str, int, int, dict[str, object]]:
    row = conn.execute(
        "SELECT state::text, rows_expected, rows_done, options FROM token_rotation.runs WHERE run_id = %s",
        (last_run_id(conn, table),),
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


def verified(conn: psycopg.Connection, run_id: int) -> None:
    failed = conn.execute("SELECT check_name, detail FROM token_rotation.verify(%s) WHERE NOT ok", (run_id,))
    assert failed.fetchall() == []


def test_a_tenant_of_a_composite_key_is_rotated_and_no_other_row(dsn: str, conn: psycopg.Connection) -> None:
    """--where "tenant_id = 3" on a (tenant_id, id) key: the 500 rows of tenant 3 get new tokens, the 2,500
    others keep theirs; the run counts 500 rows (exactly), stores and prints the expression, verify passes."""
    conn.execute(TENANTS)
    before = tokens_of(conn, "true")
    result = CliRunner().invoke(
        cli, ["--dsn", dsn, "rotate", "--table", "tickets", "--where", "tenant_id = 3", "--batch-size", "200"]
    )
    assert result.exit_code == 0, result.output
    assert "where (tenant_id = 3)" in result.output
    assert_only_subset_rotated(before, tokens_of(conn, "true"), set(tokens_of(conn, "tenant_id = 3")))
    state, expected, done, options = run_of(conn)
    assert (state, expected, done) == ("finished", 500, 500)
    assert options["where"] == "(tenant_id = 3)"
    # three batches of 200 over 500 rows: the batches count the matching rows, not the table's
    batches = conn.execute(
        "SELECT count(*) FROM token_rotation.batches WHERE run_id = %s", (last_run_id(conn),)
    )
    assert batches.fetchone() == (3,)
    verified(conn, last_run_id(conn))


def test_a_subset_of_a_partitioned_table_is_one_run_over_the_matching_rows_of_every_partition(
    conn: psycopg.Connection,
) -> None:
    """A table partitioned by range of created_at (key id, created_at), p_where => 'status = 2' with two
    workers: the matching rows of every partition are rotated, once; no other row."""
    conn.execute(
        "CREATE TABLE events (id bigint NOT NULL, created_at timestamptz NOT NULL, status integer NOT NULL,"
        " token uuid NOT NULL DEFAULT gen_random_uuid(), PRIMARY KEY (id, created_at))"
        " PARTITION BY RANGE (created_at);"
        "CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');"
        "CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');"
        "CREATE TABLE events_3 PARTITION OF events DEFAULT;"
        "INSERT INTO events (id, created_at, status)"
        " SELECT g, timestamptz '2026-01-01' + g * interval '30 min',"
        " g % 4 FROM generate_series(1, 4000) g"
    )
    before = tokens_of(conn, "true", "events")
    subset = set(tokens_of(conn, "status = 2", "events"))
    assert conn.execute("SELECT count(DISTINCT tableoid) FROM events WHERE status = 2").fetchone() == (3,)
    for _ in range(2):  # a CALL works one slice
        conn.execute(
            "CALL token_rotation.rotate('events', p_where => 'status = 2', p_workers => 2,"
            " p_batch_size => 150,"
            " p_quiet => true)"
        )
    assert_only_subset_rotated(before, tokens_of(conn, "true", "events"), subset)
    state, expected, done, _ = run_of(conn, "events")
    assert (state, expected, done) == ("finished", len(subset), len(subset))
    verified(conn, last_run_id(conn, "events"))


def test_older_than_rotates_the_due_tokens_with_their_grace_columns_and_never_twice(
    conn: psycopg.Connection,
) -> None:
    """Rows rotated 100 days ago or never (NULL) are due under p_older_than => '90 days'; rows rotated 10 days
    ago are not. The due rows get a new token, their old one in previous_token and a new rotated_at; the
    others are untouched. A second run right after finds nothing due (its cutoff is its own start)."""
    conn.execute(
        "CREATE TABLE tickets (id integer PRIMARY KEY, token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),"
        " previous_token uuid, token_rotated_at timestamptz);"
        "INSERT INTO tickets (id, token_rotated_at)"
        " SELECT g, CASE g % 3 WHEN 0 THEN now() - interval '100 days'"
        " WHEN 1 THEN now() - interval '10 days' END FROM generate_series(1, 3000) g"
    )
    before = tokens_of(conn, "true")
    recent = conn.execute("SELECT id::text, token_rotated_at FROM tickets WHERE id % 3 = 1").fetchall()
    due = set(tokens_of(conn, "id % 3 <> 1"))
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_older_than => '90 days',"
        " p_previous_column => 'previous_token',"
        " p_rotated_at_column => 'token_rotated_at', p_batch_size => 300, p_quiet => true)"
    )
    after = tokens_of(conn, "true")
    assert_only_subset_rotated(before, after, due)
    grace = conn.execute(
        "SELECT id::text, previous_token::text, token_rotated_at > now() - interval '1 hour' FROM tickets"
        " WHERE id % 3 <> 1"
    ).fetchall()
    assert all(previous == before[key] and fresh for key, previous, fresh in grace)
    assert (
        conn.execute("SELECT id::text, token_rotated_at FROM tickets WHERE id % 3 = 1").fetchall() == recent
    )
    assert conn.execute(
        "SELECT count(*) FROM tickets WHERE id % 3 = 1 AND previous_token IS NOT NULL"
    ).fetchone() == (0,)
    state, expected, done, options = run_of(conn)
    assert (state, expected, done) == ("finished", 2000, 2000)
    assert options["older_than"] and options["rotated_before"]
    verified(conn, last_run_id(conn))
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_older_than => '90 days',"
        " p_previous_column => 'previous_token',"
        " p_rotated_at_column => 'token_rotated_at', p_quiet => true)"
    )
    assert tokens_of(conn, "true") == after
    assert run_of(conn)[:3] == ("finished", 0, 0)


def test_older_than_needs_the_rotated_at_column(dsn: str, conn: psycopg.Connection) -> None:
    make_table(conn, rows=100)
    before = table_checksum(conn)
    result = CliRunner().invoke(cli, ["--dsn", dsn, "rotate", "--table", "tickets", "--older-than", "90d"])
    assert result.exit_code == 2, result.output
    assert "rotated-at column" in result.output
    assert table_checksum(conn) == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_a_resumed_subset_run_keeps_its_expression_and_refuses_another(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A run over tenant 2 stopped after 2 batches; a bare CALL resumes it over tenant 2 only (status --json
    shows the expression); a CALL naming tenant 4 is refused (22023), and changes nothing."""
    conn.execute(TENANTS)
    before = tokens_of(conn, "true")
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_where => 'tenant_id = 2', p_batch_size => 100,"
        " p_max_batches => 2, p_quiet => true)"
    )
    assert run_of(conn)[:3] == ("active", 500, 200)
    status = CliRunner().invoke(cli, ["--dsn", dsn, "status", "--table", "tickets", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output.splitlines()[0])["where"] == "(tenant_id = 2)"
    checksum = table_checksum(conn)
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("CALL token_rotation.rotate('tickets', p_where => 'tenant_id = 4', p_quiet => true)")
    assert refused.value.sqlstate == "22023"
    assert "other rows" in str(refused.value)
    assert table_checksum(conn) == checksum
    conn.execute("CALL token_rotation.rotate('tickets', p_where => 'tenant_id=2', p_quiet => true)")
    assert_only_subset_rotated(before, tokens_of(conn, "true"), set(tokens_of(conn, "tenant_id = 2")))
    assert run_of(conn)[:3] == ("finished", 500, 500)
    verified(conn, last_run_id(conn))


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("id > 5; DELETE FROM tickets", "one SQL expression"),
        ("id IN (WITH d AS (DELETE FROM tickets RETURNING id) SELECT id FROM d)", "subquery"),
        ("random() < 0.5", "volatile function"),
        ("id > ", "syntax error"),
        ("id > 0) NOT VALID, ADD CONSTRAINT other CHECK (true", "more than one expression"),
        ("title", "boolean"),
        ("token IS NOT NULL", "token column"),
    ],
)
def test_a_refused_expression_exits_2_and_changes_nothing(
    dsn: str, conn: psycopg.Connection, where: str, says: str
) -> None:
    """Two statements, a write, a volatile function, a syntax error, a second constraint smuggled in, a
    non-boolean, the token column: each refused up front with exit 2; no row changed, no run stored."""
    make_table(conn, rows=300)
    before = table_checksum(conn)
    for args in (["rotate"], ["rotate", "--dry-run"]):
        result = CliRunner().invoke(cli, ["--dsn", dsn, *args, "--table", "tickets", "--where", where])
        assert result.exit_code == 2, result.output
        assert says in result.output
    assert table_checksum(conn) == before
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (0,)


def test_an_expression_is_judged_at_each_batch(conn: psycopg.Connection) -> None:
    """A row changed to match after the run started, in a key range the run has not reached yet, is
    rotated; one changed to no longer match is not (status = id % 7: the run's range ends at id 995, the
    last row that matched when it started)."""
    make_table(conn, rows=1000, key_type="integer")
    before = tokens_of(conn, "true")
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_where => 'status = 1', p_batch_size => 50,"
        " p_max_batches => 1,"
        " p_quiet => true)"
    )
    conn.execute("UPDATE tickets SET status = 1 WHERE id = 500")
    conn.execute("UPDATE tickets SET status = 2 WHERE id = 988")
    assert conn.execute("SELECT status FROM tickets WHERE id IN (500, 988) ORDER BY id").fetchall() == [
        (1,),
        (2,),
    ]
    conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    after = tokens_of(conn, "true")
    assert after["500"] != before["500"]
    assert after["988"] == before["988"]
    assert after["995"] != before["995"]
    assert run_of(conn)[:3] == ("finished", 143, 143)


def test_null_tokens_are_left_alone_by_default_and_filled_with_fill_null(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A Devise-shaped users table: reset_password_token nullable and unique, set for a third of the users.
    By default only those get a new token, the others keep NULL and are not counted; --fill-null gives every
    row one."""
    conn.execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, email varchar NOT NULL UNIQUE,"
        " reset_password_token varchar UNIQUE, reset_password_sent_at timestamp);"
        "INSERT INTO users SELECT g, 'u' || g || '@example.com', CASE WHEN g % 3 = 0 THEN md5(g::text) END,"
        " CASE WHEN g % 3 = 0 THEN now() END FROM generate_series(1, 900) g"
    )
    before = {r[0]: r[1] for r in conn.execute("SELECT id::text, reset_password_token FROM users").fetchall()}
    args = [
        "--dsn",
        dsn,
        "rotate",
        "--table",
        "users",
        "--column",
        "reset_password_token",
        "--format",
        "hex:20",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    after = {r[0]: r[1] for r in conn.execute("SELECT id::text, reset_password_token FROM users").fetchall()}
    assert all(after[k] is None for k, v in before.items() if v is None)
    assert all(after[k] not in (None, v) for k, v in before.items() if v is not None)
    assert run_of(conn, "users")[:3] == ("finished", 300, 300)
    result = CliRunner().invoke(cli, [*args, "--fill-null"])
    assert result.exit_code == 0, result.output
    assert conn.execute(
        "SELECT count(reset_password_token), count(DISTINCT reset_password_token) FROM users"
    ).fetchone() == (
        900,
        900,
    )
    assert run_of(conn, "users")[:3] == ("finished", 900, 900)


def test_a_window_that_ends_mid_run_stops_cleanly_and_the_resume_finishes(conn: psycopg.Connection) -> None:
    """p_max_duration => '0.4 s' with 50 ms sleeps between batches of 100 rows: the CALL stops after a few
    batches, the run stays open with its checkpoint; a CALL with p_stop_at in the past does nothing; a CALL
    without a window finishes it, every row rotated once."""
    make_table(conn, rows=3000)
    before = snapshot(conn)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute(
        "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '50 ms',"
        " p_max_duration => '0.4 s')"
    )
    state, expected, done, _ = run_of(conn)
    assert state == "active" and 0 < done < expected == 3000
    assert any("end of its window" in n for n in notices), notices
    conn.execute("CALL token_rotation.rotate('tickets', p_stop_at => now() - interval '1 minute')")
    assert run_of(conn)[2] == done
    assert any("nothing done" in n for n in notices), notices
    conn.execute("CALL token_rotation.rotate('tickets', p_sleep => '0', p_quiet => true)")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_the_cli_window_stops_with_exit_0_and_says_how_to_resume(dsn: str, conn: psycopg.Connection) -> None:
    """rotate --for 0.4s with 50 ms sleeps and 2 workers: exit 0, "at the end of its window", the run open;
    rotate again finishes it, every row rotated once."""
    make_table(conn, rows=3000)
    before = snapshot(conn)
    args = ["--dsn", dsn, "rotate", "--table", "tickets", "--batch-size", "100", "--workers", "2"]
    result = CliRunner().invoke(cli, [*args, "--sleep", "50ms", "--for", "0.4s"])
    assert result.exit_code == 0, result.output
    assert "end of its window" in result.output
    state, expected, done, _ = run_of(conn)
    assert state == "active" and 0 < done < expected
    result = CliRunner().invoke(cli, ["--dsn", dsn, "rotate", "--table", "tickets", "--sleep", "0"])
    assert result.exit_code == 0, result.output
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def test_until_takes_a_time_of_day_and_refuses_anything_else(dsn: str, conn: psycopg.Connection) -> None:
    make_table(conn, rows=100)
    result = CliRunner().invoke(cli, ["--dsn", dsn, "rotate", "--table", "tickets", "--until", "25:00"])
    assert result.exit_code == 2
    assert "HH:MM" in result.output
    # the next 05:00 of the server's day is in the future and within a day: the run is not stopped by it
    result = CliRunner().invoke(cli, ["--dsn", dsn, "rotate", "--table", "tickets", "--until", "05:00"])
    assert result.exit_code == 0, result.output
    assert run_of(conn)[:3] == ("finished", 100, 100)


def test_plan_counts_the_rows_of_the_subset(dsn: str, conn: psycopg.Connection) -> None:
    """A dry run with --where counts the matching rows (exact), 500 of 3,000."""
    conn.execute(TENANTS)
    result = CliRunner().invoke(
        cli, ["--dsn", dsn, "rotate", "--table", "tickets", "--where", "tenant_id = 5", "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output.splitlines()[0])
    assert (plan["rows_total"], plan["rows_exact"]) == (500, True)


def test_a_subset_of_a_big_table_is_estimated_by_the_planner_when_counting_is_dear(
    conn: psycopg.Connection,
) -> None:
    """Above the exact limit the slices are sampled and the total is the planner's estimate of the matching
    rows (about 500 of 3,000 here), not the table's size."""
    conn.execute(TENANTS)
    rows = conn.execute(
        "SELECT sum(rows_expected), bool_and(exact)"
        " FROM token_rotation_internal.plan_slices('tickets', '{tenant_id,id}',"
        " 2, '{5,2999}', p_exact_limit => 10, p_filter => '(tenant_id = 5)')"
    ).fetchone()
    assert rows is not None and rows[1] is False
    assert 250 <= rows[0] <= 1000, rows
