"""rotate() finds the ends of the coming batches ahead, while the heap pages are still all-visible.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

It changed a procedure's body only, so it has no DDL: the routines of sql/ are re-applied by the head
revision. Its downgrade changes nothing (old routine bodies are not kept; only base is a downgrade target).
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
