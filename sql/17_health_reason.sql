-- token_rotation_internal.health_reason(options, relations): why the server is not healthy enough for the next batch,
-- by the health limits among a run's options, or NULL to go on. Checked in this order, each only when its
-- option is set: replica lag in bytes over max_replication_lag (replication_lag()), replica replay lag over
-- max_replay_lag (replay_lag()), WAL files waiting to be archived over max_archive_queue (archive_queue()),
-- and with pause_on_autovacuum an autovacuum worker on one of p_relations (the table, or its leaf partitions).
-- A signal that cannot be read means wait: a missing privilege says which grant fixes it ('replica lag
-- unknown: GRANT pg_monitor TO alice'), any other failure its SQLSTATE and message. rotate() calls it at most
-- once per limits().health_interval while batches go on, before each retry while it waits, and writes the
-- reason into slices.throttled (progress.throttled) with a NOTICE:
--   SELECT token_rotation_internal.health_reason('{"max_replication_lag": 1048576}', ARRAY['public.tickets'::regclass]);
CREATE OR REPLACE FUNCTION token_rotation_internal.health_reason(
      p_options   jsonb
    , p_relations regclass[]
)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v         record;  -- option_values(p_options)
    v_signal  text;    -- the signal being read, for the reason of a failure
    v_bytes   bigint;
    v_lag     interval;
    v_files   bigint;
    v_worker  text;
BEGIN
    SELECT * INTO v FROM token_rotation_internal.option_values(p_options);
    BEGIN
        IF v.max_replication_lag IS NOT NULL THEN
            v_signal := 'replica lag';
            v_bytes := token_rotation_internal.replication_lag();
            IF v_bytes > v.max_replication_lag THEN
                RETURN format('replica lag %s', pg_size_pretty(v_bytes));
            END IF;
        END IF;
        IF v.max_replay_lag IS NOT NULL THEN
            v_signal := 'replica replay lag';
            v_lag := token_rotation_internal.replay_lag();
            IF v_lag > v.max_replay_lag THEN
                RETURN format('replica replay lag %s s', round(extract(epoch FROM v_lag), 1));
            END IF;
        END IF;
        IF v.max_archive_queue IS NOT NULL THEN
            v_signal := 'WAL archive queue';
            v_files := token_rotation_internal.archive_queue();
            IF v_files > v.max_archive_queue THEN
                RETURN format('WAL archive queue %s files', v_files);
            END IF;
        END IF;
        IF v.pause_on_autovacuum THEN
            v_signal := 'autovacuum';
            v_worker := token_rotation_internal.autovacuum_worker(p_relations);
            IF v_worker IS NOT NULL THEN
                RETURN format('autovacuum on %s', v_worker);
            END IF;
        END IF;
    EXCEPTION
        WHEN insufficient_privilege THEN
            RETURN format('%s unknown: GRANT pg_monitor TO %I', v_signal, current_user);
        WHEN OTHERS THEN
            RETURN format('%s unknown (%s: %s)', v_signal, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.health_reason(jsonb, regclass[]) IS
    'Why a run must wait for the server''s health (replica lag in bytes or seconds, WAL archive queue, '
    'autovacuum on the table, or a signal it cannot read), NULL to go on.';
