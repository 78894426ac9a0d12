"""Attacks on the install (issue 17, finding 5): a role with CREATE on the database creates the schema
token_rotation (or token_rotation_internal), and a routine in it, before the DBA installs the tool. The
install must stop and name that role as the owner, leave nothing of the tool in the role's schema, and own
all it installs once the role's schema is gone; no table or view of the tool is granted to PUBLIC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pytest_postgresql.executors import NoopExecutor

from token_rotation import migrate

from plugins.database import new_database
from roles import dsn_as, temporary_role

# the schema the squatter creates, and what it puts there: a routine of its own, or one with the name and
# signature of a routine of the tool (whose CREATE OR REPLACE would then meet it), in the public schema or
# the internal one
SQUATS = {
    "own-routine": (
        "token_rotation",
        "CREATE FUNCTION token_rotation.backdoor() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    ),
    "tool-routine": (
        "token_rotation",
        "CREATE FUNCTION token_rotation.default_options() RETURNS jsonb LANGUAGE sql AS 'SELECT NULL::jsonb'",
    ),
    "internal-routine": (
        "token_rotation_internal",
        "CREATE FUNCTION token_rotation_internal.lock_space() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    ),
}


@pytest.fixture
def empty_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a new, empty database, dropped afterwards."""
    yield from new_database(postgresql_proc, "tr_sec")


@pytest.fixture
def admin(empty_dsn: str) -> Iterator[psycopg.Connection]:
    """The installing superuser's autocommit session on the new database."""
    with psycopg.connect(empty_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def squatter(admin: psycopg.Connection, empty_dsn: str) -> Iterator[str]:
    """A LOGIN role with CREATE on the new database and nothing else."""
    database = sql.Identifier(str(conninfo_to_dict(empty_dsn)["dbname"]))
    with temporary_role(admin, "tr_squatter") as role:
        admin.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, sql.Identifier(role)))
        yield role
        # an install that went on left the tool's tables in the role's schema: DROP OWNED BY would stop there
        admin.execute("DROP SCHEMA IF EXISTS token_rotation, token_rotation_internal CASCADE")


@pytest.fixture
def squatter_conn(empty_dsn: str, squatter: str) -> Iterator[psycopg.Connection]:
    """An autocommit session logged in as the squatter."""
    with psycopg.connect(dsn_as(empty_dsn, squatter), autocommit=True) as connection:
        yield connection


def squat(squatter_conn: psycopg.Connection, schema: str, routine: str) -> None:
    """The squatter creates the schema and a routine in it."""
    squatter_conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    squatter_conn.execute(routine)


def owners(admin: psycopg.Connection) -> dict[str, str]:
    """Every object in the schemas token_rotation and token_rotation_internal, the schemas included, and its
    owner."""
    rows = admin.execute(
        "SELECT 'schema ' || nspname, nspowner::regrole::text FROM pg_namespace"
        f" WHERE nspname IN {migrate.SCHEMA_LIST}"
        " UNION ALL SELECT 'relation ' || oid::regclass::text, relowner::regrole::text FROM pg_class"
        f" WHERE relnamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
        " UNION ALL SELECT 'routine ' || oid::regprocedure::text, proowner::regrole::text FROM pg_proc"
        f" WHERE pronamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
    ).fetchall()
    return {name: owner for name, owner in rows}


def public_grants_on_relations(connection: psycopg.Connection) -> list[tuple[str, str]]:
    """(relation, privilege) for every privilege a table, view or sequence of the tool grants to PUBLIC."""
    return [
        (str(r[0]), str(r[1]))
        for r in connection.execute(
            "SELECT c.oid::regclass::text, a.privilege_type FROM pg_class c, aclexplode(c.relacl) AS a"
            f" WHERE c.relnamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
            " AND a.grantee = 0 ORDER BY 1, 2"
        )
    ]


@pytest.mark.parametrize(("schema", "routine"), SQUATS.values(), ids=SQUATS.keys())
def test_install_stops_at_a_token_rotation_schema_another_role_owns_and_names_it(
    empty_dsn: str,
    admin: psycopg.Connection,
    squatter: str,
    squatter_conn: psycopg.Connection,
    schema: str,
    routine: str,
) -> None:
    """Finding 5: with schema token_rotation and a routine in it created by a role with CREATE on the
    database, the superuser's install fails with an error naming that role as the owner, and leaves nothing
    of the tool in the role's schema."""
    squat(squatter_conn, schema, routine)
    squatted = owners(admin)
    refused: Exception | None = None
    try:
        migrate.upgrade(empty_dsn)
    except Exception as error:
        refused = error
    after = owners(admin)
    installed = sorted(name for name in after if name not in squatted)
    kept = sorted(name for name, owner in after.items() if owner == squatter)
    left_nothing = not installed
    assert left_nothing, (
        f"install went on in schema token_rotation owned by {squatter}: it put {len(installed)} objects of"
        f" the tool there, and {squatter} owns {', '.join(kept)}"
    )
    assert refused is not None, "install went on in a schema owned by another role"
    assert squatter in str(refused), f"the error does not name the owner {squatter}: {refused}"


@pytest.mark.parametrize(("schema", "routine"), SQUATS.values(), ids=SQUATS.keys())
def test_once_the_squatters_schema_is_dropped_install_owns_everything_it_installs(
    empty_dsn: str,
    admin: psycopg.Connection,
    squatter: str,
    squatter_conn: psycopg.Connection,
    schema: str,
    routine: str,
) -> None:
    """Finding 5: after the squatter drops its schema, the install works, the installing role owns the schema
    and every table and routine in it, and no table or view of the tool grants anything to PUBLIC."""
    squat(squatter_conn, schema, routine)
    with contextlib.suppress(Exception):  # refused (the test above), or not on code that lets it through
        migrate.upgrade(empty_dsn)
    squatter_conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    migrate.upgrade(empty_dsn)
    installer = admin.execute("SELECT current_user").fetchone()
    assert installer is not None
    objects = owners(admin)
    assert len([o for o in objects if o.startswith("routine ")]) >= len(migrate.routines()) - 1
    assert {name: owner for name, owner in objects.items() if owner != installer[0]} == {}
    assert public_grants_on_relations(admin) == []


def test_no_table_or_view_of_the_tool_grants_anything_to_public(conn: psycopg.Connection) -> None:
    """Finding 5: an installed tool grants no privilege on its tables and views to PUBLIC."""
    assert public_grants_on_relations(conn) == []
