"""Keys of any shape: composite and alternative keys, partitioned tables; checkpoints become text[].

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

A run now walks a key of one or more columns (the primary key, or the NOT NULL columns that p_key / --key
names, covered by a unique index), and a partitioned table is one run over its leaf partitions. A key value
is stored as a text[]: one element per key column, each that column's text form under the settings that
pin_settings() fixes, so a checkpoint reads back the same under any DateStyle, and a composite key needs no
quoting rules of its own (a row literal would). Upgrade:
- runs.key_column name / key_type regtype become key_columns name[] / key_types regtype[]; runs.key_min,
  key_max, slices.lo, hi, last_key and batches.after_key, last_key become text[]: an existing value v
  becomes '{v}' (its one key column), NULL stays NULL, so an open run resumes where it stopped, exactly once;
- runs.partitions regclass[]: the leaf partitions a run of a partitioned table started with (verify() names
  those detached or dropped during the run); NULL for a plain table;
- DROPS: the routines whose signature or result changed (key name -> name[], key values text -> text[],
  rotate() and plan() gain p_key, plan() returns key_columns), and the progress view, which reads the runs
  table whose columns change. The head revision re-applies every routine of sql/.
Its downgrade changes nothing, as 0003's: only base (uninstall) is a downgrade target.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DROPS = """
DROP VIEW IF EXISTS token_rotation.progress;
DROP FUNCTION IF EXISTS token_rotation.key_range_sql(regclass, name, name);
DROP FUNCTION IF EXISTS token_rotation.describe_target(regclass, name);
DROP FUNCTION IF EXISTS token_rotation.plan_slices(regclass, name, integer, text, bigint);
DROP FUNCTION IF EXISTS token_rotation.start_run(regclass, name, integer, integer);
DROP FUNCTION IF EXISTS token_rotation.claim_slice(regclass, name, integer, integer, interval, boolean);
DROP FUNCTION IF EXISTS token_rotation.batch_ends(text, text, text, text, integer, integer, interval);
DROP FUNCTION IF EXISTS token_rotation.run_batch(text, text, text, text);
DROP FUNCTION IF EXISTS token_rotation.record_batch(bigint, bigint, text, text, bigint, integer, timestamptz,
                                                    timestamptz, integer, boolean);
DROP FUNCTION IF EXISTS token_rotation.plan(regclass, name, integer, integer, interval);
DROP PROCEDURE IF EXISTS token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer,
                                               boolean, integer, interval, bigint, boolean);
"""

TABLES = """
ALTER TABLE token_rotation.runs
      ADD COLUMN key_columns name[]
    , ADD COLUMN key_types   regtype[]
    , ADD COLUMN partitions  regclass[]
    , ALTER COLUMN key_min TYPE text[] USING CASE WHEN key_min IS NOT NULL THEN ARRAY[key_min] END
    , ALTER COLUMN key_max TYPE text[] USING CASE WHEN key_max IS NOT NULL THEN ARRAY[key_max] END;
UPDATE token_rotation.runs SET key_columns = ARRAY[key_column], key_types = ARRAY[key_type];
ALTER TABLE token_rotation.runs
      ALTER COLUMN key_columns SET NOT NULL
    , ALTER COLUMN key_types SET NOT NULL
    , DROP COLUMN key_column
    , DROP COLUMN key_type
    , ADD CONSTRAINT runs_key_check CHECK (cardinality(key_columns) >= 1
                                           AND cardinality(key_types) = cardinality(key_columns));
COMMENT ON COLUMN token_rotation.runs.key_columns IS
    'The key the run walks: its primary key, or the columns p_key named (NOT NULL, covered by a unique index).';
COMMENT ON COLUMN token_rotation.runs.key_max IS
    'Largest key when the run started, one text element per key column: rows inserted later already have '
    'fresh tokens.';
COMMENT ON COLUMN token_rotation.runs.partitions IS
    'Leaf partitions of a partitioned table when the run started (NULL for a plain table); verify() names '
    'those detached or dropped since. One attached later is not chased.';

ALTER TABLE token_rotation.slices
      ALTER COLUMN lo TYPE text[] USING CASE WHEN lo IS NOT NULL THEN ARRAY[lo] END
    , ALTER COLUMN hi TYPE text[] USING CASE WHEN hi IS NOT NULL THEN ARRAY[hi] END
    , ALTER COLUMN last_key TYPE text[] USING CASE WHEN last_key IS NOT NULL THEN ARRAY[last_key] END;
COMMENT ON COLUMN token_rotation.slices.last_key IS
    'The committed checkpoint: the last key of the slice''s last batch, one text element per key column.';

ALTER TABLE token_rotation.batches
      ALTER COLUMN after_key TYPE text[] USING CASE WHEN after_key IS NOT NULL THEN ARRAY[after_key] END
    , ALTER COLUMN last_key TYPE text[] USING CASE WHEN last_key IS NOT NULL THEN ARRAY[last_key] END;
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), DROPS)
    migrate.run_script(op.get_bind(), TABLES)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
