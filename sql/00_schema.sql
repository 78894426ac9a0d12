-- token_rotation schema: everything the tool owns lives here and nowhere else.
-- Installed by migrations/ (alembic upgrade head, or `token-rotation install`); removed by its downgrade.
CREATE SCHEMA IF NOT EXISTS token_rotation;

COMMENT ON SCHEMA token_rotation IS
    'token-rotation: resumable exactly-once rotation of uuid tokens. CALL token_rotation.rotate(''public.tickets'');';
