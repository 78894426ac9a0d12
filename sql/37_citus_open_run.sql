-- token_rotation_internal.citus_open_run(table, column, key, options, rows, after_run): the coordinator's open run of a
-- distributed table, or a new one with a row per shard (rows: the count the caller read with its rights);
-- NULL when no run is open and one newer than p_after_run exists (the run that CALL was meant for has ended).
-- As the tool's owner, for a role that may rotate the table (authorize()).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_open_run(
      p_table     regclass
    , p_column    name
    , p_key       name[]
    , p_options   jsonb
    , p_rows      bigint
    , p_after_run bigint
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run token_rotation.runs;
BEGIN
    PERFORM token_rotation_internal.authorize(p_table, p_column, 'rotate');
    PERFORM pg_advisory_xact_lock(token_rotation_internal.lock_space() + 1, p_table::oid::integer);
    SELECT * INTO v_run FROM token_rotation.runs WHERE target = p_table AND state IN ('active', 'paused');
    IF FOUND THEN
        RETURN v_run;
    END IF;
    IF EXISTS (SELECT FROM token_rotation.runs WHERE target = p_table AND run_id > p_after_run) THEN
        RETURN NULL;
    END IF;
    INSERT INTO token_rotation.runs (target, token_column, key_columns, key_types, batch_size, started_by,
                                     slices, rows_expected, options)
    SELECT p_table, p_column, p_key,
           ARRAY(SELECT a.atttypid::regtype FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
                   JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name ORDER BY k.ord),
           (p_options->>'batch_size')::integer, token_rotation_internal.caller(),
           greatest((SELECT count(DISTINCT c.shardid) FROM token_rotation_internal.citus_shards(p_table) AS c), 1),
           p_rows, p_options
    RETURNING * INTO v_run;
    INSERT INTO token_rotation.shards (run_id, shardid, shard)
    SELECT DISTINCT v_run.run_id, c.shardid, c.shard FROM token_rotation_internal.citus_shards(p_table) AS c;
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_open_run(regclass, name, name[], jsonb, bigint, bigint) IS
    'The coordinator''s open run of a distributed table, or a new one with a row per shard.';
