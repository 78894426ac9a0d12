"""The test project with the `deploy` app too: its migration 0002 rotates deploy.Ticket's tokens with
RotateTokens during `manage.py migrate`."""

from __future__ import annotations

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "deploy"]  # noqa: F405
