"""Citus (issue 18): a distributed table rotated from the coordinator, each shard by a run of the tool on the
node that holds it, on a real local cluster (a coordinator and 2 workers, Citus 14 on PostgreSQL 18, built
from ../shared/citus: tests/citus_cluster.py). Every check of "exactly once" reads the previous column: each
row's original token is kept in `original`, and a row rotated once holds it in `previous` and a new token."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from background import run_cli
from citus_cluster import Cluster, cluster

pytestmark = [pytest.mark.own_server, pytest.mark.slow]

ROWS = 200_000
SHARDS = 16


@pytest.fixture(scope="module")
def citus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster, with the tool installed by `install` on the coordinator (which covers every node)."""
    with cluster(Path(tmp_path_factory.mktemp("citus"))) as made:
        done = run_cli(made.coordinator, "install")
        assert done.returncode == 0, done.stderr
        assert "and its 2 Citus worker node(s)" in done.stdout
        yield made


@pytest.fixture
def coordinator(citus: Cluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(citus.coordinator, autocommit=True) as conn:
        yield conn


def make_table(conn: psycopg.Connection, name: str, rows: int = ROWS, shards: int = SHARDS) -> None:
    """public.<name>: hash-distributed by tenant over `shards` shards, a composite key (tenant, id), a text
    token and its copy in `original`, a `previous` column for the grace token."""
    conn.execute(f"DROP TABLE IF EXISTS public.{name}")
    conn.execute(
        f"CREATE TABLE public.{name} (tenant integer NOT NULL, id bigint NOT NULL, token text NOT NULL,"
        " previous text, original text, PRIMARY KEY (tenant, id))"
    )
    conn.execute(f"SELECT create_distributed_table('public.{name}', 'tenant', shard_count => {shards})")
    conn.execute(
        f"INSERT INTO public.{name} (tenant, id, token) SELECT g % 97, g, md5(g::text) || md5((-g)::text)"
        f" FROM generate_series(1, {rows}) AS g"
    )
    conn.execute(f"UPDATE public.{name} SET original = token")


def once(conn: psycopg.Connection, name: str) -> tuple[int, int]:
    """(rows rotated exactly once with a hex:32 token, rows)."""
    row = conn.execute(
        f"SELECT count(*) FILTER (WHERE previous = original AND token <> original AND length(token) = 64),"
        f" count(*) FROM public.{name}"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def slow_call(name: str, workers: int = 2, batch: int = 100, sleep: str = "10 ms") -> str:
    """The psql CALL that rotates public.<name> in hex:32 with a previous column, in small batches with a
    sleep (so that a test can act in the middle of it)."""
    return (
        f"CALL token_rotation.rotate('public.{name}', p_format => 'hex:32', p_previous_column => 'previous',"
        f" p_batch_size => {batch}, p_sleep => '{sleep}', p_workers => {workers}, p_quiet => true)"
    )


def placement(conn: psycopg.Connection, shardid: int) -> tuple[str, int]:
    row = conn.execute(
        "SELECT n.nodename, n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)"
        " WHERE p.shardid = %s",
        (shardid,),
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def move(conn: psycopg.Connection, shardid: int, port: int) -> None:
    """citus_move_shard_placement() of a shard to the node on `port` (logical replication, as a rebalance)."""
    host, source = placement(conn, shardid)
    conn.execute(
        "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, shard_transfer_mode => 'force_logical')",
        (shardid, host, source, host, port),
    )


def half_done_on_a_worker(citus: Cluster, shardid: int) -> bool:
    """Whether a worker has an open run of that shard with rows done."""
    for dsn in citus.workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if conn.execute(
                "SELECT 1 FROM token_rotation.progress WHERE state = 'active' AND rows_done > 0"
                " AND (options->'citus'->>'shard')::bigint = %s",
                (shardid,),
            ).fetchone():
                return True
    return False


def shards_done(conn: psycopg.Connection) -> int:
    """How many shards the coordinator's open run has booked as done."""
    row = conn.execute(
        "SELECT count(*) FROM token_rotation.shards s JOIN token_rotation.runs r USING (run_id)"
        " WHERE r.state = 'active' AND s.done"
    ).fetchone()
    return int(row[0]) if row else 0


def pg_ctl(citus: Cluster, node: str, *args: str) -> None:
    """pg_ctl on a node's data directory (n0 the coordinator, n1, n2 the workers), as OS user postgres."""
    data = citus.directory / node
    command = [str(citus.bindir / "pg_ctl"), "-D", str(data), *args]
    if "start" in args:
        command[3:3] = ["-l", f"{data}.log", "-w"]
    subprocess.run(["su", "postgres", "-c", " ".join(command)], check=True, timeout=120)


def placements(conn: psycopg.Connection, name: str) -> list[tuple[int, int]]:
    """(shard id, port of its node) of every shard of public.<name>."""
    return [
        (int(shardid), int(port))
        for shardid, port in conn.execute(
            "SELECT s.shardid, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)"
            " JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = %s::regclass ORDER BY s.shardid",
            (f"public.{name}",),
        ).fetchall()
    ]


def live_rows(conn: psycopg.Connection, name: str) -> int:
    """Rows done of the table's open run as the progress view shows them now (0 before it starts)."""
    row = conn.execute(
        "SELECT rows_done FROM token_rotation.progress WHERE table_name = %s::regclass AND state = 'active'",
        (f"public.{name}",),
    ).fetchone()
    return int(row[0]) if row else 0


def coordinator_run(conn: psycopg.Connection, name: str) -> tuple[str, int, int]:
    row = conn.execute(
        "SELECT state, rows_done, rows_total FROM token_rotation.progress"
        " WHERE table_name = %s::regclass ORDER BY run_id DESC LIMIT 1",
        (f"public.{name}",),
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


def shard_runs(citus: Cluster, name: str) -> list[tuple[str, int, int]]:
    """Every worker's runs of shards of public.<name>, live: (state, rows done, batches logged there)."""
    found = []
    for dsn in citus.workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            found += conn.execute(
                "SELECT p.state, p.rows_done::integer, coalesce(p.batches_done, 0)::integer"
                " FROM token_rotation.progress p WHERE p.options ? 'citus' AND p.table_name::text LIKE %s",
                (f"{name}\\_%",),
            ).fetchall()
    return found


def in_background(dsn: str, statement: str) -> tuple[threading.Thread, list[BaseException], list[int]]:
    """Runs a statement in its own session on a thread; returns the thread, its error (if any) and its pid."""
    errors: list[BaseException] = []
    pids: list[int] = []

    def work() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                pids.append(conn.info.backend_pid)
                conn.execute(statement)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, errors, pids


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_install_covers_every_node_and_a_worker_refuses_it(citus: Cluster) -> None:
    """`install` on the coordinator put the tool on each worker, local to it; on a worker it is refused with
    what to do, exit 2."""
    for dsn in citus.workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('token_rotation.runs') IS NOT NULL").fetchone() == (True,)
            assert conn.execute("SELECT token_rotation_internal.citus_node()").fetchone() == ("worker",)
    done = run_cli(citus.workers[0], "install")
    assert done.returncode == 2
    assert "Citus worker node: install from the coordinator" in done.stderr


def test_a_psql_call_on_the_coordinator_rotates_every_row_once_each_shard_on_its_node(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """200,000 rows over 16 shards, composite key, hex:32 with a previous column: one CALL from psql on the
    coordinator; every row rotated once; the coordinator's run finished with every row; each shard's run
    finished on the node that holds it, with its batches (its checkpoints) logged there."""
    make_table(coordinator, "tickets")
    out = citus.psql(
        citus.coordinator,
        "CALL token_rotation.rotate('public.tickets', p_format => 'hex:32', p_previous_column => 'previous',"
        " p_workers => 2)",
    )
    assert out.strip() == "CALL" or out == ""
    assert once(coordinator, "tickets") == (ROWS, ROWS)
    assert coordinator_run(coordinator, "tickets") == ("finished", ROWS, ROWS)
    runs = shard_runs(citus, "tickets")
    assert len(runs) == SHARDS
    assert all(state == "finished" and batches >= 1 for state, _, batches in runs)
    assert sum(rows for _, rows, _ in runs) == ROWS
    checked = run_cli(citus.coordinator, "verify", "--table", "public.tickets")
    assert checked.returncode == 0 and "all 5 checks passed" in checked.stdout, checked.stdout
    # the last batch of one shard's run removed from its node's log: verify names that run and node
    with psycopg.connect(citus.workers[0], autocommit=True) as worker:
        worker.execute(
            "DELETE FROM token_rotation.batches WHERE (run_id, batch_no) = (SELECT run_id, max(batch_no)"
            " FROM token_rotation.batches WHERE run_id = (SELECT min(run_id) FROM token_rotation.batches)"
            " GROUP BY run_id)"
        )
    checked = run_cli(citus.coordinator, "verify", "--table", "public.tickets")
    assert checked.returncode == 1
    assert "FAIL  each shard's run verifies on its node" in checked.stdout and ":9701 (" in checked.stdout


def test_the_command_line_rotates_a_distributed_table_with_sessions_per_node(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """`rotate --table --workers 2 --json` on the coordinator: a finished event with every row, each rotated
    once; a second `rotate` starts a new run (the first is over)."""
    make_table(coordinator, "cli_tickets", rows=50_000)
    done = run_cli(
        citus.coordinator, "rotate", "--table", "public.cli_tickets", "--format", "hex:32",
        "--previous-column", "previous", "--workers", "2", "--json", timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    started = [e for e in events if e.get("event") == "started"]
    assert started and "16 shard(s), 2 session(s) per node" in started[0]["message"], started
    assert (started[0]["slices"], started[0]["workers"]) == (16, 2)
    finished = [e for e in events if e.get("event") == "finished"]
    assert finished and finished[0]["rows_done"] == 50_000, events[-3:]
    assert once(coordinator, "cli_tickets") == (50_000, 50_000)


def test_an_interrupted_call_resumes_each_shard_from_its_checkpoint_exactly_once(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """The coordinator's CALL is cancelled while shards are half done (its progress live meanwhile: rows done
    before any wave ended); the same CALL again finishes the run, and every row was rotated exactly once."""
    make_table(coordinator, "cut_tickets", rows=50_000)
    call = slow_call("cut_tickets", sleep="20 ms")
    thread, errors, pids = in_background(citus.coordinator, call)
    # the coordinator's progress is live: rows done before its first wave (of 4 shards) has ended
    wait_for(lambda: live_rows(coordinator, "cut_tickets") > 0 and shards_done(coordinator) == 0)
    wait_for(lambda: bool(pids))
    coordinator.execute("SELECT pg_cancel_backend(%s::integer)", (pids[0],))
    thread.join(120)
    assert errors, "the CALL was not interrupted"
    state, _, _ = coordinator_run(coordinator, "cut_tickets")
    assert state == "active"
    partial, total = once(coordinator, "cut_tickets")
    assert 0 < partial < total
    citus.psql(citus.coordinator, call)
    assert once(coordinator, "cut_tickets") == (50_000, 50_000)
    assert coordinator_run(coordinator, "cut_tickets") == ("finished", 50_000, 50_000)


def test_a_shard_move_during_the_run_waits_for_its_wave_and_no_row_is_rotated_twice(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """citus_move_shard_placement() of a shard not yet rotated, while the run goes on: the move completes
    while the run still goes on (it waits only for the wave that holds the shards' metadata lock), the run
    finishes, every row once, the shard on its new node."""
    make_table(coordinator, "moved_tickets", rows=50_000)
    shardid = coordinator.execute(
        "SELECT max(shardid) FROM pg_dist_shard WHERE logicalrelid = 'public.moved_tickets'::regclass"
    ).fetchone()[0]  # type: ignore[index]
    _, source = placement(coordinator, shardid)
    target = 9701 if source == 9702 else 9702
    thread, errors, _ = in_background(citus.coordinator, slow_call("moved_tickets", workers=1, sleep="20 ms"))
    wait_for(lambda: any(rows > 0 for _, rows, _ in shard_runs(citus, "moved_tickets")))
    move(coordinator, shardid, target)
    assert thread.is_alive(), "the run ended before the move: it tested nothing"
    thread.join(600)
    assert not errors, errors
    assert once(coordinator, "moved_tickets") == (50_000, 50_000)
    assert coordinator_run(coordinator, "moved_tickets") == ("finished", 50_000, 50_000)
    assert placement(coordinator, shardid)[1] == target


def test_a_shard_moved_away_from_its_unfinished_run_is_refused_until_it_is_back(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """The CALL is cancelled with a shard's run half done on its node; the shard is then moved to the other
    node (no wave holds it now). The same CALL refuses to give that shard a second run there, naming the
    shard and both nodes, and rotates nothing twice; moved back, the CALL finishes, every row once."""
    make_table(coordinator, "away_tickets", rows=50_000)
    thread, errors, pids = in_background(
        citus.coordinator, slow_call("away_tickets", workers=1, sleep="20 ms")
    )
    wait_for(
        lambda: any(state == "active" and rows > 0 for state, rows, _ in shard_runs(citus, "away_tickets"))
    )
    coordinator.execute("SELECT pg_cancel_backend(%s::integer)", (pids[0],))
    thread.join(120)
    assert errors
    half = coordinator.execute(
        "SELECT s.shardid FROM token_rotation.shards s JOIN token_rotation.runs r USING (run_id)"
        " WHERE r.target = 'public.away_tickets'::regclass AND NOT s.done ORDER BY s.shardid"
    ).fetchall()
    unfinished = [shardid for (shardid,) in half if half_done_on_a_worker(citus, shardid)]
    assert unfinished, "no shard was left half done"
    shardid = unfinished[0]
    _, source = placement(coordinator, shardid)
    move(coordinator, shardid, 9701 if source == 9702 else 9702)
    before = once(coordinator, "away_tickets")
    with pytest.raises(psycopg.errors.ConnectionException) as refused:
        coordinator.execute(slow_call("away_tickets", batch=5000, sleep="0"))
    assert f"moved from node {citus.directory}:{source}" in str(refused.value)
    assert once(coordinator, "away_tickets") == before
    move(coordinator, shardid, source)
    citus.psql(citus.coordinator, slow_call("away_tickets", batch=5000, sleep="0"))
    assert once(coordinator, "away_tickets") == (50_000, 50_000)


def test_a_worker_stopped_mid_run_is_named_and_the_same_call_resumes_exactly_once(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """A worker stopped with -m immediate in the middle of the run: the CALL stops naming that node (the
    run stays open, never finished); the worker restarted, the same CALL finishes, every row rotated once."""
    make_table(coordinator, "crash_tickets", rows=50_000)
    call = slow_call("crash_tickets")
    thread, errors, _ = in_background(citus.coordinator, call)
    wait_for(lambda: any(rows > 0 for _, rows, _ in shard_runs(citus, "crash_tickets")))
    pg_ctl(citus, "n2", "-m", "immediate", "stop")
    thread.join(300)
    assert errors, "the CALL went on without its worker"
    assert "node" in str(errors[0]) and "9702" in str(errors[0])
    assert coordinator_run(coordinator, "crash_tickets")[0] == "active"
    pg_ctl(citus, "n2", "start")
    citus.psql(citus.coordinator, call)
    assert once(coordinator, "crash_tickets") == (50_000, 50_000)
    assert coordinator_run(coordinator, "crash_tickets") == ("finished", 50_000, 50_000)


def test_a_reference_table_is_refused_with_why(citus: Cluster, coordinator: psycopg.Connection) -> None:
    """A reference table (a copy on every node): refused before anything changes, saying why and what to
    do."""
    coordinator.execute("DROP TABLE IF EXISTS public.ref_keys")
    coordinator.execute("CREATE TABLE public.ref_keys (id bigint PRIMARY KEY, token uuid NOT NULL)")
    coordinator.execute("SELECT create_reference_table('public.ref_keys')")
    coordinator.execute(
        "INSERT INTO public.ref_keys SELECT g, gen_random_uuid() FROM generate_series(1, 100) g"
    )
    before = coordinator.execute("SELECT array_agg(token ORDER BY id) FROM public.ref_keys").fetchone()
    with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
        coordinator.execute("CALL token_rotation.rotate('public.ref_keys')")
    assert "reference table" in str(refused.value) and refused.value.diag.message_hint
    assert (
        coordinator.execute("SELECT array_agg(token ORDER BY id) FROM public.ref_keys").fetchone() == before
    )
    assert coordinator.execute(
        "SELECT count(*) FROM token_rotation.runs WHERE target = 'public.ref_keys'::regclass"
    ).fetchone() == (0,)


def test_a_rotating_role_cannot_tag_its_own_tables_run_as_a_shard_of_anothers_run(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """Issue 17's model on Citus: the recipe's role for a distributed table of its own, on a worker, CALLs
    rotate() of its own shard with p_citus naming a shard of another table's finished run (the census would
    take that run as the shard's): refused with 22023, no run started. Tagged with the other run but its own
    shard's id (allowed: it may rotate its own shard), its run is ignored: that run still verifies, its rows
    each rotated once."""
    make_table(coordinator, "victim_tickets", rows=4000, shards=4)
    make_table(coordinator, "own_tickets", rows=4000, shards=4)
    citus.psql(citus.coordinator, slow_call("victim_tickets", batch=1000, sleep="0"))
    run = coordinator.execute(
        "SELECT run_id, extract(epoch FROM started_at) FROM token_rotation.runs"
        " WHERE target = 'public.victim_tickets'::regclass"
    ).fetchone()
    assert run is not None
    role = "tr_citus_attacker"
    coordinator.execute(f"DROP ROLE IF EXISTS {role}")
    coordinator.execute(f"CREATE ROLE {role} LOGIN")  # Citus creates it on every node
    coordinator.execute(f"GRANT SELECT, UPDATE ON public.own_tickets TO {role}")  # and on every shard
    for dsn in citus.workers:  # the recipe's grants on the tool, on each node's own install
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET citus.enable_ddl_propagation = off")
            conn.execute(f"GRANT USAGE ON SCHEMA token_rotation TO {role}")
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA token_rotation TO {role}")
            conn.execute(f"GRANT pg_monitor TO {role}")
    shards = coordinator.execute(
        "SELECT s.logicalrelid::text, s.shardid, n.nodeport FROM pg_dist_shard s"
        " JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)"
        " WHERE s.logicalrelid IN ('public.victim_tickets'::regclass, 'public.own_tickets'::regclass)"
    ).fetchall()
    own_id, port = next((i, p) for t, i, p in shards if t == "own_tickets")
    victim_id = next(i for t, i, p in shards if t == "victim_tickets" and p == port)
    worker = next(d for d in citus.workers if f"port={port}" in d)
    tag = {"run": run[0], "started": float(run[1])}
    with psycopg.connect(make_conninfo(worker, user=role), autocommit=True) as attacker:
        attacker.execute("SET citus.override_table_visibility = off")  # shards are hidden from users
        call = (
            f"CALL token_rotation.rotate('public.own_tickets_{own_id}', p_format => 'hex:32',"
            " p_quiet => true, p_citus => %s)"
        )
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            attacker.execute(call, (json.dumps({**tag, "shard": victim_id}),))
        assert attacker.execute(
            "SELECT count(*) FROM token_rotation.runs WHERE target::text LIKE 'own\\_tickets\\_%'"
        ).fetchone() == (0,)
        attacker.execute(call, (json.dumps({**tag, "shard": own_id}),))  # its own shard: it may
    checked = run_cli(citus.coordinator, "verify", "--table", "public.victim_tickets")
    assert checked.returncode == 0 and "all 5 checks passed" in checked.stdout, checked.stdout
    assert once(coordinator, "victim_tickets") == (4000, 4000)
    for dsn in citus.workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET citus.enable_ddl_propagation = off")
            conn.execute(f"DROP OWNED BY {role}")
    coordinator.execute(f"DROP OWNED BY {role}")
    coordinator.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("when", ["during its CALL", "between CALLs"])
def test_a_cancelled_run_cancels_its_shards_runs_and_the_next_call_rotates_every_row_anew(
    citus: Cluster, coordinator: psycopg.Connection, when: str
) -> None:
    """cancel() of the coordinator's run, during its CALL (it ends after its wave and cancels the shards'
    runs on their nodes) or between CALLs (a shard's open run of that run is cancelled when the next run
    reaches it): no shard run is left open, and the next CALL starts a new run that rotates every row once
    more (each row's previous token is its token from before that CALL)."""
    name = "cancel_during" if when.startswith("during") else "cancel_between"
    make_table(coordinator, name, rows=50_000)
    thread, errors, pids = in_background(citus.coordinator, slow_call(name, workers=1, sleep="20 ms"))
    wait_for(lambda: any(rows > 0 for _, rows, _ in shard_runs(citus, name)))
    if when.startswith("between"):
        coordinator.execute("SELECT pg_cancel_backend(%s::integer)", (pids[0],))
        thread.join(120)
        assert errors and any(state == "active" for state, _, _ in shard_runs(citus, name))
    coordinator.execute(f"SELECT token_rotation.cancel('public.{name}')")
    thread.join(300)
    assert coordinator_run(coordinator, name)[0] == "cancelled"
    if when.startswith("during"):
        assert not errors, errors
        assert not any(state in ("active", "paused") for state, _, _ in shard_runs(citus, name))
    partial, total = once(coordinator, name)
    assert 0 < partial < total
    coordinator.execute(f"CREATE TABLE public.{name}_before AS SELECT tenant, id, token FROM public.{name}")
    citus.psql(citus.coordinator, slow_call(name, batch=5000, sleep="0"))
    assert coordinator_run(coordinator, name) == ("finished", 50_000, 50_000)
    anew = coordinator.execute(
        f"SELECT count(*) FROM public.{name} t JOIN public.{name}_before b USING (tenant, id)"
        " WHERE t.previous = b.token AND t.token <> b.token AND length(t.token) = 64"
    ).fetchone()
    assert anew == (50_000,)
    assert not any(state in ("active", "paused") for state, _, _ in shard_runs(citus, name))


def test_the_coordinator_stopped_mid_run_and_restarted_the_same_call_resumes_exactly_once(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """The coordinator stopped with -m immediate in the middle of a wave (its bookkeeping of that wave lost)
    and restarted: the same CALL finishes the run from what the nodes hold, every row rotated once."""
    name = "coordinator_crash"
    make_table(coordinator, name, rows=50_000)
    thread, errors, _ = in_background(citus.coordinator, slow_call(name))
    wait_for(lambda: any(rows > 0 for _, rows, _ in shard_runs(citus, name)))
    pg_ctl(citus, "n0", "-m", "immediate", "stop")
    thread.join(120)
    assert errors, "the CALL went on without its coordinator"
    pg_ctl(citus, "n0", "start")
    citus.psql(citus.coordinator, slow_call(name, batch=5000, sleep="0"))
    with psycopg.connect(citus.coordinator, autocommit=True) as conn:
        assert once(conn, name) == (50_000, 50_000)
        assert coordinator_run(conn, name) == ("finished", 50_000, 50_000)


def test_a_single_shard_table_of_a_distributed_schema_is_rotated_on_its_node(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """Schema-based sharding: a table of a distributed schema is one shard on one node; the CALL on the
    coordinator rotates it there, every row once."""
    coordinator.execute("DROP SCHEMA IF EXISTS tenant_a CASCADE")
    coordinator.execute("CREATE SCHEMA tenant_a")
    coordinator.execute("SELECT citus_schema_distribute('tenant_a')")
    coordinator.execute(
        "CREATE TABLE tenant_a.keys (id bigint PRIMARY KEY, token text NOT NULL, previous text,"
        " original text)"
    )
    coordinator.execute(
        "INSERT INTO tenant_a.keys (id, token) SELECT g, md5(g::text) FROM generate_series(1, 10000) AS g"
    )
    coordinator.execute("UPDATE tenant_a.keys SET original = token")
    assert coordinator.execute(
        "SELECT DISTINCT kind FROM token_rotation_internal.citus_shards('tenant_a.keys')"
    ).fetchall() == [("single",)]
    coordinator.execute(
        "CALL token_rotation.rotate('tenant_a.keys', p_format => 'base64url:24',"
        " p_previous_column => 'previous', p_quiet => true)"
    )
    row = coordinator.execute(
        "SELECT count(*) FILTER (WHERE previous = original AND token <> original AND length(token) = 32)"
        " FROM tenant_a.keys"
    ).fetchone()
    assert row == (10_000,)
    assert coordinator.execute(
        "SELECT state, rows_done FROM token_rotation.runs WHERE target = 'tenant_a.keys'::regclass"
    ).fetchone() == ("finished", 10_000)


def open_shard_runs(citus: Cluster, column: str, params: tuple[str, ...] = ()) -> set[str | None]:
    """One column (an SQL expression) of every open shard run on every node."""
    values: set[str | None] = set()
    for dsn in citus.workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            values |= {
                row[0]
                for row in conn.execute(
                    f"SELECT {column} FROM token_rotation.runs WHERE options ? 'citus'"
                    " AND state IN ('active', 'paused')",
                    params,
                ).fetchall()
            }
    return values


def shard_options(citus: Cluster, key: str) -> set[str | None]:
    """The value of one option of every open shard run on every node."""
    return open_shard_runs(citus, "options->>%s", (key,))


def shard_holds(citus: Cluster) -> set[str | None]:
    """The hold reason of every open shard run on every node (None: no hold)."""
    return open_shard_runs(citus, "hold_reason")


def test_pause_set_and_unpause_on_the_coordinator_reach_the_shards_runs_within_a_batch(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """`pause` on the coordinator while a wave runs: the shards' runs on their nodes pause within a batch (no
    row rotated while paused, the CALL still there); `set --sleep 0` reaches their options, `hold` and its
    lifting their hold; `unpause` lets the same CALL finish, every row once."""
    name = "paused_tickets"
    make_table(coordinator, name, rows=50_000)
    thread, errors, _ = in_background(citus.coordinator, slow_call(name, workers=1, sleep="20 ms"))
    wait_for(lambda: live_rows(coordinator, name) > 0)
    assert run_cli(citus.coordinator, "pause", "--table", f"public.{name}").returncode == 0
    wait_for(lambda: {state for state, _, _ in shard_runs(citus, name)} - {"finished"} == {"paused"})
    rows = "SELECT rows_done FROM token_rotation.progress WHERE table_name = %s::regclass"
    frozen = coordinator.execute(rows, (f"public.{name}",)).fetchone()
    time.sleep(1.5)
    assert coordinator.execute(rows, (f"public.{name}",)).fetchone() == frozen
    assert thread.is_alive()
    assert run_cli(citus.coordinator, "set", "--table", f"public.{name}", "--sleep", "0").returncode == 0
    assert shard_options(citus, "sleep") == {"00:00:00"}
    held = run_cli(citus.coordinator, "hold", "--table", f"public.{name}", "--reason", "backup")
    assert held.returncode == 0, held.stderr
    assert shard_holds(citus) == {"backup"}
    lifted = run_cli(citus.coordinator, "hold", "--table", f"public.{name}")  # no --reason: lifts it
    assert lifted.returncode == 0, lifted.stderr
    assert shard_holds(citus) == {None}
    assert run_cli(citus.coordinator, "unpause", "--table", f"public.{name}").returncode == 0
    thread.join(300)
    assert not errors, errors
    assert once(coordinator, name) == (50_000, 50_000)
    assert coordinator_run(coordinator, name) == ("finished", 50_000, 50_000)


def test_django_rotate_tokens_rotates_a_distributed_table(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """The test project migrated on the coordinator, its myapp_ticket distributed by id (its unique token
    dropped: Citus allows a unique index only with the distribution column): `manage.py rotate_tokens
    myapp.Ticket --workers 2` rotates every row once, one run of the distributed table."""
    from django_app.project import manage

    dsn = f"postgresql://postgres@/postgres?host={citus.directory}&port=9700"
    done = manage(dsn, "migrate")
    assert done.returncode == 0, done.stderr
    coordinator.execute("ALTER TABLE myapp_ticket DROP CONSTRAINT IF EXISTS myapp_ticket_token_key")
    coordinator.execute("SELECT create_distributed_table('myapp_ticket', 'id', shard_count => 8)")
    coordinator.execute(
        "INSERT INTO myapp_ticket (token, title, created_at)"
        " SELECT gen_random_uuid(), 'ticket ' || g, now() FROM generate_series(1, 20000) AS g"
    )
    coordinator.execute("CREATE TABLE myapp_ticket_before AS SELECT id, token FROM myapp_ticket")
    done = manage(dsn, "rotate_tokens", "myapp.Ticket", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "8 shard(s), 2 session(s) per node" in done.stdout
    changed = coordinator.execute(
        "SELECT count(*) FROM myapp_ticket t JOIN myapp_ticket_before b USING (id) WHERE t.token <> b.token"
    ).fetchone()
    assert changed == (20_000,)
    assert coordinator_run(coordinator, "myapp_ticket") == ("finished", 20_000, 20_000)


def test_a_rebalance_during_the_run_moves_shards_between_waves_and_no_row_is_rotated_twice(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """Four shards moved onto one node (12 against 4), then rebalance_table_shards() while the run goes on:
    the rebalance completes, moving shards between the run's waves, the run finishes, every row once."""
    name = "rebalanced"
    make_table(coordinator, name, rows=50_000)
    for shardid, _ in [row for row in placements(coordinator, name) if row[1] == 9701][:4]:
        move(coordinator, shardid, 9702)
    unbalanced = placements(coordinator, name)
    thread, errors, _ = in_background(citus.coordinator, slow_call(name, workers=1, sleep="20 ms"))
    wait_for(lambda: live_rows(coordinator, name) > 0)
    coordinator.execute(
        "SELECT rebalance_table_shards(%s::regclass, shard_transfer_mode => 'force_logical')",
        (f"public.{name}",),
    )
    thread.join(600)
    assert not errors, errors
    assert once(coordinator, name) == (50_000, 50_000)
    assert coordinator_run(coordinator, name) == ("finished", 50_000, 50_000)
    assert placements(coordinator, name) != unbalanced, "the rebalance moved nothing: it tested nothing"


def test_a_plain_table_on_the_coordinator_is_rotated_as_on_any_server(
    citus: Cluster, coordinator: psycopg.Connection
) -> None:
    """A table Citus does not manage, on the coordinator: an ordinary run there, no shard involved."""
    coordinator.execute("DROP TABLE IF EXISTS public.local_keys")
    coordinator.execute("CREATE TABLE public.local_keys (id bigint PRIMARY KEY, token uuid NOT NULL)")
    coordinator.execute(
        "INSERT INTO public.local_keys SELECT g, gen_random_uuid() FROM generate_series(1, 5000) g"
    )
    coordinator.execute("CREATE TABLE public.local_keys_before AS SELECT * FROM public.local_keys")
    coordinator.execute("CALL token_rotation.rotate('public.local_keys', p_quiet => true)")
    changed = coordinator.execute(
        "SELECT count(*) FROM public.local_keys k JOIN public.local_keys_before b USING (id)"
        " WHERE k.token <> b.token"
    ).fetchone()
    assert changed == (5000,)
    run = coordinator.execute(
        "SELECT r.state, r.rows_done,"
        " (SELECT count(*) FROM token_rotation.shards s WHERE s.run_id = r.run_id),"
        " (SELECT count(*) FROM token_rotation.batches b WHERE b.run_id = r.run_id) > 0"
        " FROM token_rotation.runs r WHERE r.target = 'public.local_keys'::regclass"
    ).fetchone()
    assert run == ("finished", 5000, 0, True)


def test_zz_uninstall_on_the_coordinator_removes_the_tool_from_every_node(citus: Cluster) -> None:
    """`uninstall` on the coordinator (after every other test of the module: zz) leaves no token_rotation on
    any node; `install` brings it back on every node."""
    done = run_cli(citus.coordinator, "uninstall")
    assert done.returncode == 0, done.stderr
    assert "and its 2 Citus worker node(s)" in done.stdout
    for dsn in (citus.coordinator, *citus.workers):
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regnamespace('token_rotation')").fetchone() == (None,)
    assert run_cli(citus.coordinator, "install").returncode == 0
    for dsn in citus.workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('token_rotation.runs') IS NOT NULL").fetchone() == (True,)
