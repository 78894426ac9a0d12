"""One word per concept: a run's key ranges are its slices, the sessions working on them its workers.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

The column of runs that holds how many slices a run was cut into was named workers (the number of sessions
asked for when it started); it is renamed slices, with its check. The progress view gains a column workers
(the sessions working on the run's slices now, the CLI's --workers), at its end; its column sessions, the
same number under its old name, stays for this release and goes in the next (CREATE OR REPLACE can add
columns at the end only, so nothing else of the view changes). Upgrade: the renames, then, as the head,
re-applies every routine of sql/. Its downgrade changes nothing: only base (uninstall) is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

RENAMES = """
ALTER TABLE token_rotation.runs RENAME COLUMN workers TO slices;
ALTER TABLE token_rotation.runs RENAME CONSTRAINT runs_workers_check TO runs_slices_check;
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), RENAMES)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
