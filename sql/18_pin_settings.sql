-- token_rotation_internal.pin_settings(): pins, for the current transaction, the settings rotate() relies on: the
-- search_path pg_catalog, pg_temp, so that nothing rotate() calls resolves to a look-alike in a schema of the
-- caller's (only run_batch() lends the batch's UPDATE the caller's path, for the table's triggers), and the
-- settings that shape the text form of keys, since checkpoints are stored as text (a run started under
-- DateStyle 'SQL, DMY' and resumed under 'SQL, MDY' would otherwise read its checkpoint 01/02 as January 2nd;
-- with extra_float_digits 0 a float key would be rounded). rotate() calls it first and after every COMMIT,
-- because a procedure that COMMITs cannot carry a SET clause and SET LOCAL ends with each transaction.
-- It has no SET clause itself on purpose: a function's SET clause would undo these settings on return; every
-- name in it is schema-qualified.
CREATE OR REPLACE FUNCTION token_rotation_internal.pin_settings()
RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
           pg_catalog.set_config('datestyle', 'ISO, YMD', true),
           pg_catalog.set_config('intervalstyle', 'postgres', true),
           pg_catalog.set_config('extra_float_digits', '1', true);
$$;

COMMENT ON FUNCTION token_rotation_internal.pin_settings() IS
    'Pins search_path (pg_catalog, pg_temp), DateStyle, IntervalStyle and extra_float_digits for the current '
    'transaction (rotate()).';
