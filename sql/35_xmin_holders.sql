-- token_rotation.xmin_holders(since, xmin): who holds the xmin horizon back, so that VACUUM cannot reclaim the
-- old row versions a rotation leaves (each rotated row leaves one): backends with a snapshot or a transaction id
-- older than that (pg_stat_activity; other roles' backends need pg_read_all_stats or pg_monitor to be seen),
-- replication slots holding an xmin (a standby with hot_standby_feedback, or an inactive slot) and prepared
-- transactions. One line, oldest first; NULL when nobody holds it. A holder counts when its transaction began
-- (or was prepared) before p_since, or its xmin is older than p_xmin; an inactive slot with an xmin always does.
-- The driver asks after each of its VACUUMs (since: its previous VACUUM); `status` asks with the run's start or
-- one minute ago, whichever is later. In psql:
--   SELECT token_rotation.xmin_holders(now() - interval '1 minute');
CREATE OR REPLACE FUNCTION token_rotation.xmin_holders(
      p_since timestamptz
    , p_xmin  xid DEFAULT NULL
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(h.what, '; ' ORDER BY h.xmin_age DESC)
      FROM (
            SELECT format('backend %s (%s, %s, transaction open since %s)', a.pid,
                          coalesce(nullif(a.application_name, ''), 'no application_name'),
                          coalesce(a.state, 'unknown'), to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS')) AS what
                 , greatest(age(a.backend_xmin), age(a.backend_xid)) AS xmin_age
                 , a.xact_start < p_since AS before
                 , true AS active
              FROM pg_stat_activity a
             WHERE (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
               AND a.pid <> pg_backend_pid()
               AND a.backend_type = 'client backend'
            UNION ALL
            SELECT format('replication slot %s (%s, %s)', s.slot_name, s.slot_type,
                          CASE WHEN s.active THEN 'active' ELSE 'inactive' END)
                 , age(s.xmin), false, s.active
              FROM pg_replication_slots s
             WHERE s.xmin IS NOT NULL
            UNION ALL
            SELECT format('prepared transaction %s (prepared at %s)', quote_literal(p.gid),
                          to_char(p.prepared, 'YYYY-MM-DD HH24:MI:SS'))
                 , age(p.transaction), p.prepared < p_since, true
              FROM pg_prepared_xacts p
           ) h
     WHERE h.before OR NOT h.active OR (p_xmin IS NOT NULL AND h.xmin_age > age(p_xmin))
$$;

COMMENT ON FUNCTION token_rotation.xmin_holders(timestamptz, xid) IS
    'Backends, replication slots and prepared transactions holding the xmin horizon since p_since (or older '
    'than p_xmin): what keeps VACUUM from reclaiming the rotated rows'' old versions.';
