"""The tool's objects as PostgreSQL prints them, to compare two databases (a fresh install against an upgrade,
an install before and after an uninstall), and the shipped revisions' frozen states (tests/fixtures/)."""

from __future__ import annotations

import gzip
from pathlib import Path

import psycopg

from token_rotation import migrate

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHIPPED = ("0001", "0002")  # revisions released with a frozen copy of sql/ (tests/fixtures/README.md)
HEAD = migrate.head_revision()
TOOL = migrate.SCHEMA_LIST  # the tool's two schemas, as an SQL list


def install_shipped(dsn: str, revision: str) -> None:
    """Puts the database in the state the shipped `revision` left: its frozen copy of sql/, run as that
    revision ran it, and the alembic_version row Alembic wrote."""
    script = gzip.decompress((FIXTURES / f"shipped_{revision}.sql.gz").read_bytes()).decode()
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(script.encode())  # bytes: no parameters, so % stays literal
        conn.execute(
            "CREATE TABLE token_rotation.alembic_version (version_num varchar(32) NOT NULL,"
            " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        conn.execute("INSERT INTO token_rotation.alembic_version VALUES (%s)", (revision,))


def tool_objects(dsn: str) -> list[str]:
    """Every object in the tool's schema, and any relation or function the tool might leave elsewhere."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"""
            SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname IN {TOOL}
            UNION ALL
            SELECT 'relation ' || oid::regclass::text FROM pg_class
             WHERE relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
               AND relnamespace::regnamespace::text NOT LIKE 'pg_toast%'
            UNION ALL
            SELECT 'routine ' || oid::regprocedure::text FROM pg_proc
             WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
            UNION ALL
            SELECT 'type ' || oid::regtype::text FROM pg_type
             WHERE typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
               AND typnamespace::regnamespace::text NOT LIKE 'pg_toast%'
               AND typrelid = 0 AND typcategory <> 'A'
            ORDER BY 1
            """
        ).fetchall()
    return [r[0] for r in rows]


CATALOG = {
    "routine": f"""
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc'),
               p.proacl::text
          FROM pg_proc p WHERE p.pronamespace::regnamespace::text IN {TOOL} AND p.prokind IN ('f', 'p')
         ORDER BY 1""",
    "relation": f"""
        SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class'), c.relacl::text,
               CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END
          FROM pg_class c WHERE c.relnamespace::regnamespace::text IN {TOOL} ORDER BY 1""",
    "column": f"""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
               pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum)
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace::regnamespace::text IN {TOOL} AND c.relkind IN ('r', 'p', 'v', 'm')
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY c.relname, a.attnum""",
    "index": f"""
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
               obj_description(i.indexrelid, 'pg_class')
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         WHERE c.relnamespace::regnamespace::text IN {TOOL} ORDER BY 1""",
    "constraint": f"""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid),
               obj_description(oid, 'pg_constraint')
          FROM pg_constraint WHERE connamespace::regnamespace::text IN {TOOL} ORDER BY 1, 2""",
    "trigger": f"""
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
         WHERE tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace::regnamespace::text IN {TOOL})
           AND NOT tgisinternal
         ORDER BY 1, 2""",
    "schema": f"""
        SELECT nspname, obj_description(oid, 'pg_namespace'), nspacl::text FROM pg_namespace
         WHERE nspname IN {TOOL}""",
}


def catalog(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    """What the tool's schema holds, as PostgreSQL itself prints it: every function's and procedure's
    definition, comment and privileges; tables, views (with their definitions) and sequences; columns with
    types, defaults and comments; indexes; constraints; triggers; the schema's comment."""
    with psycopg.connect(dsn) as conn:
        return {kind: conn.execute(query).fetchall() for kind, query in CATALOG.items()}


def differences(a: dict[str, list[tuple[object, ...]]], b: dict[str, list[tuple[object, ...]]]) -> list[str]:
    """The catalog rows that only one side has, named by their first columns (for a readable failure)."""
    out = []
    for kind in CATALOG:
        only_a, only_b = set(a[kind]) - set(b[kind]), set(b[kind]) - set(a[kind])
        out += [f"{kind} only in the first: {row[:2]}" for row in sorted(only_a, key=str)]
        out += [f"{kind} only in the second: {row[:2]}" for row in sorted(only_b, key=str)]
    return out
