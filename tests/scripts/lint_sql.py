"""`make lint`'s static check of the PL/pgSQL: plpgsql_check over every routine the tool installs.

On the machine's PostgreSQL (LINT_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres, the
PostgreSQL 15 that CI installs `postgresql-15-plpgsql-check` into) it creates a scratch database
token_rotation_lint, installs the tool there with token_rotation.migrate.upgrade (exactly as `install`
does), creates the extension plpgsql_check, runs plpgsql_check_function_tb() on every PL/pgSQL function and
procedure of schema token_rotation, prints each finding, drops the database and exits 1 if there was any
(2 when the server or the extension is missing). SQL-language functions need no such check: PostgreSQL
parses and analyses their bodies when it creates them.

Warnings on: other (unused or never-read variables and parameters, dead code, implicit casts that lose),
extra (unused OUT values, shadowed names, ...), performance (implicit casts that defeat an index, ...),
security (dynamic SQL built from unquoted text), compatibility. fatal_errors is off so that every finding of
every routine is listed, not only the first error. Nothing is turned off; a routine that needs an exception
says so in its own body with a `@plpgsql_check_options:` comment (none does today).
    .venv/bin/python tests/scripts/lint_sql.py
"""

from __future__ import annotations

import os
import sys

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from token_rotation import migrate

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "token_rotation_lint"

FINDINGS = f"""
SELECT p.oid::regprocedure::text AS routine, f.lineno, f.level, f.message, f.detail, f.hint, f.query
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
 CROSS JOIN LATERAL plpgsql_check_function_tb(
         p.oid, fatal_errors => false, other_warnings => true, extra_warnings => true,
         performance_warnings => false, security_warnings => true, compatibility_warnings => true) AS f
 WHERE p.pronamespace::regnamespace::text IN {migrate.SCHEMA_LIST}
 ORDER BY 1, 2
"""

ROUTINES = f"""
SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace::regnamespace::text IN {migrate.SCHEMA_LIST}
   AND l.lanname = 'plpgsql'
"""


def fail(message: str, code: int = 2) -> None:
    print(f"lint_sql: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> int:
    url = os.environ.get("LINT_DATABASE_URL") or DEFAULT_URL
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        fail(
            f"cannot connect to {conninfo_to_dict(url).get('host', 'localhost')}: {str(exc).strip()}\n"
            "  plpgsql_check runs on the machine's PostgreSQL 15: start it, or set LINT_DATABASE_URL"
        )
    with admin:
        major = admin.info.server_version // 10000
        row = admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone()
        if row is None:
            fail(
                f"the extension plpgsql_check is not installed on this PostgreSQL {major}\n"
                f"  install it: apt-get install -y postgresql-{major}-plpgsql-check"
            )
        ident = sql.Identifier(DATABASE)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        try:
            dsn = make_conninfo(url, dbname=DATABASE)
            migrate.upgrade(dsn)
            with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
                conn.execute("CREATE EXTENSION plpgsql_check")
                routines = conn.execute(ROUTINES).fetchone()
                findings = conn.execute(FINDINGS).fetchall()
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
    checked = routines["count"] if routines else 0
    for f in findings:
        print(f"{f['routine']} line {f['lineno']}: {f['level']}: {f['message']}")
        for key in ("detail", "hint", "query"):
            if f[key]:
                print(f"    {key}: {f[key]}")
    print(f"plpgsql_check (PostgreSQL {major}): {checked} routines, {len(findings)} finding(s)")
    return 1 if findings or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
