"""No models: the tool's tables belong to its Alembic revisions. This module exists because Django sends
post_migrate only to apps that have one, and apps.py upgrades the schema on post_migrate."""

from __future__ import annotations
