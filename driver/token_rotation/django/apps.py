"""The Django app config of token_rotation.django (label "token_rotation").

Its migration 0001 installs the schema. Upgrades: after every `manage.py migrate` that does not itself run
that migration, the post_migrate handler brings an installed schema up to this package, as
`token-rotation install` does (new Alembic revisions, then every routine of sql/ re-applied: idempotent).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

LABEL = "token_rotation"


class TokenRotationConfig(AppConfig):
    name = "token_rotation.django"
    label = LABEL
    verbose_name = "token rotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(upgrade_after_migrate, sender=self, dispatch_uid="token_rotation.upgrade")


def upgrade_after_migrate(
    sender: AppConfig, using: str, plan: Any = None, verbosity: int = 1, **_: Any
) -> None:
    """post_migrate of `manage.py migrate` (plan is None for flush, which changes no schema): upgrades the
    schema when it is installed and this migrate did not just install or remove it."""
    from token_rotation import migrate
    from token_rotation.django import database

    if plan is None or any(m.app_label == LABEL for m, _backwards in plan):
        return
    dsn = database.dsn(using)
    if migrate.installed_revision(dsn) is None:
        return
    migrate.upgrade(dsn)
    if verbosity >= 2:
        print(f"  token_rotation: schema upgraded to {migrate.head_revision()}, routines re-applied")
