"""Freezes sql/ into a revision's copy: concatenates sql/*.sql, in file-name order, into one file.

A revision installs the frozen copy, never sql/ itself, so that a later change to sql/ cannot alter what an
old revision does. Revision 0001 runs its whole copy; a later revision runs only the sections of the files it
names as changed (CHANGED in its .py), and its downgrade runs the same sections of the previous copy.
Change sql/, then freeze it into the head revision's file (`make freeze` while that revision is unreleased;
once it has shipped, add a new revision and freeze into its file):
    python migrations/freeze.py [migrations/versions/NNNN_something.sql]
tests/test_migrations.py fails while sql/ and the head revision's frozen copy differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
VERSIONS_DIR = Path(__file__).resolve().parent / "versions"
MARKER = "-- ==== sql/{} ====\n"


def frozen_text(sql_dir: Path = SQL_DIR) -> str:
    parts = []
    for path in sorted(sql_dir.glob("*.sql")):
        parts.append(f"{MARKER.format(path.name)}{path.read_text().rstrip()}\n")
    return "\n".join(parts)


def frozen_files(versions_dir: Path = VERSIONS_DIR) -> list[Path]:
    """The revisions' frozen copies, oldest first: each revision NNNN_name.py has its NNNN_name.sql."""
    return [py.with_suffix(".sql") for py in sorted(versions_dir.glob("[0-9][0-9][0-9][0-9]_*.py"))]


def sections(frozen: str) -> dict[str, str]:
    """sql/ file name -> its text, read back from a frozen copy."""
    out: dict[str, str] = {}
    for chunk in frozen.split("-- ==== sql/")[1:]:
        name, _, text = chunk.partition(" ====\n")
        out[name] = text.rstrip() + "\n"
    return out


if __name__ == "__main__":
    if len(sys.argv) > 2:
        raise SystemExit(__doc__)
    target = Path(sys.argv[1]) if len(sys.argv) == 2 else frozen_files()[-1]
    target.write_text(frozen_text())
    print(f"froze sql/ into {target}")
