"""Installs the token_rotation schema with the tool's own Alembic machinery (token_rotation.migrate: the
packaged SQL, the token_rotation.alembic_version row), so `token-rotation install` and `manage.py migrate`
see each other's install. Backwards (`manage.py migrate token_rotation zero`): uninstall, refused while a
rotation runs. Non-atomic: Alembic works in its own session, with its own transaction."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def install(apps: Any, schema_editor: Any) -> None:
    from token_rotation import migrate
    from token_rotation.django import database

    migrate.upgrade(database.dsn(schema_editor.connection.alias))


def uninstall(apps: Any, schema_editor: Any) -> None:
    from token_rotation import migrate
    from token_rotation.django import database

    migrate.downgrade(database.dsn(schema_editor.connection.alias))


class Migration(migrations.Migration):
    atomic = False
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(install, uninstall, atomic=False, elidable=False)]
