"""The Alembic migrations of token-rotation, shipped as package data: token_rotation.migrations.

This file only makes the folder an importable package, so importlib.resources finds it in every kind of
install (wheel, pipx, editable); Alembic itself loads env.py and versions/*.py by path.
"""
