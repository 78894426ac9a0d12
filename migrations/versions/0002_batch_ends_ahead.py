"""rotate() finds the ends of the coming batches ahead, while the heap pages are still all-visible.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Upgrade runs, from the frozen copy of sql/ beside this file (0002_batch_ends_ahead.sql), the sections of the
files in CHANGED; every such object is created with CREATE OR REPLACE, so a CALL already running keeps the
definition it started with and nothing that depends on the object is dropped. Downgrade runs the same sections
of the previous frozen copy (0001_install.sql), as CREATE OR REPLACE too. tests/test_migrations.py checks that
CHANGED names exactly the files whose text differs between the two copies.
"""

from __future__ import annotations

import re
from pathlib import Path

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FROZEN_SQL = Path(__file__).with_suffix(".sql")
PREVIOUS_SQL = Path(__file__).with_name("0001_install.sql")
CHANGED = ("20_rotate.sql",)


def section(frozen: Path, name: str) -> str:
    """The text of sql/<name> in a frozen copy, each CREATE of a routine or view made CREATE OR REPLACE."""
    text = frozen.read_text()
    start = text.index(f"-- ==== sql/{name} ====\n")
    end = text.find("\n-- ==== sql/", start + 1)
    body = text[start : end if end >= 0 else len(text)]
    return re.sub(r"^CREATE (PROCEDURE|FUNCTION|VIEW) ", r"CREATE OR REPLACE \1 ", body, flags=re.MULTILINE)


def run_sections(frozen: Path) -> None:
    """Runs the changed sections as they are: psycopg with no parameters, so % and $ stay literal."""
    with op.get_bind().connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        for name in CHANGED:
            cursor.execute(section(frozen, name))


def upgrade() -> None:
    run_sections(FROZEN_SQL)


def downgrade() -> None:
    run_sections(PREVIOUS_SQL)
