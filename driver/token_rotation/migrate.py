"""Installing, upgrading and removing the tool's database objects, from the SQL shipped in this package.

Two kinds of objects, two ways to change them (how PostgreSQL extensions and TimescaleDB ship upgrades):
- Tables (and the schema) change only through the Alembic revisions in migrations/versions/ (the package
  token_rotation.migrations): a revision holds table DDL and `DROP ... IF EXISTS` of routine signatures
  that no longer exist, a few lines each, never a copy of sql/.
- Routines (functions, procedures, views) are every top-level sql/*.sql file (the package
  token_rotation.sql), each one CREATE OR REPLACE, re-applied in file-name order (the numeric prefixes are
  the dependency order) at the end of every upgrade: by the head revision's upgrade(), so that an
  application's own Alembic that includes our branch gets them, and by our env.py on every `install`, even
  at head. A changed function body therefore needs no revision at all.
Downgrade goes to base only (uninstall): old routine bodies are not kept anywhere, so no intermediate
revision can be restored, and our env.py refuses such a target.

Both also run offline (Alembic's --sql mode): every statement then goes verbatim into a script for
`psql -v ON_ERROR_STOP=1 -f`, for database hosts without Python. That is why every piece of SQL here is a
script run as it is (run_script), never SQL built from what a query returned: the same text serves both modes.

    upgrade(dsn)          # token-rotation install
    downgrade(dsn)        # token-rotation uninstall
    upgrade_sql(out)      # token-rotation install --sql
    downgrade_sql(out)    # token-rotation uninstall --sql
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TextIO

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.engine.mock import MockConnection

from token_rotation import MIGRATIONS_DIR, SQL_DIR, citus
from token_rotation.connection import APPLICATION_NAME

BRANCH = "token_rotation"
SCHEMA = "token_rotation"  # the public API: rotate(), the controls, the progress view, the tables
INTERNAL_SCHEMA = "token_rotation_internal"  # everything else the public API calls (revision 0012)
SCHEMAS = (SCHEMA, INTERNAL_SCHEMA)
# the two schemas as an SQL list, for catalog queries: ('token_rotation', 'token_rotation_internal')
SCHEMA_LIST = "(" + ", ".join(f"'{schema}'" for schema in SCHEMAS) + ")"
ROUTINES_APPLIED = "token_rotation.routines_applied"  # key in the connection's info: set once applied

# A routine file's statements that create an object: the kind and the name, at the start of a line.
_CREATE = re.compile(
    r"^CREATE(?:\s+OR\s+REPLACE)?\s+(?P<kind>FUNCTION|PROCEDURE|VIEW)\s+"
    rf"(?P<schema>{SCHEMA}|{INTERNAL_SCHEMA})\.(?P<name>\w+)",
    re.MULTILINE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Routine:
    """A function, procedure or view that a sql/ file defines: its kind (upper case), name and file, and its
    schema (the public SCHEMA or INTERNAL_SCHEMA)."""

    kind: str
    name: str
    file: str
    schema: str = SCHEMA


# Routines an older revision installed under a name that sql/ no longer defines (the revision that dropped
# it as `file`): uninstall drops them too, so that a database still at that older revision is left empty.
# A revision that drops a routine name for good adds it here.
RETIRED = (
    Routine("FUNCTION", "resume", "0003_one_source_for_sql.py"),
    Routine("FUNCTION", "throttle_reason", "0007_health_and_retune.py"),
)


OWNERSHIP_GUARD = f"""
SELECT pg_catalog.set_config('token_rotation.saved_search_path',
                             COALESCE(NULLIF(pg_catalog.current_setting('token_rotation.saved_search_path',
                                                                         true), ''),
                                      pg_catalog.current_setting('search_path')), true),
       pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
DO $guard_owner$
DECLARE
    v_schema name;
    v_owner  name;
    v_others text;
