"""Alembic environment of token-rotation: runs the revisions in versions/ against one PostgreSQL database.

The database is, in order: a connection handed over by the caller (`config.attributes["connection"]`, as the
driver's `install` does), `-x dsn=...`, or `DATABASE_URL`. The version table lives in the tool's own schema
(`token_rotation.alembic_version`), so that nothing of the tool lands in the application's schemas; a
downgrade to base removes it together with the schema.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

SCHEMA = "token_rotation"
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


def drop_schema_at_base(ctx, step, heads, run_args) -> None:  # type: ignore[no-untyped-def]
    """After the last downgrade step, drop the version table and the then empty schema."""
    if step.is_upgrade or heads or ctx.version_table_schema != SCHEMA:
        return
    bind = ctx.connection
    leftover = bind.execute(
        text(
            "SELECT count(*) FROM pg_class WHERE relnamespace = CAST(:s AS regnamespace) AND relname <> :t"
            " AND relkind IN ('r', 'v', 'm', 'S', 'f', 'p')"
        ),
        {"s": SCHEMA, "t": VERSION_TABLE},
    ).scalar_one()
    if leftover == 0:
        bind.execute(text(f"DROP TABLE {SCHEMA}.{VERSION_TABLE}"))
        bind.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA}"))


def run_on(connection: Connection) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        on_version_apply=[drop_schema_at_base],
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


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
    raise SystemExit(
        "token-rotation migrations run online only: they install PL/pgSQL that is read from files"
    )
run_migrations_online()
