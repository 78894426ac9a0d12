"""Citus: a run of a distributed table, one per shard on the node that holds it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

On a Citus coordinator, rotate() of a distributed table (hash-distributed or single-shard) keeps one run on
the coordinator and, for each shard, an ordinary run of the tool on the node that holds the shard, whose
checkpoints commit with its batches there (rotate_citus(), sql/37_rotate_citus.sql). Upgrade:
- token_rotation.shards: the shards of a coordinator's run: the node each was last seen on, its run there
  (whose options carry the tag of the coordinator's run and the shard: a shard is never given a second run),
  the rows it rotated, done. Written only by the tool's SECURITY DEFINER functions.
- DROPS: rotate() gains p_citus (a shard's tag, set by rotate_citus()). The head revision re-applies every
  routine of sql/.
Its downgrade changes nothing: only base (uninstall) is a downgrade target, and 0001's downgrade drops that
table with the others, after its guard against a running rotation.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE token_rotation.shards (
      run_id      bigint  NOT NULL REFERENCES token_rotation.runs ON DELETE CASCADE
    , shardid     bigint  NOT NULL
    , shard       text    NOT NULL
    , node        text
    , port        integer
    , node_run_id bigint
    , rows_done   bigint  NOT NULL DEFAULT 0
    , done        boolean NOT NULL DEFAULT false
    , PRIMARY KEY (run_id, shardid)
);
COMMENT ON TABLE token_rotation.shards IS
    'The shards of a run of a Citus distributed table (on the coordinator): the node each was last seen on, '
    'its run there, the rows it rotated, done.';
"""

DROPS = """
DROP PROCEDURE IF EXISTS token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                               integer, interval, bigint, boolean, text, text, name, name, name[],
                                               interval, integer, boolean, bigint, boolean, text, boolean, interval,
                                               timestamptz, interval);
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), TABLES)
    migrate.run_script(op.get_bind(), DROPS)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass  # the table goes with the others in 0001's downgrade, after its guard against a running rotation