BEGIN
    FOREACH v_schema IN ARRAY ARRAY['{SCHEMA}', '{INTERNAL_SCHEMA}']::name[] LOOP
        SELECT pg_catalog.pg_get_userbyid(n.nspowner) INTO v_owner
          FROM pg_catalog.pg_namespace n WHERE n.nspname = v_schema;
        IF NOT FOUND THEN
            IF v_schema = '{SCHEMA}' THEN
                CREATE SCHEMA {SCHEMA};  -- the internal one: revision 0012 creates it
            END IF;
            CONTINUE;
        END IF;
        IF v_owner <> current_user THEN
            RAISE EXCEPTION 'schema % is owned by role %, not by %', v_schema, v_owner, current_user
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'the tool installs into a schema of its own, owned by the installing role, so '
                               'that no other role can replace its routines or write its tables',
                      HINT = format('install as the role that installed it (SET ROLE %I); if nobody '
                                    'installed it, find out who created it before you drop it', v_owner);
        END IF;
        SELECT string_agg(o.what, ', ' ORDER BY o.what) INTO v_others
          FROM (SELECT format('%s %s owned by %s',
                              CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                                             ELSE 'relation' END,
                              c.relname, pg_catalog.pg_get_userbyid(c.relowner))
                  FROM pg_catalog.pg_class c
                 WHERE c.relnamespace = v_schema::regnamespace AND c.relowner <> current_user::regrole
                UNION ALL
                SELECT format('routine %s owned by %s', p.oid::regprocedure,
                              pg_catalog.pg_get_userbyid(p.proowner))
                  FROM pg_catalog.pg_proc p
                 WHERE p.pronamespace = v_schema::regnamespace AND p.proowner <> current_user::regrole
                UNION ALL
                SELECT format('type %s owned by %s', t.typname, pg_catalog.pg_get_userbyid(t.typowner))
                  FROM pg_catalog.pg_type t
                 WHERE t.typnamespace = v_schema::regnamespace AND t.typowner <> current_user::regrole
               ) AS o(what);
        IF v_others IS NOT NULL THEN
            RAISE EXCEPTION 'schema % holds objects of other roles than %', v_schema, current_user
                USING ERRCODE = 'insufficient_privilege', DETAIL = v_others,
                      HINT = 'every object of the tool''s schemas must belong to the installing role: '
                             'remove or reassign those objects (after finding out who created them), then '
                             'install again';
        END IF;
    END LOOP;
