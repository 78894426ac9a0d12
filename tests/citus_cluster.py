"""The real Citus cluster of the Citus tests (benchmarks.citus_cluster: Citus 14 built from
../shared/citus, a coordinator and 2 workers). Where it cannot start (a plain clone without that source, or
not root), the tests that need it skip, saying why; a build that fails is an error, not a skip."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.citus_cluster import Cluster, Unavailable, local_cluster

__all__ = ["Cluster", "cluster"]


@contextmanager
def cluster(base: Path, workers: int = 2) -> Iterator[Cluster]:
    try:
        with local_cluster(base, workers) as made:
            yield made
    except Unavailable as reason:
        pytest.skip(str(reason))
