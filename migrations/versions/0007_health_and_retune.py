"""Health throttles, holds, and retuning a running run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

A run now waits on the server's health as well as on its replicas' lag in bytes: the replay lag in seconds,
the WAL archive queue and autovacuum on the table (health_reason(), options max_replay_lag,
max_archive_queue, pause_on_autovacuum, kept in runs.options like the others), and on a hold: a reason with
an expiry that any session sets with hold() (the CLI's --throttle-query does, from its side session, where
its query can run under a real statement_timeout). set_options() changes a running run's options, and its
workers read them before each batch. Upgrade:
- runs.hold_reason text, runs.hold_until timestamptz: the hold, NULL when there is none; an open run keeps
  going as before;
- DROPS: the routines whose signature or result changed: rotate() gains p_max_replay_lag,
  p_max_archive_queue, p_pause_on_autovacuum and p_after_run (claim_slice() too); check_arguments() takes the options as jsonb; wait_reason()
  takes only the run and returns its options; limits() gains health_interval; throttle_reason() is replaced
  by health_reason(). The head revision re-applies every routine of sql/.
Its downgrade changes nothing, as 0003's: only base (uninstall) is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE token_rotation.runs
      ADD COLUMN hold_reason text
    , ADD COLUMN hold_until  timestamptz;
COMMENT ON COLUMN token_rotation.runs.hold_reason IS
    'Why the run''s workers wait (hold()), until hold_until; NULL: no hold.';
COMMENT ON COLUMN token_rotation.runs.hold_until IS
    'When the hold of hold_reason runs out (a driver renews it while its throttle query says wait).';
COMMENT ON COLUMN token_rotation.runs.options IS
    'The options the run works with (run_options(): column, batch_size, sleep, lock_timeout, lock_retries, '
    'target_batch_time, max_replication_lag, max_replay_lag, max_archive_queue, pause_on_autovacuum, '
    'synchronous_commit, format, prefix, previous_column, rotated_at_column); set_options(), or a CALL that '
    'gives another value, changes it for the rest of the run.';
"""

DROPS = """
DROP PROCEDURE IF EXISTS token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                               integer, interval, bigint, boolean, text, text, name, name, name[]);
DROP FUNCTION IF EXISTS token_rotation.check_arguments(integer, integer, integer, interval, interval, integer,
                                                       boolean, interval, bigint, boolean);
DROP FUNCTION IF EXISTS token_rotation.wait_reason(bigint, bigint);
DROP FUNCTION IF EXISTS token_rotation.throttle_reason(text, bigint, bigint, text);
DROP FUNCTION IF EXISTS token_rotation.limits();
DROP FUNCTION IF EXISTS token_rotation.claim_slice(regclass, name, name[], integer, integer, interval, boolean);
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), TABLES)
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
