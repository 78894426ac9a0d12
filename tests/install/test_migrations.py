"""The Alembic migrations on real databases: install, uninstall, upgrades from every shipped revision to
the catalog of a fresh install, an open run kept across an upgrade, inclusion in another app's Alembic."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.util import CommandError
from pytest_postgresql.executors import NoopExecutor

from token_rotation import MIGRATIONS_DIR, SQL_DIR, migrate

from background import BackgroundCall, backends, wait_until
from catalog import HEAD, SHIPPED, catalog, differences, install_shipped, tool_objects
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot
from plugins.database import new_database

LOCK_SPACE_DEFINITION = "SELECT pg_get_functiondef('token_rotation_internal.lock_space()'::regprocedure)"


@pytest.fixture
def empty_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a new, empty database."""
    yield from new_database(postgresql_proc)


@pytest.fixture
def other_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a second new, empty database (to compare two installs)."""
    yield from new_database(postgresql_proc)


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
    assert tool_objects(empty_dsn) == []
    migrate.upgrade(empty_dsn)
    assert tool_objects(empty_dsn) == installed


@pytest.mark.parametrize("shipped", SHIPPED)
def test_an_upgrade_from_a_shipped_revision_gives_the_catalog_of_a_fresh_install(
    shipped: str, empty_dsn: str, other_dsn: str
) -> None:
    """A database installed by a shipped revision, upgraded, has exactly the catalog of a fresh install at
    head (routines, tables, columns, indexes, constraints, comments, views); uninstall then leaves nothing."""
    migrate.upgrade(empty_dsn)
    fresh = catalog(empty_dsn)
    install_shipped(other_dsn, shipped)
    assert migrate.installed_revision(other_dsn) == shipped
    migrate.upgrade(other_dsn)
    assert migrate.installed_revision(other_dsn) == HEAD
    assert differences(fresh, catalog(other_dsn)) == []
    assert catalog(other_dsn) == fresh
    migrate.downgrade(other_dsn)
    assert tool_objects(other_dsn) == []


def test_the_shipped_0001_differs_from_head_so_the_upgrade_comparison_has_something_to_do(
    empty_dsn: str, other_dsn: str
) -> None:
    """Before its upgrade, a database at the shipped 0001 has another rotate() than a fresh install: the
    comparison above would catch an upgrade that forgot to re-apply the routines."""
    migrate.upgrade(empty_dsn)
    install_shipped(other_dsn, "0001")
    assert differences(catalog(empty_dsn), catalog(other_dsn)) != []


def test_an_open_run_of_the_shipped_0002_survives_the_upgrade_and_finishes_exactly_once(
    empty_dsn: str,
) -> None:
    """A run left open by a CALL under the shipped 0002 (stopped by p_max_batches) is kept by the upgrade,
    and a CALL after it finishes that same run with every row rotated once."""
    install_shipped(empty_dsn, "0002")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        make_table(conn, rows=2_000)
        before = snapshot(conn)
        conn.execute(
            "CALL token_rotation.rotate('tickets', p_batch_size => 300, p_max_batches => 2, p_quiet => true)"
        )
        run_id = last_run_id(conn)
        state = conn.execute("SELECT state, rows_done FROM token_rotation.runs WHERE run_id = %s", (run_id,))
        assert state.fetchone() == ("active", 600)
    migrate.upgrade(empty_dsn)
    assert migrate.installed_revision(empty_dsn) == HEAD
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 300, p_quiet => true)")
        assert last_run_id(conn) == run_id, "the upgrade lost the open run: a new one was started"
        assert_rotated_exactly_once(conn, before, run_id)


def test_install_at_head_brings_every_routine_back_to_the_package_sql(empty_dsn: str) -> None:
    """`install` on a database already at head re-applies the routines: a body changed since (by hand, or
    by an older package) is replaced by the one in sql/, with no new revision."""
    migrate.upgrade(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        original = conn.execute(LOCK_SPACE_DEFINITION)
        expected = original.fetchone()
        conn.execute(
            "CREATE OR REPLACE FUNCTION token_rotation_internal.lock_space() RETURNS integer"
            " LANGUAGE sql AS 'SELECT 1'"
        )
    migrate.upgrade(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        again = conn.execute(LOCK_SPACE_DEFINITION)
        assert again.fetchone() == expected


def test_only_head_and_base_are_targets(empty_dsn: str) -> None:
    """Any other target is refused before anything runs, with a message saying why (old routine bodies are
    not kept): downgrade to an intermediate revision, upgrade to one, a relative step."""
    migrate.upgrade(empty_dsn)
    before = catalog(empty_dsn)
    for action, target in ((migrate.downgrade, "0001"), (migrate.downgrade, "-1"), (migrate.upgrade, "0002")):
        with pytest.raises(CommandError, match="head .* or to base .* only"):
            action(empty_dsn, target)
    assert migrate.installed_revision(empty_dsn) == HEAD
    assert catalog(empty_dsn) == before


def test_uninstall_is_refused_while_a_rotation_runs(empty_dsn: str) -> None:
    """downgrade to base fails with SQLSTATE 55006 while a CALL works on a slice, and removes nothing."""
    migrate.upgrade(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        make_table(conn, rows=2_000)
        call = BackgroundCall(
            empty_dsn,
            "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '200ms', p_quiet => true)",
            "tr_test_uninstall_guard",
        ).start()
        try:
            wait_until(lambda: bool(backends(conn, "tr_test_uninstall_guard")), what="the CALL to start")
            wait_until(
                lambda: conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone() != (0,),
                what="a first batch",
            )
            with pytest.raises(psycopg.errors.ObjectInUse, match="a token rotation is running"):
                migrate.downgrade(empty_dsn)
            assert conn.execute("SELECT to_regclass('token_rotation.runs') IS NOT NULL").fetchone() == (True,)
        finally:
            conn.execute("SELECT token_rotation.cancel('tickets')")
            call.join()
    migrate.downgrade(empty_dsn)
    assert [o for o in tool_objects(empty_dsn) if "token_rotation" in o] == []


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


def test_uninstall_keeps_a_function_of_someone_else_in_the_schema(empty_dsn: str) -> None:
    """downgrade drops only the routines whose names sql/ defines: a function a user put into the schema
    stays, and so does the schema that holds it."""
    migrate.upgrade(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION token_rotation.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    migrate.downgrade(empty_dsn)
    assert tool_objects(empty_dsn) == ["routine token_rotation.mine()", "schema token_rotation"]


def test_sql_holds_only_routines_and_no_revision_holds_a_copy_of_them() -> None:
    """Every top-level sql/*.sql file has a numeric prefix (its place in the order they are applied in) and
    creates functions, procedures or views only (tables belong to the revisions, since routine files are run
    again on every upgrade), and no revision creates a routine."""
    files = migrate.routine_files()
    assert files
    assert [f.name for f in files if not re.fullmatch(r"\d\d_\w+\.sql", f.name)] == []
    not_routine = re.compile(r"^CREATE\s+(?!(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW)\b)", re.I | re.M)
    for file in files:
        text = file.read_text()
        assert any(r.file == file.name for r in migrate.routines()), f"{file.name} defines no routine"
        assert not not_routine.search(text), f"{file.name} creates something other than a routine"
    for revision in (MIGRATIONS_DIR / "versions").iterdir():
        if revision.name.endswith(".py"):
            assert not re.search(
                r"CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW)", revision.read_text()
            ), f"{revision.name} creates a routine: routines live in sql/ only"
    assert SQL_DIR.joinpath("20_rotate.sql").is_file()


def test_another_application_includes_the_migrations_through_version_locations(
    empty_dsn: str, tmp_path: Path
) -> None:
    """An application's own Alembic, with the installed package's versions (the resource
    token_rotation.migrations:versions) in version_locations, upgrades the branch token_rotation@head next to
    its own revisions, gets every routine, keeps its own version table, and can remove our branch again."""
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
    config.set_main_option("version_locations", f"{app / 'versions'} token_rotation.migrations:versions")
    config.set_main_option("path_separator", "space")
    command.upgrade(config, "heads")
    with psycopg.connect(empty_dsn) as conn:
        versions = sorted(r[0] for r in conn.execute("SELECT version_num FROM public.alembic_version"))
        assert versions == [HEAD, "a1"]
        names = {
            r[0]
            for r in conn.execute(
                "SELECT pronamespace::regnamespace::text || '.' || proname FROM pg_proc"
                f" WHERE pronamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
            )
        }
        assert names == {f"{r.schema}.{r.name}" for r in migrate.routines() if r.kind != "VIEW"}
        assert conn.execute("SELECT to_regclass('token_rotation.progress') IS NOT NULL").fetchone() == (True,)
    command.downgrade(config, "token_rotation@base")
    assert [o for o in tool_objects(empty_dsn) if "token_rotation" in o] == []
