"""The Django test project (tests/django_project) run as its users run it: `python manage.py ...` in a
subprocess, on a given database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from background import cli_env

PROJECT = Path(__file__).resolve().parents[1] / "django_project"


def env(dsn: str, settings: str = "project.settings", **extra: str) -> dict[str, str]:
    return cli_env(DATABASE_URL=dsn, DJANGO_SETTINGS_MODULE=settings, PYTHONPATH=str(PROJECT), **extra)


def manage(dsn: str, *args: str, settings: str = "project.settings") -> subprocess.CompletedProcess[str]:
    """`python manage.py ARGS...` in the test project, on the database `dsn`."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env(dsn, settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
