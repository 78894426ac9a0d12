"""A real streaming replica: a server of its own (initdb) and its standby (pg_basebackup -R), not the test
server, on the embedded PostgreSQL 18 and on the machine's PostgreSQL 15 binaries when installed. With
replay paused on the standby, a run with --max-replication-lag stops advancing and says why, then finishes
once replay resumes; the standby's tokens then equal the primary's (compared by checksum); the same with
--max-replay-lag (replay_lag grows while replay stands still). A role without pg_monitor, which sees the
standby's row with NULL columns, waits until granted it. A failover mid-run: the standby, cut off and
promoted, resumes the run and redoes the lost batches. The scaffolding is in tests/servers.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from background import (
    assert_held,
    progress_reasons,
    reap,
    run_cli,
    spawn_cli,
    wait_until,
    wait_while_running,
)
from helpers import (
    assert_checkpoints_match_the_data,
    assert_mid_run,
    assert_rotated_exactly_once,
    last_run_id,
    make_table,
    snapshot,
    table_checksum,
    throttled,
)
from roles import grant_recipe, temporary_role
from servers import BINARIES, Pair, bindir_of, dsn_at, stop, streaming_pair

pytestmark = [pytest.mark.slow, pytest.mark.own_server]


@pytest.fixture(params=BINARIES)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A primary and its streaming standby, for one test: on the embedded PostgreSQL 18, and on the machine's
    PostgreSQL 15 binaries when installed (own data directories and sockets, never the machine's cluster)."""
    bindir = bindir_of(request.param)
    with streaming_pair(Path(tmp_path_factory.mktemp(f"replica{request.param}-")), bindir) as made:
        yield made


def caught_up(primary: psycopg.Connection, standby: psycopg.Connection) -> bool:
    """The standby has replayed everything the primary has written so far."""
    row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    done = standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)).fetchone()
    return bool(done and done[0])


def test_paused_replay_holds_the_run_until_it_resumes_and_the_standby_ends_equal(pair: Pair) -> None:
    """Replay paused on the standby: with --max-replication-lag 1MB the run (slowed to outlast the 250 ms
    between health checks: unslowed, 40k rows can be done before the second one) stops advancing, its progress
    says `replica lag`; after pg_wal_replay_resume() it finishes, exactly once, and the standby's table
    checksum equals the primary's."""
    with (
        psycopg.connect(pair.primary, autocommit=True) as primary,
        psycopg.connect(pair.standby, autocommit=True) as standby,
    ):
        make_table(primary, rows=40_000)
        before = snapshot(primary)
        wait_until(lambda: caught_up(primary, standby), what="the standby to catch up", timeout=60)
        standby.execute("SELECT pg_wal_replay_pause()")
        proc = spawn_cli(
            pair.primary, "tr-replica", "rotate", "--table", "tickets", "--batch-size", "500",
            "--sleep", "20ms", "--max-replication-lag", "1MB", "--no-reclaim", "--json",
            "--progress-interval", "0.2",
        )  # fmt: skip
        try:

            def throttled() -> bool:
                row = primary.execute(
                    "SELECT throttled, rows_done FROM token_rotation.progress ORDER BY run_id DESC LIMIT 1"
                ).fetchone()
                return bool(row and row[0] and "replica lag" in row[0])

            wait_until(throttled, what="the run to wait for the replica", timeout=60)
            held = primary.execute("SELECT sum(rows_done) FROM token_rotation.slices").fetchone()
            time.sleep(2)
            still = primary.execute("SELECT sum(rows_done) FROM token_rotation.slices").fetchone()
            assert held == still and held is not None and int(held[0]) < 40_000, (held, still)
            standby.execute("SELECT pg_wal_replay_resume()")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            standby.execute("SELECT pg_wal_replay_resume()")
        assert proc.returncode == 0, err
        assert '"replica lag' in out  # the progress lines said why it waited
        assert_rotated_exactly_once(primary, before, last_run_id(primary))
        wait_until(lambda: caught_up(primary, standby), what="the standby to catch up", timeout=60)
        assert table_checksum(standby) == table_checksum(primary)


