"""Freezes sql/ into a revision's copy: concatenates sql/*.sql, in file-name order, into one file.

A revision installs the frozen copy, never sql/ itself, so that a later change to sql/ cannot alter what an
old revision does. Change sql/, then freeze it into a new revision's file:
    python migrations/freeze.py migrations/versions/0002_something.sql
tests/test_migrations.py fails while sql/ and the head revision's frozen copy differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def frozen_text(sql_dir: Path = SQL_DIR) -> str:
    parts = []
    for path in sorted(sql_dir.glob("*.sql")):
        parts.append(f"-- ==== sql/{path.name} ====\n{path.read_text().rstrip()}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    Path(sys.argv[1]).write_text(frozen_text())
