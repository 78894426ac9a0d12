"""The SQL of token-rotation, shipped as package data: token_rotation.sql in an installed wheel.

Every top-level *.sql file here is a routine file (functions, procedures, views, all CREATE OR REPLACE),
re-applied in file-name order at the end of every upgrade; tables live in the migration revisions.
This file only makes the folder an importable package, so importlib.resources finds it in every kind of
install (wheel, pipx, editable).
"""
