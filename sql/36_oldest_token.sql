-- token_rotation_internal.oldest_token(table, column): the age in seconds of the oldest rotation time in a table's
-- rotated-at column, and whether any row has none (NULL: never rotated, so due first), for schedules(); both
-- NULL when the caller may not read the table or the read could run code of a role the caller does not trust.
-- The table and the column come from a pg_cron job, which any role allowed to schedule names, and schedules()
-- is read by `status`, often as a superuser: a view's functions, an IMMUTABLE function of an index expression
-- or predicate, a CHECK constraint, a partition key expression or an extended statistics expression (the
-- planner evaluates those with constant arguments), a policy, or a type's implicit cast would run with the
-- reader's rights. So the column must be a stored timestamptz (what rotate() writes), the table plain or
-- partitioned (every partition plain), no policy applying to the caller, and every relation of it owned by a
-- role the caller trusts (itself, a superuser, a member of it: describe_target()'s rule) or free of such code.
--   SELECT * FROM token_rotation_internal.oldest_token('public.api_keys', 'rotated_at');
CREATE OR REPLACE FUNCTION token_rotation_internal.oldest_token(
      p_table         regclass
    , p_column        name
    , seconds         OUT double precision
    , never_rotated   OUT boolean
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (the table is a regclass, which quotes its own name; the column is quoted with %I)
BEGIN
    IF p_table IS NULL OR p_column IS NULL OR NOT has_table_privilege(p_table, 'SELECT')
       OR row_security_active(p_table)
       OR NOT EXISTS (SELECT FROM pg_attribute a
                       WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped
                         AND a.atttypid = 'timestamptz'::regtype AND a.attgenerated = '')
       OR EXISTS (SELECT
                    FROM (SELECT p_table::oid AS relid UNION SELECT pt.relid FROM pg_partition_tree(p_table) pt) r
                    JOIN pg_class c ON c.oid = r.relid
                   WHERE c.relkind NOT IN ('r', 'p')
                      OR (NOT pg_has_role(c.relowner, current_user, 'USAGE')
                          AND (EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid
                                          AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL))
                               OR EXISTS (SELECT FROM pg_constraint n WHERE n.conrelid = c.oid AND n.contype = 'c')
                               OR EXISTS (SELECT FROM pg_partitioned_table t WHERE t.partrelid = c.oid
                                             AND t.partexprs IS NOT NULL)
                               OR EXISTS (SELECT FROM pg_statistic_ext x WHERE x.stxrelid = c.oid
                                             AND x.stxexprs IS NOT NULL)))) THEN
        RETURN;
    END IF;
    -- min() and one NULL are each an index probe where the column is indexed, as a policy's should be
    EXECUTE format('SELECT extract(epoch FROM now() - (SELECT min(%1$I) FROM %2$s))::float8,'
                   ' EXISTS (SELECT FROM %2$s WHERE %1$I IS NULL)', p_column, p_table)
       INTO seconds, never_rotated;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.oldest_token(regclass, name) IS
    'Age in seconds of the oldest rotation time in a table''s rotated-at column, and whether a row has none; '
    'NULL where reading it could run code of a role the caller does not trust.';
