"""Throw-away login roles for the privilege tests: a unique name per test, dropped afterwards."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from token_rotation import SQL_DIR

GRANTS = SQL_DIR / "examples" / "grants.sql"


@contextmanager
def temporary_role(conn: psycopg.Connection, prefix: str, password: str | None = None) -> Iterator[str]:
    """Creates a LOGIN role (with a password if given) named prefix_<random>; drops it and what it owns or
    was granted in this database afterwards. Roles are cluster-wide, hence the random suffix."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password) if password else sql.SQL("NULL")
        )
    )
    try:
        yield name
    finally:
        conn.execute("RESET ROLE")
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def grant_recipe(
    conn: psycopg.Connection, role: str, *, skip: str | None = None, table: str = "public.tickets"
) -> None:
    """Runs the GRANT statements of sql/examples/grants.sql for `role` (minus any line containing `skip`),
    on `table` in place of the recipe's public.tickets."""
    statements = [
        line.strip()
        for line in GRANTS.read_text().splitlines()
        if line.startswith("GRANT") and (skip is None or skip not in line)
    ]
    assert len(statements) >= (3 if skip else 4)
    for statement in statements:
        statement = statement.replace("public.tickets", table)
        conn.execute(re.sub(r"\brotator\b", sql.Identifier(role).as_string(conn), statement))


def dsn_as(dsn: str, role: str) -> str:
    """The test database's DSN with another login role (trust authentication on the test servers)."""
    params = conninfo_to_dict(dsn)
    params["user"] = role
    params.pop("password", None)
    return make_conninfo(**{k: str(v) for k, v in params.items()})
