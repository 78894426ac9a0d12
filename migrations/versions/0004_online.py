"""Online on a busy database: plan() writes nothing unless asked for a sample.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

plan() gains p_sample (default false: rows, slices and batches from counts and statistics, no sample batch,
no row lock); CREATE OR REPLACE cannot add a parameter, so upgrade drops the old five-parameter signature and
the head re-applies sql/. Its downgrade changes nothing (as 0003's): only base is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DROPS = """
DROP FUNCTION IF EXISTS token_rotation.plan(regclass, name, integer, integer, interval);
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
