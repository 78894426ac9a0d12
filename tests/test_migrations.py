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


def load_module(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FREEZE = load_module(MIGRATIONS_DIR / "freeze.py")
HEAD = FREEZE.frozen_files()[-1].name[:4]


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
    assert migrate.installed_revision(empty_dsn) == HEAD
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


def test_the_head_revision_freezes_the_current_sql_directory() -> None:
    """sql/ and the head revision's frozen copy are the same text: a change to sql/ needs a revision (run
    `make freeze` while the head revision is unreleased)."""
    assert FREEZE.frozen_files()[-1].read_text() == FREEZE.frozen_text(SQL_DIR)


def test_each_revision_names_exactly_the_files_it_changes() -> None:
    """A later revision installs only the sections it lists in CHANGED: a file changed in sql/ but missing
    there would never reach an upgraded database; one listed but unchanged would be replaced for nothing."""
    copies = FREEZE.frozen_files()
    assert [c.name[:4] for c in copies] == [f"{n:04d}" for n in range(1, len(copies) + 1)]
    for previous, current in zip(copies, copies[1:], strict=False):
        before, after = FREEZE.sections(previous.read_text()), FREEZE.sections(current.read_text())
        assert set(before) <= set(after), f"{current.name} drops a file: a revision must drop objects itself"
        changed = sorted(name for name in after if before.get(name) != after[name])
        revision = load_module(current.with_suffix(".py"))
        assert sorted(revision.CHANGED) == changed, current.name


def rotate_source(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = to_regproc('token_rotation.rotate')"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_upgrade_from_0001_and_downgrade_to_it_swap_the_changed_definitions(empty_dsn: str) -> None:
    """A database installed at 0001 gets the head's rotate() on upgrade, and 0001's back on downgrade to
    0001; the runs it recorded stay."""
    head_rotate = FREEZE.sections(FREEZE.frozen_files()[-1].read_text())["20_rotate.sql"]
    first_rotate = FREEZE.sections(FREEZE.frozen_files()[0].read_text())["20_rotate.sql"]
    assert head_rotate != first_rotate
    migrate.upgrade(empty_dsn, "0001")
    assert migrate.installed_revision(empty_dsn) == "0001"
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid())")
        conn.execute("INSERT INTO t (id) SELECT generate_series(1, 10)")
        conn.execute("CALL token_rotation.rotate('t', p_quiet => true)")
    assert rotate_source(empty_dsn).strip() in first_rotate
    migrate.upgrade(empty_dsn)
    assert migrate.installed_revision(empty_dsn) == HEAD
    assert rotate_source(empty_dsn).strip() in head_rotate
    migrate.downgrade(empty_dsn, "0001")
    assert migrate.installed_revision(empty_dsn) == "0001"
    assert rotate_source(empty_dsn).strip() in first_rotate
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone() == (1,)


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
        assert versions == [HEAD, "a1"]
        assert conn.execute(
            "SELECT to_regprocedure('token_rotation.verify(bigint)') IS NOT NULL"
        ).fetchone() == (True,)
    command.downgrade(config, "token_rotation@base")
    assert [o for o in tool_objects(empty_dsn) if "token_rotation" in o] == []
