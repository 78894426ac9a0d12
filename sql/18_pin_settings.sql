-- token_rotation.pin_settings(search_path): pins, for the current transaction, the settings rotate() relies
-- on: the search_path it computed (pg_catalog first, the caller's schemas, so that the table's triggers find
-- what they always find, pg_temp last; every name rotate() uses is schema-qualified anyway), and the settings
-- that shape the text form of keys, since checkpoints are stored as text (a run started under DateStyle
-- 'SQL, DMY' and resumed under 'SQL, MDY' would otherwise read its checkpoint 01/02 as January 2nd; with
-- extra_float_digits 0 a float key would be rounded). rotate() calls it after every COMMIT, because a
-- procedure that COMMITs cannot carry a SET clause and SET LOCAL ends with each transaction.
-- It has no SET clause itself on purpose: a function's SET clause would undo these settings on return.
CREATE OR REPLACE FUNCTION token_rotation.pin_settings(p_search_path text)
RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_catalog.set_config('search_path', p_search_path, true),
           pg_catalog.set_config('datestyle', 'ISO, YMD', true),
           pg_catalog.set_config('intervalstyle', 'postgres', true),
           pg_catalog.set_config('extra_float_digits', '1', true);
$$;

COMMENT ON FUNCTION token_rotation.pin_settings(text) IS
    'Pins search_path, DateStyle, IntervalStyle and extra_float_digits for the current transaction (rotate()).';
