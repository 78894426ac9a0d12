"""A distributed table's rotation against Citus's own one-statement-per-shard UPDATE (issue 18).

    python -m benchmarks.citus --rows 2000000 --shards 32 --rounds 3      (or: make bench-citus)

On a local Citus cluster (a coordinator and 2 workers, benchmarks.citus_cluster; or --coordinator
DSN of a cluster of yours with the tool installed), two identical hash-distributed tables of --rows rows over
--shards shards. Each round, in alternation and after a VACUUM of both: the tool's rotation of one
(`CALL token_rotation.rotate(..., p_workers => --workers)`, its defaults otherwise: batches, checkpoints,
progress log, on each shard's node) and, as the reference, `run_command_on_shards(twin, UPDATE %s SET token =
gen_random_uuid())` of the other: every shard in one statement, all at once, no batch, no checkpoint. Then
the rotation of a third identical table whose shards are all on one node (created while the other worker
takes no shards), with the same sessions per node: one node's sessions only against both nodes' (what this
machine can show of scaling: its 2 cores serve every node), and the rotation with 1 session per node. It
prints each round and the medians and spreads of the ratios; goal: the rotation <= 1.15x the reference.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import psycopg

from token_rotation import citus, migrate

from benchmarks import common
from benchmarks.citus_cluster import local_cluster

TABLES = ("bench_citus_tickets", "bench_citus_twin", "bench_citus_one_node")


def make_tables(dsn: str, rows: int, shards: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS public.{table}")
            conn.execute(
                f"CREATE TABLE public.{table} (tenant integer NOT NULL, id bigint NOT NULL,"
                " token uuid NOT NULL DEFAULT gen_random_uuid(), title text NOT NULL,"
                " PRIMARY KEY (tenant, id))"
            )
            # the one-node table's shards all go to the first worker: the others take none while it is made
            others = (
                conn.execute(
                    "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeid OFFSET 1"
                ).fetchall()
                if table == TABLES[2]
                else []
            )
            for host, port in others:
                conn.execute(
                    "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", (host, port)
                )
            conn.execute(
                f"SELECT create_distributed_table('public.{table}', 'tenant', shard_count => %s,"
                " colocate_with => 'none')",
                (shards,),
            )
            for host, port in others:
                conn.execute("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', true)", (host, port))
            conn.execute(
                f"INSERT INTO public.{table} (tenant, id, title) SELECT g %% 1000, g, 'ticket ' || g"
                " FROM generate_series(1, %s) AS g",
                (rows,),
            )
            conn.execute(f"VACUUM (ANALYZE) public.{table}")


def vacuum(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"VACUUM public.{table}")


def rotation(dsn: str, workers: int, table: str = TABLES[0]) -> float:
    """Seconds of one CALL of the tool on a distributed table; checks that it finished every row."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(
            f"CALL token_rotation.rotate('public.{table}', p_workers => %s, p_quiet => true)", (workers,)
        )
        seconds = time.perf_counter() - started
        row = conn.execute(
            "SELECT state, rows_done, rows_expected FROM token_rotation.runs"
            f" WHERE target = 'public.{table}'::regclass ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    if row is None or row[0] != "finished" or row[1] != row[2]:
        raise RuntimeError(f"the rotation did not finish every row: {row}")
    return seconds


def reference(dsn: str) -> float:
    """Seconds of Citus's UPDATE of every shard of the twin, all shards at once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        failed = conn.execute(
            f"SELECT count(*) FILTER (WHERE NOT success) FROM run_command_on_shards('public.{TABLES[1]}',"
            " $$UPDATE %s SET token = gen_random_uuid()$$)"  # no parameters: %s goes to Citus as it is
        ).fetchone()
        seconds = time.perf_counter() - started
    if failed != (0,):
        raise RuntimeError("run_command_on_shards failed on some shard")
    return seconds


@contextmanager
def coordinator(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="bench-citus-") as base, local_cluster(Path(base)) as made:
        with psycopg.connect(made.coordinator, autocommit=True) as conn:
            nodes = citus.workers(conn)
        migrate.upgrade(made.coordinator)  # as `token-rotation install` does: every node
        for host, port in nodes:
            migrate.upgrade(citus.node_dsn(made.coordinator, host, port))
        yield made.coordinator


@click.command()
@click.option("--rows", type=int, default=2_000_000, show_default=True)
@click.option("--shards", type=int, default=32, show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Sessions per node of the rotation.")
@click.option("--coordinator", "dsn", default=None, help="A Citus coordinator with the tool installed.")
def main(rows: int, shards: int, rounds: int, workers: int, dsn: str | None) -> None:
    with coordinator(dsn) as url:
        make_tables(url, rows, shards)
        ratios, nodes, sessions = [], [], []
        print(f"{rows:,} rows over {shards} shards; {rounds} round(s), alternated")
        for n in range(rounds):
            vacuum(url)
            if n % 2 == 0:
                tool, ref = rotation(url, workers), reference(url)
            else:
                ref, tool = reference(url), rotation(url, workers)
            vacuum(url)
            alone = rotation(url, workers, TABLES[2])
            single = rotation(url, 1)
            ratios.append(tool / ref)
            nodes.append(tool / alone)
            sessions.append(tool / single)
            print(
                f"round {n + 1}: rotation ({workers}/node, 2 nodes) {tool:.2f}s, run_command_on_shards "
                f"{ref:.2f}s ({tool / ref:.3f}x); every shard on 1 node {alone:.2f}s (2 nodes: "
                f"{tool / alone:.3f}x of it); 1 session/node {single:.2f}s "
                f"({workers}/node: {tool / single:.3f}x of it)"
            )
        ratio = common.median(ratios)
        print(f"rotation / run_command_on_shards: median {ratio:.3f}x, spread {common.spread(ratios):.0%}")
        print(
            f"both nodes / one node's sessions only: median {common.median(nodes):.3f}x, "
            f"spread {common.spread(nodes):.0%}"
        )
        print(
            f"{workers} sessions per node / 1: median {common.median(sessions):.3f}x, "
            f"spread {common.spread(sessions):.0%}"
        )
        print(common.goal(18, "the rotation against run_command_on_shards", ratio, 1.15))
    sys.exit(0)


if __name__ == "__main__":
    main()
