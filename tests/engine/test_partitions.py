"""Partitioned tables as one run: every leaf partition (range, list, hash, default, sub-partitioned) rotated
through the parent with one progress and one verify; workers over key slices that span partitions; a
partition attached after the start is not chased, one detached or dropped mid-run does not break the run and
verify says so."""

from __future__ import annotations

import time

import psycopg
import pytest
from click.testing import CliRunner

from token_rotation.cli import cli

from helpers import assert_rotated_exactly_once, last_run_id, snapshot

COLUMNS = "id bigint NOT NULL, token uuid NOT NULL DEFAULT gen_random_uuid(), title text"
FILL = "INSERT INTO events (id, title) SELECT g, 'event ' || g FROM generate_series(1, {rows}) AS g"

LAYOUTS = {
    "range": [
        f"CREATE TABLE events ({COLUMNS}, PRIMARY KEY (id)) PARTITION BY RANGE (id)",
        "CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (MINVALUE) TO (1000)",
        "CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (1000) TO (2000)",
        "CREATE TABLE events_3 PARTITION OF events FOR VALUES FROM (2000) TO (MAXVALUE)",
    ],
    "list-with-default": [
        f"CREATE TABLE events ({COLUMNS}, kind integer NOT NULL DEFAULT 0, PRIMARY KEY (id, kind))"
        " PARTITION BY LIST (kind)",
        "CREATE TABLE events_a PARTITION OF events FOR VALUES IN (0, 1)",
        "CREATE TABLE events_b PARTITION OF events FOR VALUES IN (2)",
        "CREATE TABLE events_rest PARTITION OF events DEFAULT",
        "ALTER TABLE events ALTER COLUMN kind SET DEFAULT 0",
    ],
    "hash": [
        f"CREATE TABLE events ({COLUMNS}, PRIMARY KEY (id)) PARTITION BY HASH (id)",
        *[
            f"CREATE TABLE events_h{i} PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER {i})"
            for i in range(4)
        ],
    ],
    "sub-partitioned": [
        f"CREATE TABLE events ({COLUMNS}, PRIMARY KEY (id)) PARTITION BY RANGE (id)",
        "CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (MINVALUE) TO (1500)"
        " PARTITION BY HASH (id)",
        "CREATE TABLE events_low_0 PARTITION OF events_low FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
        "CREATE TABLE events_low_1 PARTITION OF events_low FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
        "CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (1500) TO (MAXVALUE)",
    ],
}


def make_events(conn: psycopg.Connection, layout: str, rows: int = 3000) -> None:
    for ddl in LAYOUTS[layout]:
        conn.execute(ddl)
    conn.execute(FILL.format(rows=rows))
    if layout == "list-with-default":
        conn.execute("UPDATE events SET kind = id % 5")  # kinds 0..4: 3 and 4 land in the default partition
    conn.execute("ANALYZE events")


def verify(conn: psycopg.Connection, run_id: int) -> dict[str, tuple[bool, str]]:
    return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT * FROM token_rotation.verify(%s)", (run_id,))}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("workers", [1, 3])
def test_every_leaf_partition_is_rotated_once_in_one_run(
    conn: psycopg.Connection, layout: str, workers: int
) -> None:
    """Range, list with a default, hash and sub-partitioned tables: CALLs on the parent (one per slice) rotate
    every row of every leaf once in one run, and verify passes, with its partitions check."""
    make_events(conn, layout)
    before = snapshot(conn, "events")
    for _ in range(workers):
        conn.execute(
            "CALL token_rotation.rotate('events', p_batch_size => 250, p_workers => %s, p_quiet => true)",
            (workers,),
        )
    run_id = last_run_id(conn, "events")
    assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (1,)
    assert_rotated_exactly_once(conn, before, run_id, "events")
    checks = verify(conn, run_id)
    assert checks["partitions stayed attached"][0]
    leaves = conn.execute("SELECT count(*) FROM pg_partition_tree('events') WHERE isleaf").fetchone()
    assert leaves is not None
    assert checks["partitions stayed attached"][1].startswith(f"{leaves[0]} leaf partition(s)")


