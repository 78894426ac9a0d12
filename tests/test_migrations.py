"""The Alembic migrations: install, remove and reinstall on a real database, and include from another app."""

from __future__ import annotations

import importlib.util
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql.executors import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from token_rotation import MIGRATIONS_DIR, SQL_DIR, migrate

from conftest import dsn_of


@pytest.fixture
def empty_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a new, empty database (nothing of the tool installed)."""
    name = f"tr_mig_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(
        user=postgresql_proc.user,
        host=postgresql_proc.host,
        port=postgresql_proc.port,
        password=postgresql_proc.password,
        dbname=name,
    )
    with janitor:
        yield dsn_of(postgresql_proc, name)


def tool_objects(dsn: str) -> list[str]:
    """Every object in the tool's schema, and any relation or function the tool might leave elsewhere."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'token_rotation'
            UNION ALL
            SELECT 'relation ' || oid::regclass::text FROM pg_class
             WHERE relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
               AND relnamespace::regnamespace::text NOT LIKE 'pg_toast%'
            UNION ALL
            SELECT 'routine ' || oid::regprocedure::text FROM pg_proc
             WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
            ORDER BY 1
            """
        ).fetchall()
    return [r[0] for r in rows]


def test_upgrade_downgrade_upgrade_on_a_real_database(empty_dsn: str) -> None:
    """upgrade installs the schema, downgrade leaves the database exactly as it was, upgrade works again."""
    assert tool_objects(empty_dsn) == []
    migrate.upgrade(empty_dsn)
    installed = tool_objects(empty_dsn)
    assert "schema token_rotation" in installed
    assert any(o.startswith("routine token_rotation.rotate(") for o in installed)
    assert all("token_rotation" in o for o in installed), "the tool put something outside its schema"
    assert migrate.installed_revision(empty_dsn) == "0001"
    migrate.upgrade(empty_dsn)  # idempotent
    migrate.downgrade(empty_dsn)
    assert tool_objects(empty_dsn) == []
    assert migrate.installed_revision(empty_dsn) is None
    migrate.downgrade(empty_dsn)  # idempotent
    migrate.upgrade(empty_dsn)
    assert tool_objects(empty_dsn) == installed


def test_downgrade_stops_at_an_object_of_someone_else_that_depends_on_the_tool(empty_dsn: str) -> None:
    """downgrade uses no CASCADE: a user's view on token_rotation.progress makes it fail, not vanish."""
    migrate.upgrade(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.my_progress AS SELECT run_id FROM token_rotation.progress")
    with pytest.raises(Exception, match="depend"):
        migrate.downgrade(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regclass('public.my_progress') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT to_regclass('token_rotation.runs') IS NOT NULL").fetchone() == (True,)


def test_the_head_revision_installs_the_current_sql_directory() -> None:
    """sql/ and the frozen copy the head revision installs are the same text: a change to sql/ needs a
    revision (run `make freeze` while the revision is unreleased)."""
    spec = importlib.util.spec_from_file_location("freeze", MIGRATIONS_DIR / "freeze.py")
    assert spec is not None and spec.loader is not None
    freeze = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(freeze)
    frozen = (MIGRATIONS_DIR / "versions" / "0001_install.sql").read_text()
    assert frozen == freeze.frozen_text(SQL_DIR)


def test_another_application_includes_the_migrations_through_version_locations(
    empty_dsn: str, tmp_path: Path
) -> None:
    """An application's own Alembic, with our versions/ in version_locations, upgrades the branch
    token_rotation@head next to its own revisions and keeps its own version table."""
    from alembic import command
    from alembic.config import Config

    app = tmp_path / "app_migrations"
    (app / "versions").mkdir(parents=True)
    (app / "env.py").write_text(
        textwrap.dedent(
            f"""
            import psycopg
            from alembic import context
            from sqlalchemy import create_engine, pool
            engine = create_engine("postgresql+psycopg://", poolclass=pool.NullPool,
                                   creator=lambda: psycopg.connect({empty_dsn!r}))
            with engine.connect() as connection:
                context.configure(connection=connection)
                with context.begin_transaction():
                    context.run_migrations()
                connection.commit()
            """
        )
    )
    (app / "versions" / "a1_app.py").write_text(
        textwrap.dedent(
            """
            from alembic import op
            revision = "a1"
            down_revision = None
            branch_labels = ("app",)
            depends_on = None
            def upgrade():
                op.execute("CREATE TABLE public.app_things (id int PRIMARY KEY)")
            def downgrade():
                op.execute("DROP TABLE public.app_things")
            """
        )
    )
    config = Config()
    config.set_main_option("script_location", str(app))
    config.set_main_option("version_locations", f"{app / 'versions'} {MIGRATIONS_DIR / 'versions'}")
    config.set_main_option("path_separator", "space")
    command.upgrade(config, "heads")
    with psycopg.connect(empty_dsn) as conn:
        versions = sorted(r[0] for r in conn.execute("SELECT version_num FROM public.alembic_version"))
        assert versions == ["0001", "a1"]
        assert conn.execute(
            "SELECT to_regprocedure('token_rotation.verify(bigint)') IS NOT NULL"
        ).fetchone() == (True,)
    command.downgrade(config, "token_rotation@base")
    assert [o for o in tool_objects(empty_dsn) if "token_rotation" in o] == []
