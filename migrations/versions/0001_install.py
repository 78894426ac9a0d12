"""Install token-rotation: the schema token_rotation and its tables runs, slices and batches.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Upgrade creates the schema and the three tables exactly as 0001 shipped them; the routines come from sql/,
re-applied by the head revision (token_rotation.migrate.upgraded_to). Downgrade is the uninstall: it refuses
while a worker is rotating, then drops every routine and view whose name the sql/ files define, the tables,
and the schema when nothing else is left in it. No CASCADE: an object of someone else's that depends on ours
stops it.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = "0001"
down_revision = None
branch_labels = ("token_rotation",)
depends_on = None

TABLES = """
-- token_rotation schema: everything the tool owns lives here and nowhere else.
-- Installed by migrations/ (alembic upgrade head, or `token-rotation install`); removed by its downgrade.
CREATE SCHEMA IF NOT EXISTS token_rotation;

COMMENT ON SCHEMA token_rotation IS
    'token-rotation: resumable exactly-once rotation of uuid tokens. CALL token_rotation.rotate(''public.tickets'');';

-- token_rotation.runs: one row per rotation run of one table.
-- A run fixes its key range when it starts; it is "open" (active or paused) until it is finished or cancelled.
-- At most one open run per table: the partial unique index below, which survives a crashed session.
CREATE TABLE token_rotation.runs (
      run_id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    , target              regclass    NOT NULL
    , token_column        name        NOT NULL
    , key_column          name        NOT NULL
    , key_type            regtype     NOT NULL
    , state               text        NOT NULL DEFAULT 'active'
    , workers             integer     NOT NULL DEFAULT 1
    , batch_size          integer     NOT NULL
    , key_min             text
    , key_max             text
    , rows_expected       bigint      NOT NULL DEFAULT 0
    , rows_expected_exact boolean     NOT NULL DEFAULT true
    , rows_done           bigint      NOT NULL DEFAULT 0
    , elapsed             interval    NOT NULL DEFAULT '0'
    , started_at          timestamptz NOT NULL DEFAULT clock_timestamp()
    , finished_at         timestamptz
    , state_changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
    , last_error          text
    , last_error_at       timestamptz
    , CONSTRAINT runs_state_check CHECK (state IN ('active', 'paused', 'finished', 'cancelled'))
    , CONSTRAINT runs_workers_check CHECK (workers >= 1)
    , CONSTRAINT runs_finished_check CHECK ((state = 'finished') = (finished_at IS NOT NULL))
);

CREATE UNIQUE INDEX runs_one_open_run_per_table
    ON token_rotation.runs (target) WHERE state IN ('active', 'paused');

COMMENT ON TABLE token_rotation.runs IS
    'One row per rotation run. state: active (resumable), paused, finished, cancelled. '
    'elapsed and rows_done are brought up to date when a CALL ends; token_rotation.progress has live numbers.';
COMMENT ON COLUMN token_rotation.runs.key_max IS
    'Largest key when the run started (text form): rows inserted later already have fresh tokens.';
COMMENT ON COLUMN token_rotation.runs.elapsed IS
    'Working time accumulated over every CALL of this run (resumes included, pauses and gaps excluded).';

-- token_rotation.slices: the key range of a run cut into disjoint slices, one per worker, each with its
-- own checkpoint. A slice covers the keys k with lo < k <= hi (lo NULL: from the smallest key).
-- last_key is the checkpoint: it is written in the same transaction as the batch that reached it.
CREATE TABLE token_rotation.slices (
      slice_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    , run_id        bigint      NOT NULL REFERENCES token_rotation.runs ON DELETE CASCADE
    , slice_no      integer     NOT NULL
    , lo            text
    , hi            text
    , last_key      text
    , rows_expected bigint      NOT NULL DEFAULT 0
    , rows_done     bigint      NOT NULL DEFAULT 0
    , batches_done  integer     NOT NULL DEFAULT 0
    , batch_size    integer
    , elapsed       interval    NOT NULL DEFAULT '0'
    , done          boolean     NOT NULL DEFAULT false
    , backend_pid   integer
    , heartbeat_at  timestamptz
    , throttled     text
    , CONSTRAINT slices_run_slice_no_key UNIQUE (run_id, slice_no)
);

COMMENT ON TABLE token_rotation.slices IS
    'Disjoint key slices of a run (lo, hi], one worker each; last_key is the committed checkpoint.';
COMMENT ON COLUMN token_rotation.slices.throttled IS
    'Why the worker is waiting right now (paused, replica lag, lock retry), NULL when it is working.';

-- token_rotation.batches: the progress log, one row per committed batch, written in the batch's own
-- transaction. Each batch covers the keys k with after_key < k <= last_key (after_key NULL: from the start
-- of its slice), so a finished slice is a gap-free, overlap-free chain of batches (see token_rotation.verify).
CREATE TABLE token_rotation.batches (
      slice_id      bigint      NOT NULL REFERENCES token_rotation.slices ON DELETE CASCADE
    , batch_no      integer     NOT NULL
    , run_id        bigint      NOT NULL REFERENCES token_rotation.runs ON DELETE CASCADE
    , after_key     text
    , last_key      text
    , rows          integer     NOT NULL
    , batch_size    integer     NOT NULL
    , started_at    timestamptz NOT NULL
    , finished_at   timestamptz NOT NULL
    , retries       integer     NOT NULL DEFAULT 0
    , PRIMARY KEY (slice_id, batch_no)
);

CREATE INDEX batches_run_id_finished_at ON token_rotation.batches (run_id, finished_at);

COMMENT ON TABLE token_rotation.batches IS
    'Progress log: one row per committed batch (after_key, last_key], written atomically with the batch.';
"""

GUARD = """
DO $guard$
DECLARE
    -- where the lock space is: token_rotation_internal from revision 0012 on, token_rotation before
    v_lock_space regprocedure := coalesce(to_regprocedure('token_rotation_internal.lock_space()'),
                                          to_regprocedure('token_rotation.lock_space()'));
    v_space      integer;
BEGIN
    IF v_lock_space IS NOT NULL THEN
        EXECUTE format('SELECT %s', v_lock_space) INTO v_space;
        IF EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted
                      AND classid = v_space::oid AND objsubid = 2) THEN
            RAISE EXCEPTION 'a token rotation is running'
                USING ERRCODE = 'object_in_use',
                      HINT = 'let it finish, or stop it with SELECT token_rotation.cancel(table), '
                             'then uninstall';
        END IF;
    END IF;
END
$guard$;
"""

DROP_TABLES = """
DROP TABLE IF EXISTS token_rotation.shards;  -- revision 0010's; dropped here, after the guard
DROP TABLE token_rotation.batches;
DROP TABLE token_rotation.slices;
DROP TABLE token_rotation.runs;
DO $drop_schema$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class WHERE relnamespace = 'token_rotation'::regnamespace)
       AND NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'token_rotation'::regnamespace) THEN
        DROP SCHEMA token_rotation;
    END IF;
    IF to_regnamespace('token_rotation_internal') IS NOT NULL  -- revision 0012's
       AND NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = to_regnamespace('token_rotation_internal'))
       AND NOT EXISTS (SELECT FROM pg_class WHERE relnamespace = to_regnamespace('token_rotation_internal')) THEN
        DROP SCHEMA token_rotation_internal;
    END IF;
END
$drop_schema$;
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), TABLES)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    migrate.run_script(op.get_bind(), GUARD)
    migrate.drop_routines(op.get_bind())
    migrate.run_script(op.get_bind(), DROP_TABLES)
