-- The grants a role needs to rotate a table with token-rotation, and nothing more (least privilege).
-- Not installed by the migrations (this file is outside the sql/*.sql glob): a DBA runs it by hand, with the
-- role and table names replaced. Validated by tests/test_privileges.py and tests/security/ against
-- PostgreSQL 15 and 18. The model behind it: docs/security.md.
--
-- rotate() runs with the caller's rights (SECURITY INVOKER): the role itself must be able to read the key and
-- update the token of the table. It writes the tool's run, checkpoint and progress-log tables only through
-- the tool's functions, which run as the tool's owner and check, where they write, that the caller may
-- UPDATE the run's token column: the role gets no write access to them. It needs no superuser, no ownership
-- of the table, and no BYPASSRLS unless the table has row-level security (rotate() refuses a table whose
-- policies apply to the caller: hidden rows would keep their token).

-- the application table: read the key (the walk), update the token (the rotation)
GRANT SELECT, UPDATE ON public.tickets TO rotator;
-- (or, column by column: GRANT SELECT (id), UPDATE (token) ON public.tickets TO rotator;
--  verify() then also needs SELECT (token) unless the token has a unique index)

-- the tool's schema: its functions (EXECUTE is granted to PUBLIC by default) and, to read, its tables (the
-- schema token_rotation_internal, which the API calls, grants USAGE to PUBLIC itself)
GRANT USAGE ON SCHEMA token_rotation TO rotator;
GRANT SELECT ON token_rotation.runs, token_rotation.slices, token_rotation.batches, token_rotation.progress TO rotator;
GRANT SELECT ON token_rotation.shards TO rotator;

-- the health limits (p_max_replication_lag, p_max_replay_lag, p_max_archive_queue, p_pause_on_autovacuum) read
-- pg_stat_replication, pg_ls_archive_statusdir() and other roles' VACUUM progress: without pg_monitor such a
-- signal is unreadable, and a run that watches it waits, naming this grant
GRANT pg_monitor TO rotator;

-- If your installation revoked EXECUTE from PUBLIC, grant it back to the role:
-- GRANT EXECUTE ON ALL ROUTINES IN SCHEMA token_rotation, token_rotation_internal TO rotator;
