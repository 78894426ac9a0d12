"""What the CLI's options claim, checked on the server: every option of `rotate` reaches the procedure (the
CALL text in pg_stat_activity names every p_* parameter), and --vacuum runs a VACUUM (vacuum_count, not
autovacuum_count)."""

from __future__ import annotations

import signal

import psycopg

from background import run_cli, spawn_cli, wait_until
from helpers import (
    assert_checkpoints_match_the_data,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
)

EVERY_OPTION = (
    "rotate",
    "--table", "tickets",
    "--column", "token",
    "--key", "id",
    "--batch-size", "100",
    "--max-batches", "50",
    "--sleep", "30s",
    "--lock-timeout", "2s",
    "--lock-retries", "3",
    "--workers", "2",
    "--target-batch-time", "200ms",
    "--max-replication-lag", "64MB",
    "--max-replay-lag", "1h",
    "--max-archive-queue", "1000",
    "--pause-on-autovacuum",
    "--trust-table-owner",
    "--synchronous-commit",
    "--format", "hex:16",
    "--prefix", "tk_",
    "--previous-column", "previous_token",
    "--rotated-at-column", "rotated_at",
    "--where", "id > 0",
    "--older-than", "90d",
    "--fill-null",
    "--for", "1h",
)  # fmt: skip
# --for (and --until) reach the procedure as p_stop_at, computed once on the server's clock, so that a
# worker's later CALL stops at the same time; p_max_duration is for a CALL typed in psql or a pg_cron job;
# p_citus is the tag a Citus coordinator gives each shard's CALL on its node (rotate_citus())
NOT_FROM_THE_CLI = {"p_max_duration", "p_citus"}


def test_every_rotate_option_reaches_the_procedure(dsn: str, conn: psycopg.Connection) -> None:
    """With every option of `rotate` given, each of the two workers' CALL (as pg_stat_activity shows it)
    passes every parameter of token_rotation.rotate by name (all p_* but the table, passed first), and the
    run they start has the two slices asked for. (The token is text here, for --format and --prefix.)"""
    make_table(conn, rows=2000)
    conn.execute("ALTER TABLE tickets ALTER COLUMN token DROP DEFAULT, ALTER COLUMN token TYPE text")
    before = snapshot(conn)
    conn.execute("ALTER TABLE tickets ADD COLUMN previous_token text, ADD COLUMN rotated_at timestamptz")
    parameters = conn.execute(
        "SELECT array_agg(a ORDER BY a) FROM pg_proc p, unnest(p.proargnames) a"
        " WHERE p.oid = 'token_rotation.rotate'::regproc AND a <> 'p_table' AND a <> ALL(%s)",
        (sorted(NOT_FROM_THE_CLI),),
    ).fetchone()
    assert parameters is not None and len(parameters[0]) >= 11
    app = "tr-every-option"
    proc = spawn_cli(dsn, app, *EVERY_OPTION)
    calls = (
        "SELECT query FROM pg_stat_activity WHERE application_name LIKE %s"
        " AND query LIKE 'CALL token_rotation.rotate%%'"
    )
    try:
        wait_until(
            lambda: len(conn.execute(calls, (app + "%",)).fetchall()) == 2, what="the two workers' CALLs"
        )
        texts = [str(r[0]) for r in conn.execute(calls, (app + "%",)).fetchall()]
        wait_until(
            lambda: conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone() == (2,),
            what="the first batch of each worker",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    for text in texts:
        missing = [name for name in parameters[0] if f'"{name}" =>' not in text and f"{name} =>" not in text]
        assert missing == [], f"not passed: {missing}"
    assert conn.execute("SELECT slices FROM token_rotation.runs").fetchone() == (2,)
    assert assert_checkpoints_match_the_data(conn, before) == 200
    # the resume changes only the sleep (30 s between batches made this test take 90 s), and keeps the rest
    done = run_cli(dsn, "rotate", "--table", "tickets", "--sleep", "0")
    assert done.returncode == 0, done.stderr
    previous: dict[str, str] = dict(
        conn.execute("SELECT id::text, previous_token FROM tickets WHERE token ~ '^tk_[0-9a-f]{32}$'")
    )
    assert previous == before.tokens  # the resume kept the format, the prefix and the grace column
    conn.execute("ALTER TABLE tickets DROP COLUMN previous_token, DROP COLUMN rotated_at")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))


def vacuum_counts(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT vacuum_count, autovacuum_count FROM pg_stat_user_tables WHERE relname = 'tickets'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_vacuum_runs_a_vacuum_and_without_it_none_runs(dsn: str, conn: psycopg.Connection) -> None:
    """`rotate --no-reclaim` without --vacuum leaves vacuum_count at 0; with --vacuum the table's vacuum_count
    (manual VACUUMs, not autovacuum's) goes up by one."""
    make_table(conn, rows=3000)
    conn.execute("ALTER TABLE tickets SET (autovacuum_enabled = off)")
    plain = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--no-reclaim")
    assert plain.returncode == 0, plain.stderr
    assert vacuum_counts(conn)[0] == 0
    vacuumed = run_cli(
        dsn, "rotate", "--table", "tickets", "--batch-size", "1000", "--no-reclaim", "--vacuum"
    )
    assert vacuumed.returncode == 0, vacuumed.stderr
    wait_until(lambda: vacuum_counts(conn)[0] == 1, what="vacuum_count 1")
