"""Trust: the tool's tables are written only by its own functions, which check the caller's right.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Rotating roles used to INSERT and UPDATE token_rotation.runs, slices and batches themselves; any of them could
forge another role's checkpoint or options. Now every write goes through a SECURITY DEFINER function of the
tool's owner that checks, where it writes, that the caller may UPDATE the run's token column (README,
"Security model"). Upgrade:
- runs.started_by name: the role that started the run (NULL for runs started before this revision);
- every privilege on the tool's tables and sequences other than SELECT is revoked from every role but their
  owner (what the old GRANT recipe gave rotating roles: INSERT, UPDATE on runs and slices, INSERT on batches);
- DROPS: the routines whose signature changed: start_run() takes the plan that rotate() read (plan_run()),
  claim_slice() takes it too, run_batch() takes the caller's search_path, pin_settings() pins pg_catalog, pg_temp
  (no argument),
  key_compare() takes the key's operator classes, check_arguments() the key walked (a key the run writes is
  refused); rotate(), plan(), describe_target() and token_value() take p_trust_table_owner.
The head revision re-applies every routine of sql/. Its downgrade changes nothing, as 0003's: only base
(uninstall) is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE token_rotation.runs ADD COLUMN started_by name;
COMMENT ON COLUMN token_rotation.runs.started_by IS
    'The role that started the run (token_rotation.caller()); NULL for runs started before revision 0008.';

DO $revoke_writes$
DECLARE
    v_grant record;
BEGIN
    FOR v_grant IN
        SELECT c.oid::regclass AS relation, a.privilege_type,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END AS grantee
          FROM pg_catalog.pg_class c
         CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) AS a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.relnamespace = 'token_rotation'::regnamespace AND c.relkind IN ('r', 'S', 'p')
           AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
    LOOP
        EXECUTE pg_catalog.format('REVOKE %s ON %s FROM %s', v_grant.privilege_type, v_grant.relation,
                                  v_grant.grantee);
    END LOOP;
END
$revoke_writes$;
"""

DROPS = """
DROP FUNCTION IF EXISTS token_rotation.start_run(regclass, name, name[], integer, integer);
DROP FUNCTION IF EXISTS token_rotation.claim_slice(regclass, name, name[], integer, integer, interval, boolean, bigint);
DROP FUNCTION IF EXISTS token_rotation.run_batch(text, text, text[], text[]);
DROP FUNCTION IF EXISTS token_rotation.pin_settings(text);
DROP FUNCTION IF EXISTS token_rotation.key_compare(text[], text[], text, integer);
DROP FUNCTION IF EXISTS token_rotation.check_arguments(jsonb, integer, integer, boolean);
DROP PROCEDURE IF EXISTS token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                               integer, interval, bigint, boolean, text, text, name, name, name[],
                                               interval, integer, boolean, bigint);
DROP FUNCTION IF EXISTS token_rotation.plan(regclass, name, integer, integer, interval, boolean, text, text, name,
                                            name, name[]);
DROP FUNCTION IF EXISTS token_rotation.describe_target(regclass, name, name[]);
DROP FUNCTION IF EXISTS token_rotation.token_value(regclass, name, text, text, name, name);
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), TABLES)
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
