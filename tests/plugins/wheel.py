"""The wheel of this checkout, built once per test session with pip from a clean copy of its files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Not copied into the build: what .gitignore lists. A build/ left from an earlier build would put files
# deleted since into the wheel (setuptools copies into build/lib and never removes from it).
NOT_SOURCE = (
    ".git",
    ".venv",
    ".pgdata",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "bench-results",
)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout's files, built with pip from a clean copy in a temporary folder."""
    source = tmp_path_factory.mktemp("source") / "token-rotation"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("token_rotation-*.whl")
    return built
