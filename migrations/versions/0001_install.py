"""Install token-rotation: schema token_rotation with runs, slices, batches, rotate() and friends.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Upgrade runs the frozen copy of sql/ beside this file (0001_install.sql). Downgrade removes exactly the
objects that file creates (no CASCADE: an object of someone else's that depends on ours stops it), and the
schema when nothing else is left in it. It refuses while a worker is rotating.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0001"
down_revision = None
branch_labels = ("token_rotation",)
depends_on = None

FROZEN_SQL = Path(__file__).with_suffix(".sql")

DROPS = """
DO $guard$
BEGIN
    IF EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND classid = token_rotation.lock_space()::oid AND objsubid = 2) THEN
        RAISE EXCEPTION 'a token rotation is running'
            USING ERRCODE = 'object_in_use',
                  HINT = 'let it finish, or stop it with SELECT token_rotation.cancel(table), then uninstall';
    END IF;
END
$guard$;
DROP FUNCTION token_rotation.table_sizes(regclass);
DROP FUNCTION token_rotation.plan(regclass, name, integer, integer, interval);
DROP FUNCTION token_rotation.verify(bigint);
DROP FUNCTION token_rotation.cancel(regclass);
DROP FUNCTION token_rotation.resume(regclass);
DROP FUNCTION token_rotation.pause(regclass);
DROP FUNCTION token_rotation.set_run_state(regclass, text);
DROP VIEW token_rotation.progress;
DROP PROCEDURE token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                     integer, interval, bigint, boolean);
DROP FUNCTION token_rotation.start_run(regclass, name, integer, integer);
DROP FUNCTION token_rotation.holders(bigint);
DROP FUNCTION token_rotation.throttle_reason(text, bigint, bigint, text);
DROP FUNCTION token_rotation.replication_lag();
DROP FUNCTION token_rotation.next_batch_size(integer, double precision, double precision, integer, integer,
                                             double precision);
DROP FUNCTION token_rotation.plan_slices(regclass, name, integer, text, bigint);
DROP FUNCTION token_rotation.describe_target(regclass, name);
DROP FUNCTION token_rotation.pin_settings(text);
DROP FUNCTION token_rotation.slice_holder(bigint);
DROP FUNCTION token_rotation.lock_space();
DROP TABLE token_rotation.batches;
DROP TABLE token_rotation.slices;
DROP TABLE token_rotation.runs;
DO $drop_schema$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class WHERE relnamespace = 'token_rotation'::regnamespace)
       AND NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'token_rotation'::regnamespace) THEN
        DROP SCHEMA token_rotation;
    END IF;
END
$drop_schema$;
"""


def run_script(script: str) -> None:
    """Runs a multi-statement script as it is: through psycopg with no parameters, so % and $ stay literal."""
    with op.get_bind().connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(script)


def upgrade() -> None:
    run_script(FROZEN_SQL.read_text())


def downgrade() -> None:
    run_script(DROPS)