def test_a_table_partitioned_by_month_with_key_id_created_at_is_rotated_by_the_cli_with_two_workers(
    dsn: str, conn: psycopg.Connection
) -> None:
    """The time-partitioned shape: primary key (id, created_at), a partition per month; `rotate --workers 2`
    rotates every row once and verify passes."""
    conn.execute(
        "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL,"
        " token uuid NOT NULL DEFAULT gen_random_uuid(), PRIMARY KEY (id, created_at))"
        " PARTITION BY RANGE (created_at)"
    )
    for month in range(1, 7):
        conn.execute(
            f"CREATE TABLE events_2026_{month:02} PARTITION OF events"
            f" FOR VALUES FROM ('2026-{month:02}-01') TO ('2026-{month:02}-01'::date + interval '1 month')"
        )
    conn.execute(
        "INSERT INTO events (created_at) SELECT timestamptz '2026-01-01' + g * interval '1 hour'"
        " FROM generate_series(0, 4000) AS g"
    )
    conn.execute("ANALYZE events")
    before = snapshot(conn, "events")
    result = CliRunner().invoke(
        cli,
        ["--dsn", dsn, "rotate", "--table", "events", "--workers", "2", "--batch-size", "300"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    run_id = last_run_id(conn, "events")
    assert_rotated_exactly_once(conn, before, run_id, "events")
    assert conn.execute("SELECT key_columns::text[], slices FROM token_rotation.runs").fetchone() == (
        ["id", "created_at"],
        2,
    )


def test_a_partition_detached_mid_run_does_not_break_the_run_and_verify_names_it(
    conn: psycopg.Connection,
) -> None:
    """After a first CALL stopped early, a partition not reached yet is detached: the run still finishes,
    the rows left in the table are rotated once, and verify fails only its partitions check, naming it."""
    make_events(conn, "range")
    conn.execute(
        "CALL token_rotation.rotate('events', p_batch_size => 250, p_max_batches => 2, p_quiet => true)"
    )
    conn.execute("ALTER TABLE events DETACH PARTITION events_3")
    before = snapshot(conn, "events")
    detached = snapshot(conn, "events_3")
    conn.execute("CALL token_rotation.rotate('events', p_batch_size => 250, p_quiet => true)")
    run_id = last_run_id(conn, "events")
    assert conn.execute("SELECT state FROM token_rotation.runs").fetchone() == ("finished",)
    assert snapshot(conn, "events_3").tokens == detached.tokens  # not reached: kept its tokens
    checks = verify(conn, run_id)
    assert {name for name, (ok, _) in checks.items() if not ok} == {"partitions stayed attached"}
    assert "detached during the run" in checks["partitions stayed attached"][1]
    assert "public.events_3" in checks["partitions stayed attached"][1]
    after = snapshot(conn, "events")
    changed = {k for k in before.tokens if after.tokens[k] != before.tokens[k]}
    assert changed == {k for k in before.tokens if int(k) > 500}  # the first CALL's 2 batches did 1..500


def test_a_partition_dropped_mid_run_is_named_by_verify_which_still_passes(conn: psycopg.Connection) -> None:
    """A partition dropped during the run took its rows along: the run finishes; verify passes, naming it."""
    make_events(conn, "range")
    conn.execute(
        "CALL token_rotation.rotate('events', p_batch_size => 250, p_max_batches => 2, p_quiet => true)"
    )
    conn.execute("DROP TABLE events_2")
    conn.execute("CALL token_rotation.rotate('events', p_batch_size => 250, p_quiet => true)")
    checks = verify(conn, last_run_id(conn, "events"))
    assert all(ok for ok, _ in checks.values()), checks
    assert "dropped during the run" in checks["partitions stayed attached"][1]


def test_a_partition_attached_after_the_start_is_not_chased(conn: psycopg.Connection) -> None:
    """Rows of a partition attached mid-run beyond the run's last key keep their tokens, like inserted rows;
    every row the run started with is rotated once."""
    conn.execute(f"CREATE TABLE events ({COLUMNS}, PRIMARY KEY (id)) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (MINVALUE) TO (5000)")
    conn.execute(FILL.format(rows=3000))
    before = snapshot(conn, "events")
    conn.execute(
        "CALL token_rotation.rotate('events', p_batch_size => 250, p_max_batches => 2, p_quiet => true)"
    )
    conn.execute(f"CREATE TABLE events_2 ({COLUMNS})")
    conn.execute("INSERT INTO events_2 (id, title) SELECT g, 'late' FROM generate_series(5000, 5099) AS g")
    conn.execute("ALTER TABLE events ATTACH PARTITION events_2 FOR VALUES FROM (5000) TO (MAXVALUE)")
    late = snapshot(conn, "events_2")
    conn.execute("CALL token_rotation.rotate('events', p_batch_size => 250, p_quiet => true)")
    assert snapshot(conn, "events_2").tokens == late.tokens
    conn.execute("DELETE FROM events WHERE id >= 5000")  # the exactly-once check compares the whole table
    assert_rotated_exactly_once(conn, before, last_run_id(conn, "events"), "events")


def test_plan_counts_the_rows_of_every_leaf(conn: psycopg.Connection) -> None:
    """plan() on a partitioned table counts the rows of all its leaves and samples one batch (a new run's
    first, default_options(): 1000 rows), rolled back."""
    make_events(conn, "sub-partitioned")
    before = snapshot(conn, "events")
    plan = conn.execute(
        "SELECT rows_total, rows_exact, slices, sample_rows"
        " FROM token_rotation.plan('events', p_workers => 2, p_sample => true)"
    ).fetchone()
    assert plan == (3000, True, 2, 1000)
    assert snapshot(conn, "events").tokens == before.tokens


def test_table_sizes_of_a_partitioned_table_are_the_sums_over_its_leaves(conn: psycopg.Connection) -> None:
    """table_sizes() of a partitioned table (which holds nothing itself) adds up its leaves: the growth and
    the dead tuples a run leaves, as the CLI's report after a run shows them."""
    make_events(conn, "sub-partitioned")
    conn.execute("VACUUM events")
    leaves = conn.execute(
        "SELECT sum(pg_relation_size(relid)), sum(pg_indexes_size(relid))"
        " FROM pg_partition_tree('events') WHERE isleaf"
    ).fetchone()
    before = conn.execute(
        "SELECT table_bytes, indexes_bytes FROM token_rotation.table_sizes('events')"
    ).fetchone()
    assert before == leaves and before is not None and before[0] > 0
    conn.execute("CALL token_rotation.rotate('events', p_batch_size => 1000, p_quiet => true)")
    deadline = time.monotonic() + 10
    while True:  # the statistics system reports the dead tuples within a second or so
        after = conn.execute(
            "SELECT table_bytes, dead_tuples FROM token_rotation.table_sizes('events')"
        ).fetchone()
        assert after is not None
        if after[1] >= 3000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after[0] > before[0] and after[1] >= 3000


def test_sampled_slices_of_a_partitioned_table_with_a_composite_key_are_balanced(
    conn: psycopg.Connection,
) -> None:
    """Past the exact-count limit, the slices of a partitioned table with key (id, kind) come from a block
    sample of every leaf: 4 slices that chain, each within 1.5x of the mean rows."""
    make_events(conn, "list-with-default", rows=20000)
    slices = conn.execute(
        "SELECT lo, hi, exact FROM token_rotation_internal.plan_slices('events', '{id,kind}', 4,"
        " (SELECT ARRAY[id::text, kind::text] FROM events ORDER BY id DESC, kind DESC LIMIT 1), 1000)"
        " ORDER BY slice_no"
    ).fetchall()
    assert len(slices) == 4 and not any(exact for _, _, exact in slices)
    assert slices[0][0] is None and all(slices[i][0] == slices[i - 1][1] for i in range(1, 4))
    counts = [
        conn.execute(
            "SELECT count(*) FROM events WHERE (%(lo)s::text[] IS NULL"
            " OR (id, kind) > ((%(lo)s::text[])[1]::bigint, (%(lo)s::text[])[2]::integer))"
            " AND (id, kind) <= ((%(hi)s::text[])[1]::bigint, (%(hi)s::text[])[2]::integer)",
            {"lo": lo, "hi": hi},
        ).fetchone()[0]  # type: ignore[index]
        for lo, hi, _ in slices
    ]
    assert sum(counts) == 20000 and max(counts) <= 1.5 * 20000 / 4, counts
