"""A throwaway local Citus cluster, for the Citus benchmark and tests: Citus 14 built from the upstream source
beside the project (../shared/citus: its build.sh compiles it against the venv's embedded PostgreSQL 18 into a
copy of that server, once per machine, cached) and started by its cluster.sh: a coordinator and N workers on
Unix sockets in a directory of their own, as OS user postgres (so: run as root).

    with local_cluster(Path("/tmp/x"), workers=2) as c: c.coordinator, c.workers
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

# where the source may be: TOKEN_ROTATION_CITUS_SOURCE, beside the checkout, or the machine's shared folder
CANDIDATES = [
    Path(p)
    for p in (
        os.environ.get("TOKEN_ROTATION_CITUS_SOURCE"),
        Path(__file__).resolve().parents[2].parent / "shared" / "citus",  # beside the checkout
        "/work/shared/citus",
    )
    if p
]
# the build is reused across runs (build.sh is idempotent: a copy that has citus.so is kept)
BUILD_DIR = Path(os.environ.get("TOKEN_ROTATION_CITUS_BUILD", "/tmp/token-rotation-citus-pg18"))
FIRST_PORT = 9700  # on sockets in the cluster's own directory: no other server's


class Unavailable(RuntimeError):
    """No Citus source here, or not root: no cluster can be started (a test skips, saying why)."""


@dataclass(frozen=True)
class Cluster:
    coordinator: str  # DSN
    workers: tuple[str, ...]
    directory: Path
    bindir: Path

    def psql(self, dsn: str, command: str) -> str:
        """psql -c as an operator would type it; returns stdout, raises on error."""
        done = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At", dsn, "-c", command],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql failed: {done.stderr}")
        return done.stdout


def source() -> Path:
    """The folder with build.sh, cluster.sh and the Citus source tarball."""
    found = next((p for p in CANDIDATES if (p / "build.sh").exists() and (p / "cluster.sh").exists()), None)
    if found is None:
        raise Unavailable(f"no Citus source (build.sh, cluster.sh) in {', '.join(map(str, CANDIDATES))}")
    if os.geteuid() != 0:
        raise Unavailable("cluster.sh starts the nodes as OS user postgres: run as root")
    return found


def build(folder: Path) -> Path:
    """The bin directory of a PostgreSQL 18 with Citus (build.sh, cached in BUILD_DIR)."""
    site = Path(sysconfig.get_paths()["purelib"])
    done = subprocess.run(
        ["bash", str(folder / "build.sh"), str(site), str(BUILD_DIR)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building Citus failed: {done.stdout}{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


@contextmanager
def local_cluster(base: Path, workers: int = 2) -> Iterator[Cluster]:
    """A coordinator and `workers` workers (cluster.sh) in base/citus; stopped with -m immediate and removed
    afterwards. Raises Unavailable where it cannot be started."""
    folder = source()
    bindir = build(folder)
    directory = base / "citus"
    for parent in [base, *base.parents]:
        parent.chmod(parent.stat().st_mode | 0o011)  # the nodes (user postgres) reach their directory
    try:
        done = subprocess.run(
            ["bash", str(folder / "cluster.sh"), str(bindir), str(directory), str(workers), str(FIRST_PORT)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"starting the Citus cluster failed: {done.stdout}{done.stderr}")
        dsns = [
            make_conninfo(host=str(directory), port=str(FIRST_PORT + i), user="postgres", dbname="postgres")
            for i in range(workers + 1)
        ]
        yield Cluster(dsns[0], tuple(dsns[1:]), directory, bindir)
    finally:
        subprocess.run(
            ["bash", str(folder / "cluster.sh"), "stop", str(directory)], capture_output=True, timeout=120
        )
        shutil.rmtree(directory, ignore_errors=True)
