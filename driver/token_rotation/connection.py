"""Choosing and opening the database connection.

Which database, in order: `--dsn`, else DATABASE_URL, else the libpq PG* variables (PGHOST, PGDATABASE, ...),
else the embedded server in ./.pgdata, started on demand. A DSN is only ever shown through `masked()`,
which hides every secret option libpq knows (password, sslpassword, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from token_rotation import embedded
from token_rotation.errors import EXIT_BAD_INPUT, ToolError

APPLICATION_NAME = "token-rotation"
LIBPQ_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Target:
    """A resolved database: its DSN and where it came from (--dsn, DATABASE_URL, PG*, embedded)."""

    dsn: str
    source: str
    embedded: bool = False

    def masked(self) -> str:
        """The DSN without its secrets (masked()); where it came from when it is empty (the PG* variables)."""
        return masked(self.dsn) if self.dsn else self.source


# connection options whose value is a secret: libpq's own list (PQconndefaults marks them with dispchar "*":
# password, sslpassword, and oauth_client_secret since libpq 18), and these whatever the libpq in use knows
KNOWN_SECRETS = frozenset({"password", "sslpassword", "oauth_client_secret"})


def secret_keywords() -> frozenset[str]:
    """The connection options that hold a secret, as libpq declares them, plus KNOWN_SECRETS."""
    declared = {o.keyword.decode() for o in pq.Conninfo.get_defaults() if o.dispchar == b"*" and o.keyword}
    return KNOWN_SECRETS | declared


def masked(dsn: str) -> str:
    """The one way a DSN is shown (install, seed, `rotating run ... in <dsn>`, --json's database): parsed by
    libpq's rules (URL or key=value), every secret option (secret_keywords) replaced by ***; a DSN that does
    not parse is hidden whole."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    secrets = secret_keywords()
    shown = {k: ("***" if k in secrets and v not in (None, "") else v) for k, v in params.items()}
    return make_conninfo(**shown)  # type: ignore[arg-type]


def resolve(dsn: str | None, *, start_embedded: bool = True) -> Target:
    """Picks the database to use (see the module docstring)."""
    if dsn:
        return Target(dsn, "--dsn")
    if os.environ.get("DATABASE_URL"):
        return Target(os.environ["DATABASE_URL"], "DATABASE_URL")
    if any(os.environ.get(var) for var in LIBPQ_VARS):
        return Target("", "PG* environment variables")
    url = embedded.start() if start_embedded else (embedded.running_url() or "")
    return Target(url, f"embedded server in {embedded.pgdata_dir()}", embedded=True)


def embedded_notice(target: Target) -> str | None:
    """The line every command prints on stderr when it falls back on the embedded server, so that a DBA who
    forgot DATABASE_URL sees at once that the tool is not looking at their database."""
    if not target.embedded:
        return None
    return (
        f"no --dsn, DATABASE_URL or PG* variables: using the embedded demo server in {embedded.pgdata_dir()}"
    )


# the search_path of the driver's side connections: nothing of the caller's schemas (pg_temp is never searched
# for functions and operators), so that no look-alike function or operator in public or elsewhere on the
# caller's path can stand in for a built-in the driver's own queries call (CVE-2018-1058)
PINNED_PATH = "pg_catalog, pg_temp"


def connect_for_user(dsn: str, application_name: str) -> psycopg.Connection:
    """connect(), with a DSN that does not parse reported as bad input, without echoing the DSN (it may
    hold a password). For a side connection (progress, status, verify, control, VACUUM): its search_path
    is pinned to PINNED_PATH (user_path() lends it the caller's path to resolve a name they typed). The
    connections that CALL rotate() use connect() and keep the caller's path, for the table's triggers
    (rotate() pins its own)."""
    try:
        conn = connect(dsn, application_name=application_name)
    except psycopg.ProgrammingError as exc:
        if exc.sqlstate is None:
            reason = str(exc).split(":")[0].strip() or "it does not parse"
            raise ToolError(
                f"invalid DSN ({reason}): pass a libpq URL or key=value string", EXIT_BAD_INPUT
            ) from None
        raise
    try:
        conn.execute(f"SET search_path = {PINNED_PATH}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def user_path(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A transaction on an autocommit connection in which search_path is the caller's own again (the
    session's default: server, database, role and DSN settings), for resolving a name as they typed it
    (`--table tickets`). What runs inside must name every function and operator with its schema; the pinned
    path is back at COMMIT."""
    with conn.transaction():
        conn.execute("SET LOCAL search_path TO DEFAULT")
        yield conn


def connect(
    dsn: str, *, autocommit: bool = True, application_name: str = APPLICATION_NAME
) -> psycopg.Connection:
    """Opens a connection with the tool's application_name (so pg_stat_activity shows who it is) and
    client_connection_check_interval, so that a CALL notices a lost client within seconds. A DSN that does
    not parse, or whose port is no number, is a psycopg.ProgrammingError (libpq would only find the port
    out when connecting, as an OperationalError like a server that is down)."""
    check_ports(dsn)
    conn = psycopg.connect(dsn, autocommit=autocommit, application_name=application_name, connect_timeout=10)
    if conn.info.server_version >= 140000:
        conn.execute("SET client_connection_check_interval = '2s'")
    conn.execute("SET statement_timeout = 0")
    return conn


def check_ports(dsn: str) -> None:
    """Raises psycopg.ProgrammingError if the DSN does not parse or a port in it is not a number."""
    port = str(conninfo_to_dict(dsn).get("port") or "")
    if not all(part.strip().isdigit() or not part.strip() for part in port.split(",")):
        raise psycopg.ProgrammingError("invalid port, not a number")
