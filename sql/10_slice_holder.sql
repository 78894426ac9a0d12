-- token_rotation_internal.slice_holder(slice_id): the backend pid working on a slice right now, read from the session
-- advisory lock (lock_space(), slice_id) it holds; NULL when nobody does. The one place that knows how a
-- worker's lock looks in pg_locks: holders(), the progress view and rotate() ask it.
--   SELECT slice_no, token_rotation_internal.slice_holder(slice_id) FROM token_rotation.slices WHERE run_id = 42;
CREATE OR REPLACE FUNCTION token_rotation_internal.slice_holder(p_slice_id bigint)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.pid
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
       AND l.classid = token_rotation_internal.lock_space()::oid AND l.objid = p_slice_id::integer::oid
     LIMIT 1
$$;

COMMENT ON FUNCTION token_rotation_internal.slice_holder(bigint) IS
    'Pid of the backend working on a slice (holding its advisory lock), NULL when nobody does.';
