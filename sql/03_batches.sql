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
