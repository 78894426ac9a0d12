-- token_rotation_internal.caller(): the role a call acts for, as the tool's SECURITY DEFINER functions see it (inside
-- them current_user is the tool's owner): the role of SET ROLE, else the session's user (session_user, which
-- SET SESSION AUTHORIZATION changes). It is the role whose rights every bookkeeping function checks
-- (authorize()). A role's own code run from another role's SECURITY DEFINER function is checked as the
-- session's role: docs/security.md.
--   SELECT token_rotation_internal.caller();
CREATE OR REPLACE FUNCTION token_rotation_internal.caller()
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN current_setting('role') = 'none' THEN session_user
                ELSE current_setting('role')::name END
$$;

COMMENT ON FUNCTION token_rotation_internal.caller() IS
    'The role a call acts for (SET ROLE, else session_user): whose rights the bookkeeping functions check.';