END
$guard_owner$;
"""
"""The first step of every install and upgrade (and of every re-application of the routines): the path of
the migration's transaction pinned to pg_catalog, pg_temp until RESTORE_PATH (views bind nothing of the
installing session's schemas), and the schema created if missing (the internal one comes with revision
0012); either schema, or anything in them, owned by another role than the installing one stops everything
(TimescaleDB's rule: CREATE OR REPLACE keeps the owner of what it replaces, so installing into another
role's schema would leave that role owning the tool)."""


RESTORE_PATH = """
SELECT pg_catalog.set_config('search_path',
                             pg_catalog.current_setting('token_rotation.saved_search_path'), true),
       pg_catalog.set_config('token_rotation.saved_search_path', '', true);
"""
"""The last step of re-applying the routines: the migration's transaction gets back the search_path it had
before OWNERSHIP_GUARD (an application's own migrations may run after ours in it)."""


def folder(resource: Traversable) -> Path:
    """The folder on disk of a packaged resource folder: Alembic reads its files by path (pip, pipx and
    editable installs all unpack the package, so this is a plain path)."""
    if not isinstance(resource, Path):
        raise RuntimeError(f"token-rotation must be installed unpacked (not zipped): {resource} is no folder")
    return resource


def routine_files() -> list[Traversable]:
    """Every top-level sql/*.sql file of the package, in file-name order (the order they are applied in)."""
    found = [f for f in SQL_DIR.iterdir() if f.is_file() and f.name.endswith(".sql")]
    return sorted(found, key=lambda f: f.name)


def routine_sql(file: Traversable) -> str:
    """A routine file's text, run as it is: every sql/ file creates its objects with CREATE OR REPLACE, so it
    runs again on a database that has them (a plain CREATE fails there: the re-install tests catch it)."""
    return file.read_text(encoding="utf-8")


def routines() -> list[Routine]:
    """The functions, procedures and views the sql/ files define, in the order the files create them."""
    return [
        Routine(m.group("kind").upper(), m.group("name"), f.name, m.group("schema"))
        for f in routine_files()
        for m in _CREATE.finditer(f.read_text(encoding="utf-8"))
    ]


def offline(connection: Connection | MockConnection) -> bool:
    """Whether the migration writes a script (Alembic's --sql mode: the bind is a mock connection) instead
    of running on a database."""
    return isinstance(connection, MockConnection)


def run_script(connection: Connection | MockConnection, script: str) -> None:
    """Runs a multi-statement script as it is, in the migration's transaction: through psycopg with no
    parameters, so % and $ stay literal. Offline, writes it verbatim to Alembic's output (not through
    SQLAlchemy's text(), which would take :name for a parameter and rewrite tabs), ended by a semicolon."""
    if offline(connection):
        from alembic import context

        body = script.strip()
        context.get_context().impl.static_output(body if body.endswith(";") else body + "\n;")
        return
    with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(script)


def _flags(connection: Connection | MockConnection) -> dict[Any, Any]:
    """Where a migration run notes what it has done: the connection's info online, the migration
    context's options offline (a mock connection has no info)."""
    if isinstance(connection, MockConnection):
        from alembic import context

        return context.get_context().opts
    return connection.info


def routines_applied(connection: Connection | MockConnection) -> bool:
    """Whether this migration run has applied the routines already."""
    return bool(_flags(connection).get(ROUTINES_APPLIED))


def forget_routines_applied(connection: Connection | MockConnection) -> None:
    """Starts a migration run: the routines are not applied yet."""
    _flags(connection).pop(ROUTINES_APPLIED, None)


def apply_routines(connection: Connection | MockConnection) -> None:
    """Creates or replaces every routine from sql/, file by file in file-name order. A CALL already running
    keeps the definition it started with; nothing that depends on a routine is dropped."""
    run_script(connection, OWNERSHIP_GUARD)
    for file in routine_files():
        run_script(connection, f"-- {file.name}\n" + routine_sql(file))
    run_script(connection, RESTORE_PATH)
    _flags(connection)[ROUTINES_APPLIED] = True


def head_revision() -> str:
    """The newest revision of the tool's branch, read from the packaged migrations."""
    migrations = folder(MIGRATIONS_DIR)
    script = ScriptDirectory(str(migrations), version_locations=[str(migrations / "versions")])
    head = script.get_current_head()
    assert head is not None, "the packaged migrations have no revision"
    return head


def upgraded_to(connection: Connection | MockConnection, revision: str) -> None:
    """The last step of every revision's upgrade(): at the head revision, re-applies all routines (in any
    Alembic that runs our branch, ours or an application's)."""
    if revision == head_revision():
        apply_routines(connection)


def drop_routines_script() -> str:
    """A DO block that drops every function, procedure and view whose name the sql/ files define (every
    signature of that name in either schema, as the database has them when it runs: an internal routine
    of a database still at a revision before 0012 is in the public one), the retired names first,
    then the last file's first, without CASCADE. One script for both modes: offline, the signatures are
    only known on the database."""
    listed = "\n             , ".join(
        f"({n}, '{r.kind}', '{r.name}')" for n, r in enumerate([*RETIRED, *reversed(routines())], start=1)
    )
    return f"""
DO $drop_routines$
DECLARE
    v_routine    record;
    v_signature  record;
BEGIN
    FOR v_routine IN
        SELECT r.kind, r.name
          FROM (VALUES {listed}
               ) AS r(n, kind, name)
         ORDER BY r.n
    LOOP
        IF v_routine.kind = 'VIEW' THEN
            EXECUTE format('DROP VIEW IF EXISTS %I.%I', '{SCHEMA}', v_routine.name);
            CONTINUE;
        END IF;
        FOR v_signature IN
            SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END AS kind
                 , p.oid::regprocedure AS routine
              FROM pg_catalog.pg_proc p
             WHERE p.pronamespace IN (to_regnamespace('{SCHEMA}'), to_regnamespace('{INTERNAL_SCHEMA}'))
               AND p.proname = v_routine.name
             ORDER BY p.oid
        LOOP
            EXECUTE format('DROP %s %s', v_signature.kind, v_signature.routine);
        END LOOP;
    END LOOP;
END
$drop_routines$;
"""


def drop_routines(connection: Connection | MockConnection) -> None:
    """Drops every function, procedure and view whose name the sql/ files define (drop_routines_script),
    without CASCADE: an object of someone else's that depends on one of them stops the uninstall instead of
    vanishing with it."""
    run_script(connection, drop_routines_script())


def _engine(dsn: str) -> Engine:
    """An engine whose connections psycopg opens from the DSN itself (URL, key=value, or "" for PG* vars)."""
    return create_engine("postgresql+psycopg://", poolclass=pool.NullPool, creator=lambda: _connect(dsn))


def _connect(dsn: str) -> psycopg.Connection:
    """A connection for installing: on a Citus node, with DDL kept local to that node (citus.LOCAL_DDL), as
    the tool is installed on each node of a cluster."""
    conn = psycopg.connect(dsn, application_name=APPLICATION_NAME)
    if citus.node_kind(conn) is not None:
        conn.execute(citus.LOCAL_DDL)
    conn.commit()
    return conn


def config(output: TextIO | None = None) -> Config:
    """Alembic's configuration for the packaged migrations (no alembic.ini, no checkout needed); `output`
    receives the script in offline (--sql) mode."""
    migrations = folder(MIGRATIONS_DIR)
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(migrations).replace("%", "%%"))
    cfg.set_main_option("version_locations", str(migrations / "versions").replace("%", "%%"))
    cfg.set_main_option("path_separator", "newline")
    cfg.attributes["configure_logger"] = False
    return cfg