def batches(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone()
    assert row is not None
    return int(row[0])


def test_a_run_resumed_on_the_promoted_standby_rotates_every_row_exactly_once(pair: Pair) -> None:
    """Mid two-worker run the standby is cut off from the primary (its batches from then on are never
    replicated), the primary dies, the standby is promoted, and `rotate` pointed at it resumes: by the
    promoted server's log every row is rotated exactly once, the lost batches redone."""
    with (
        psycopg.connect(pair.primary, autocommit=True) as primary,
        psycopg.connect(pair.standby, autocommit=True) as standby,
    ):
        make_table(primary, rows=40_000)
        before = snapshot(primary)
        wait_until(lambda: caught_up(primary, standby), what="the standby to catch up", timeout=60)
        proc = spawn_cli(
            pair.primary, "tr-failover", "rotate", "--table", "tickets", "--workers", "2",
            "--batch-size", "200", "--sleep", "50ms", "--no-reclaim",
        )  # fmt: skip
        try:
            wait_until(lambda: batches(primary) >= 20, what="20 batches on the primary", timeout=60)
            standby.execute("ALTER SYSTEM SET primary_conninfo = ''")  # cut off: no more WAL arrives
            standby.execute("SELECT pg_reload_conf()")
            wait_until(
                lambda: standby.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone() == (0,),
                what="the standby's WAL receiver to stop",
            )
            replicated = batches(standby)
            wait_until(lambda: batches(primary) >= replicated + 10, what="10 unreplicated batches")
            committed = batches(primary)
            stop(pair.bindir, pair.primary_dir)  # the primary dies mid-run
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 1  # the connection to the server was lost
        assert batches(standby) == replicated < committed
        standby.execute("SELECT pg_promote(wait => true)")
        # the promoted server lost the primary's last batches, each together with its checkpoint and log row:
        # its data and its checkpoints agree before anything resumes
        assert_checkpoints_match_the_data(standby, before)
        resumed = run_cli(pair.standby, "rotate", "--table", "tickets", "--workers", "2", timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming run" in resumed.stdout
        assert_rotated_exactly_once(standby, before, last_run_id(standby))


def test_paused_replay_holds_a_run_with_a_replay_lag_limit_until_it_resumes(pair: Pair) -> None:
    """Replay paused on the standby while batches are written: pg_stat_replication.replay_lag grows by about a
    second a second (the server interpolates it while replay stands still), so a run with --max-replay-lag 1s
    and no byte limit stops advancing mid-run, its progress saying `replica replay lag`; after
    pg_wal_replay_resume() it finishes, exactly once."""
    total = 20_000
    with (
        psycopg.connect(pair.primary, autocommit=True) as primary,
        psycopg.connect(pair.standby, autocommit=True) as standby,
    ):
        make_table(primary, rows=total)
        before = snapshot(primary)
        wait_until(lambda: caught_up(primary, standby), what="the standby to catch up", timeout=60)
        standby.execute("SELECT pg_wal_replay_pause()")
        proc = spawn_cli(
            pair.primary, "tr-replay", "rotate", "--table", "tickets", "--batch-size", "100",
            "--sleep", "20ms", "--max-replay-lag", "1s", "--no-reclaim", "--json",
            "--progress-interval", "0.2",
        )  # fmt: skip
        try:
            wait_while_running(
                proc,
                lambda: throttled(primary).startswith("replica replay lag"),
                "the run to wait for replay",
            )
            assert_mid_run(primary, total)
            assert_held(primary, total)
            standby.execute("SELECT pg_wal_replay_resume()")
            out, err = proc.communicate(timeout=120)
        finally:
            reap(proc)
            standby.execute("SELECT pg_wal_replay_resume()")
        assert proc.returncode == 0, err
        assert any(r.startswith("replica replay lag") for r in progress_reasons(out)), out
        assert_rotated_exactly_once(primary, before, last_run_id(primary))


def test_a_role_without_pg_monitor_waits_for_the_replica_lag_it_cannot_read_until_granted(pair: Pair) -> None:
    """pg_stat_replication shows a role without pg_monitor its standby's row with NULL columns, which is not
    "no lag": that role's run with --max-replication-lag 1MB waits, saying `unknown` and the GRANT pg_monitor
    to run, and its rows stay put; after that GRANT it finishes, exactly once."""
    total = 3000
    with psycopg.connect(pair.primary, autocommit=True) as primary:
        make_table(primary, rows=total)
        before = snapshot(primary)
        wait_until(
            lambda: primary.execute("SELECT state FROM pg_stat_replication").fetchall() == [("streaming",)],
            what="the standby to stream",
        )
        with temporary_role(primary, "tr_blind") as role:
            grant_recipe(primary, role, skip="pg_monitor")
            proc = spawn_cli(
                dsn_at(pair.primary_dir, role), "tr-blind", "rotate", "--table", "tickets",
                "--batch-size", "500", "--max-replication-lag", "1MB", "--no-reclaim", "--json",
                "--progress-interval", "0.2",
            )  # fmt: skip
            try:
                wait_while_running(proc, lambda: "unknown" in throttled(primary), "the run to wait, blind")
                reason = throttled(primary)
                assert reason.startswith("replica lag") and "pg_monitor" in reason and role in reason, reason
                assert_held(primary, total)
                primary.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))
                out, err = proc.communicate(timeout=60)
            finally:
                reap(proc)
        assert proc.returncode == 0, err
        assert any("unknown" in r and "pg_monitor" in r for r in progress_reasons(out)), out
        assert_rotated_exactly_once(primary, before, last_run_id(primary))


