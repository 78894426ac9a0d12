"""One source for the SQL: routines come from sql/ on every upgrade; revisions hold table DDL and drops.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

From here on no revision carries a copy of sql/. Upgrade drops the routine signatures that no longer exist
(DROPS: the renamed or re-typed ones, which CREATE OR REPLACE cannot change; the progress view, whose
columns were renamed to what they hold: workers -> slices, active_workers -> sessions, last_batch_at ->
heartbeat_at), then, as the head, re-applies
every routine of sql/. Its downgrade changes nothing: the dropped signatures' bodies are not kept, which is
why only base (uninstall) is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DROPS = """
DROP FUNCTION IF EXISTS token_rotation.resume(regclass);
DROP VIEW IF EXISTS token_rotation.progress;
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
