"""Installing and removing the tool's database objects: Alembic, run on the migrations in migrations/."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, pool, text

from token_rotation import MIGRATIONS_DIR
from token_rotation.connection import APPLICATION_NAME

BRANCH = "token_rotation"


def _engine(dsn: str) -> Engine:
    """An engine whose connections psycopg opens from the DSN itself (URL, key=value, or "" for PG* vars)."""
    return create_engine(
        "postgresql+psycopg://",
        poolclass=pool.NullPool,
        creator=lambda: psycopg.connect(dsn, application_name=APPLICATION_NAME),
    )


def _run(dsn: str, action: Callable[[Config, str], None], target: str) -> None:
    """Runs an Alembic command (command.upgrade or command.downgrade) to `target` on one connection."""
    engine = _engine(dsn)
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.attributes["configure_logger"] = False
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        action(config, target)
        connection.commit()
    engine.dispose()


def upgrade(dsn: str, revision: str | None = None) -> None:
    """Installs or upgrades the schema token_rotation to `revision`, by default the newest (idempotent)."""
    _run(dsn, command.upgrade, revision or f"{BRANCH}@head")


def downgrade(dsn: str, revision: str | None = None) -> None:
    """Goes back to `revision`; by default removes everything the tool installed (idempotent)."""
    _run(dsn, command.downgrade, revision or f"{BRANCH}@base")


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
