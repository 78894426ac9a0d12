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