def test_a_standby_slot_holding_the_xmin_horizon_is_named(pair: Pair) -> None:
    """A standby streaming through a physical slot with hot_standby_feedback, with a snapshot open there,
    holds the primary's xmin horizon through its slot: xmin_holders() names the slot as what keeps VACUUM
    from reclaiming what was written since (the driver asks the same after each reclaim VACUUM)."""
    with (
        psycopg.connect(pair.primary, autocommit=True) as primary,
        psycopg.connect(pair.standby, autocommit=True) as standby,
    ):
        make_table(primary, rows=1000)
        primary.execute("SELECT pg_create_physical_replication_slot('tr_standby')")
        standby.execute("ALTER SYSTEM SET primary_slot_name = 'tr_standby'")
        standby.execute("ALTER SYSTEM SET hot_standby_feedback = on")
        standby.execute("SELECT pg_reload_conf()")
        wait_until(
            lambda: (
                primary.execute(
                    "SELECT active AND xmin IS NOT NULL FROM pg_replication_slots"
                    " WHERE slot_name = 'tr_standby'"
                ).fetchone()
                == (True,)
            ),
            what="the slot in use, with the standby's xmin",
            timeout=60,
        )
        wait_until(lambda: caught_up(primary, standby), what="the standby to catch up", timeout=60)
        with psycopg.connect(pair.standby) as reader:
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SELECT count(*) FROM tickets").fetchone()  # the snapshot the slot now holds
            for _ in range(3):
                primary.execute("UPDATE tickets SET status = status + 1 WHERE id <= 10000")  # xids move on
            mark = primary.execute(
                "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric % 4294967296)::text::xid"
            ).fetchone()
            assert mark is not None
            row = primary.execute(
                "SELECT token_rotation.xmin_holders(now(), %s::xid)", (str(mark[0]),)
            ).fetchone()
            assert row is not None and "replication slot tr_standby (physical, active)" in (row[0] or ""), row
