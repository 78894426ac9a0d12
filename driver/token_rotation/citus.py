"""Citus clusters: where the tool goes on a coordinator and its worker nodes.

The tool is installed on every node, each install local to its node (the coordinator's DDL is not propagated:
each worker keeps the runs of the shards it holds, their checkpoints committed there with their batches). The
coordinator finds its workers in pg_dist_node and reaches them with its own connection parameters, the host
and port replaced by the node's. A node added later gets the tool at the next `install` on the coordinator;
until then a rotation that sends it a shard stops with that node named.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo

# the setting that keeps DDL on a Citus node local (Citus propagates a coordinator's DDL to its workers, and
# refuses DDL on a worker, unless it is off)
LOCAL_DDL = "SET citus.enable_ddl_propagation = off"


def node_kind(conn: psycopg.Connection) -> str | None:
    """'coordinator' or 'worker' in a Citus cluster; None without Citus."""
    query = "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') IS NOT NULL"
    row = conn.execute(query).fetchone()
    if not row or not row[0]:
        return None
    group = conn.execute("SELECT groupid FROM pg_catalog.pg_dist_local_group").fetchone()
    return "coordinator" if group and group[0] == 0 else "worker"


def workers(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """The primary worker nodes of a coordinator (host or socket directory, port), in pg_dist_node's order."""
    return [
        (str(host), int(port))
        for host, port in conn.execute(
            "SELECT nodename, nodeport FROM pg_catalog.pg_dist_node"
            " WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeid"
        ).fetchall()
    ]


def node_dsn(dsn: str, host: str, port: int) -> str:
    """The coordinator's DSN (URL or key=value) pointed at another node."""
    return make_conninfo(dsn, host=host, port=str(port), hostaddr="")