def _run(dsn: str, action: Callable[[Config, str], None], target: str) -> None:
    """Runs an Alembic command (command.upgrade or command.downgrade) to `target` on one connection."""
    engine = _engine(dsn)
    cfg = config()
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        action(cfg, target)
        connection.commit()
    engine.dispose()


def upgrade(dsn: str, revision: str | None = None) -> None:
    """Installs or upgrades the schema token_rotation to the newest revision and re-applies every routine
    (idempotent). `revision` other than the head is refused: there is no way back to an old one."""
    _run(dsn, command.upgrade, revision or f"{BRANCH}@head")


def downgrade(dsn: str, revision: str | None = None) -> None:
    """Removes everything the tool installed (idempotent; refused while a rotation runs). `revision` other
    than base is refused: old routine bodies are not kept, so no intermediate revision can be restored."""
    _run(dsn, command.downgrade, revision or f"{BRANCH}@base")


def upgrade_sql(output: TextIO) -> None:
    """Writes the install script (Alembic's offline mode, from an empty database to the head): the schema,
    tables, every routine of sql/ and the version row, in one transaction, for `psql -v ON_ERROR_STOP=1 -f`.
    A database it was applied to is at head: a later upgrade() changes nothing but re-applying routines."""
    command.upgrade(config(output), f"{BRANCH}@head", sql=True)


def downgrade_sql(output: TextIO) -> None:
    """Writes the uninstall script (Alembic's offline mode, from the head to base), in one transaction. It
    finds what to drop on the database itself, so it also removes an install of an older revision; like
    downgrade() it refuses while a rotation runs and uses no CASCADE."""
    command.downgrade(config(output), f"{BRANCH}@head:base", sql=True)


def installed_revision(dsn: str) -> str | None:
    """The installed revision, or None when the tool is not installed."""
    engine = _engine(dsn)
    with engine.connect() as connection:
        exists = connection.execute(text("SELECT to_regclass('token_rotation.alembic_version')")).scalar()
        revision = (
            connection.execute(text("SELECT version_num FROM token_rotation.alembic_version")).scalar()
            if exists
            else None
        )
    engine.dispose()
    return revision
