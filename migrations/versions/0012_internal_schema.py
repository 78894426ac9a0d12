"""The public API apart from the internals: a schema token_rotation_internal for what only the tool calls.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

The schema token_rotation keeps what a DBA and the driver use: rotate(), the controls (pause, unpause,
cancel, hold, set_options), verify(), plan(), table_sizes(), xmin_holders(), holders(), default_options(),
the schedules, the progress view and the tables. The 72 routines that only those call (the checks, the
loop's steps, the bookkeeping, the health signals, the Citus waves ...) move to token_rotation_internal,
as TimescaleDB keeps its internals in schemas of their own: `\\df token_rotation.*` lists the API alone.
The schema belongs to the installing role, as the tool's own does (the ownership guard checks both);
USAGE on it is granted to PUBLIC, since rotate() runs with its caller's rights and calls them, and every
one of them that writes checks the caller's right where it writes, as before. Upgrade: the schema, then
the internal routines dropped from token_rotation (the progress view with them, which calls some), then,
as the head, every routine of sql/ re-applied, in its schema. Its downgrade changes nothing: only base
(uninstall) is a downgrade target, and 0001's downgrade drops both schemas.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE SCHEMA token_rotation_internal;
COMMENT ON SCHEMA token_rotation_internal IS
    'Internals of token-rotation: what its public API (the schema token_rotation) calls; not an API.';
GRANT USAGE ON SCHEMA token_rotation_internal TO PUBLIC;
"""

# the names as they were in token_rotation (every signature of each), dropped without CASCADE
MOVED = """
DROP VIEW IF EXISTS token_rotation.progress;
DO $moved$
DECLARE
    v_routine record;
BEGIN
    FOR v_routine IN
        SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END AS kind, p.oid::regprocedure AS sig
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'token_rotation'::regnamespace
           AND p.proname = ANY (ARRAY[
        'adapt_batch_size', 'archive_queue', 'authorize', 'authorize_run', 'autovacuum_worker',
        'batch_ends', 'caller', 'check_arguments', 'check_privileges', 'check_rows',
        'check_transaction', 'check_where', 'citus_adopt', 'citus_cancel', 'citus_census',
        'citus_check_tag', 'citus_control', 'citus_follow', 'citus_node', 'citus_node_progress',
        'citus_node_verify', 'citus_on_nodes', 'citus_open_run', 'citus_progress', 'citus_record',
        'citus_retire', 'citus_shard_call', 'citus_shards', 'citus_sizes', 'citus_tag',
        'citus_verify', 'claim_slice', 'describe_target', 'end_call', 'eta_seconds', 'finish_run',
        'health_reason', 'keep_options', 'key_compare', 'key_range_sql', 'limits', 'lock_space',
        'mark_lock_retry', 'mark_waiting', 'next_batch_size', 'oldest_token', 'open_run',
        'option_changes', 'option_limits', 'option_values', 'pin_settings', 'plan_run',
        'plan_slices', 'record_batch', 'redact', 'replay_lag', 'replication_lag', 'report_batch',
        'report_call', 'require_cron', 'rotate_citus', 'run_batch', 'run_eta', 'run_filter',
        'run_options', 'schedule_command', 'set_run_state', 'sleep', 'slice_holder', 'start_run',
        'token_value', 'wait_reason'
               ]::name[])
         ORDER BY p.oid
    LOOP
        EXECUTE pg_catalog.format('DROP %s %s', v_routine.kind, v_routine.sig);
    END LOOP;
END
$moved$;
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), SCHEMA)
    migrate.run_script(op.get_bind(), MOVED)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
