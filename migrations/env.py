"""Alembic environment of token-rotation: runs the revisions in versions/ against one PostgreSQL database.

The database is, in order: a connection handed over by the caller (`config.attributes["connection"]`, as the
driver's `install` does), `-x dsn=...`, or `DATABASE_URL`. The version table lives in the tool's own schema
(`token_rotation.alembic_version`), so that nothing of the tool lands in the application's schemas; a
downgrade to base removes it together with the schema.

Two targets only: the head (install or upgrade; every routine of sql/ is re-applied at the end, even when the
database is at head already) and base (uninstall). Old routine bodies are not kept anywhere, so any other
target is refused before anything runs.

Offline (`--sql`: `token-rotation install --sql`, `alembic upgrade head --sql`) the same steps are written
as one script in one transaction, for `psql -v ON_ERROR_STOP=1 -f` on a host without Python: every
statement is a script that decides on the database itself (migrate.run_script), none is built from a query.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.engine.mock import MockConnection

from token_rotation import migrate

SCHEMA = migrate.SCHEMA
VERSION_TABLE = "alembic_version"

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def sqlalchemy_url(dsn: str) -> str:
    """Turns a libpq URL (postgresql://...) into SQLAlchemy's name for psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    raise SystemExit("token-rotation migrations: DATABASE_URL must be a postgresql:// URL")


def target() -> str:
    """'head' or 'base': where this command goes; any other target is refused with the reason."""
    argument = context.get_revision_argument()  # the head's number for head, None for base
    if isinstance(argument, tuple | list):
        argument = argument[0] if len(argument) == 1 else tuple(argument)
    if argument is None:
        return "base"
    if argument == context.get_head_revision():
        return "head"
    raise CommandError(
        f"token-rotation migrations go to head (install or upgrade) or to base (uninstall) only, not to"
        f" {argument!r}: old routine bodies are not kept, so an older revision cannot be restored;"
        " uninstall (downgrade to base) and install the older package instead"
    )


DROP_VERSION_TABLE_AND_EMPTY_SCHEMA = f"""
DROP TABLE IF EXISTS {SCHEMA}.{VERSION_TABLE};
DO $drop_empty_schema$
BEGIN
    IF to_regnamespace('{SCHEMA}') IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_class WHERE relnamespace = to_regnamespace('{SCHEMA}'))
       AND NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = to_regnamespace('{SCHEMA}'))
       AND NOT EXISTS (SELECT FROM pg_type WHERE typnamespace = to_regnamespace('{SCHEMA}')) THEN
        DROP SCHEMA {SCHEMA};
    END IF;
END
$drop_empty_schema$;
"""
"""After a downgrade to base: drop the (now empty) version table, and the schema when nothing else is left in
it (an object of someone else's in it keeps it)."""


def run_steps(bind: Connection | MockConnection, goal: str) -> None:
    """The migrations in one transaction, then what every run ends with: the routines at head (even when no
    revision ran), the version table and the empty schema at base."""
    with context.begin_transaction():
        if migrate.offline(bind):
            # psql shows warnings and errors only; the schema holds the version table Alembic creates next
            migrate.run_script(bind, "SET LOCAL client_min_messages = warning;")
            migrate.run_script(
                bind, migrate.OWNERSHIP_GUARD if goal == "head" else f"CREATE SCHEMA IF NOT EXISTS {SCHEMA};"
            )
        context.run_migrations()
        if goal == "head" and not migrate.routines_applied(bind):
            migrate.apply_routines(bind)  # at head already: bring the routines up to this package
        if goal == "base":
            migrate.run_script(bind, DROP_VERSION_TABLE_AND_EMPTY_SCHEMA)


def run_on(connection: Connection) -> None:
    goal = target()
    migrate.forget_routines_applied(connection)
    if goal == "head":  # before Alembic puts its version table there
        migrate.run_script(connection, migrate.OWNERSHIP_GUARD)
    else:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
    )
    run_steps(connection, goal)


def run_migrations_offline() -> None:
    """Writes the script: the dialect is PostgreSQL's, no database is contacted."""
    context.configure(
        dialect_name="postgresql",
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
    )
    goal = target()
    bind = context.get_bind()
    migrate.forget_routines_applied(bind)
    run_steps(bind, goal)


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_on(given)
        return
    dsn = context.get_x_argument(as_dictionary=True).get("dsn") or os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("token-rotation migrations: set DATABASE_URL (or pass -x dsn=postgresql://...)")
    engine = create_engine(sqlalchemy_url(dsn), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_on(connection)
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
