"""Token formats, grace columns, and a run that keeps its options.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Upgrade adds runs.options (jsonb): the options a run was started with (column, batch size, sleep, lock
timeout and retries, target batch time, replication lag limit, synchronous commit, format, prefix, grace
columns), so that a bare CALL resumes with them. One jsonb column rather than a typed column per option: the
set of options grows with the issues (the key is next), run_options() overlays defaults, stored and given
values in one expression (`||`), and a new option needs no table change; the values are checked where they
are used (check_arguments(), token_value()), as the typed parameters they become. Runs opened before this
revision have '{}' and store their options at their next CALL.

It drops the signatures that change: rotate() and plan() gain p_format, p_prefix, p_previous_column and
p_rotated_at_column (rotate()'s options default to NULL, "not given"), key_range_sql() gains p_set. The
routines are re-applied from sql/ by the head revision. Downgrade changes nothing (see 0003).
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE token_rotation.runs ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN token_rotation.runs.options IS
    'The options the run works with (run_options(): column, batch_size, sleep, lock_timeout, lock_retries, '
    'target_batch_time, max_replication_lag, synchronous_commit, format, prefix, previous_column, '
    'rotated_at_column); a CALL that gives another value changes it for the rest of the run.';
"""

DROPS = """
DROP PROCEDURE IF EXISTS token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                               integer, interval, bigint, boolean);
DROP FUNCTION IF EXISTS token_rotation.plan(regclass, name, integer, integer, interval);
DROP FUNCTION IF EXISTS token_rotation.key_range_sql(regclass, name, name);
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), TABLES)
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
