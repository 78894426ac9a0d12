-- token_rotation_internal.lock_space(): the first key of every advisory lock the tool takes, so that its locks
-- never collide with an application's. Worker locks: (lock_space(), slice_id), session level, one per slice;
-- claim locks: (lock_space() + 1, table oid), transaction level, held while a CALL picks its slice.
CREATE OR REPLACE FUNCTION token_rotation_internal.lock_space()
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 1953198708 $$;  -- 'tkrt'

COMMENT ON FUNCTION token_rotation_internal.lock_space() IS
    'Advisory lock space of token-rotation: pg_locks.classid of its worker locks (objid = slice_id).';
