"""A PostgreSQL 15 server of its own with pg_cron preloaded (the Debian package postgresql-15-cron, which
.ci/run installs), for the schedule tests; needs_cron skips a test where the package is absent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from servers import PG15_BIN, Server, dedicated_server

F = TypeVar("F", bound=Callable[..., Any])

PG_CRON = PG15_BIN.parent / "lib" / "pg_cron.so"
WITHOUT_CRON = pytest.mark.skipif(
    not PG_CRON.exists(), reason=f"{PG_CRON} is absent: apt-get install postgresql-15-cron (.ci/run does)"
)


def needs_cron(test: F) -> F:
    """Marks a test that uses cron_server: skipped without pg_cron, and marked pg15 (15's binaries), which
    puts it in CI's PostgreSQL 15 lane."""
    return pytest.mark.pg15(WITHOUT_CRON(test))


@pytest.fixture(scope="module")
def cron_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """PostgreSQL 15 with pg_cron preloaded for the database postgres (where the tool is installed), its
    jobs connecting over the server's Unix socket."""
    base = Path(tmp_path_factory.mktemp("cron-"))
    settings = {
        "shared_preload_libraries": "pg_cron",
        "cron.database_name": "postgres",
        "cron.host": str(base / "server"),
    }
    with dedicated_server(base, PG15_BIN, settings) as made:
        with psycopg.connect(made.dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION pg_cron")
        yield made
