"""Subsets and windows: a run over the rows that match an expression, or whose token is older than an age,
leaving NULL tokens alone unless asked, and a CALL that stops at the end of its window.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

No table changes: a run's subset is stored with its options (runs.options: where, older_than,
rotated_before, fill_null). DROPS: the routines whose signature changed: key_range_sql() takes the run's
filter, plan_slices() and plan_run() too; rotate() takes p_where, p_fill_null, p_older_than, p_stop_at and
p_max_duration, plan() p_where, p_fill_null and p_older_than. The head revision re-applies every routine of
sql/. Its downgrade changes nothing, as 0003's: only base (uninstall) is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DROPS = """
DROP FUNCTION IF EXISTS token_rotation.key_range_sql(regclass, name[], name, text);
DROP FUNCTION IF EXISTS token_rotation.plan_slices(regclass, name[], integer, text[], bigint);
DROP FUNCTION IF EXISTS token_rotation.plan_run(regclass, name[], integer);
DROP PROCEDURE IF EXISTS token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                               integer, interval, bigint, boolean, text, text, name, name, name[],
                                               interval, integer, boolean, bigint, boolean);
DROP FUNCTION IF EXISTS token_rotation.plan(regclass, name, integer, integer, interval, boolean, text, text, name,
                                            name, name[], boolean);
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
