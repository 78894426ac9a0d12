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
