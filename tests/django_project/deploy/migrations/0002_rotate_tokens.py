"""A deploy's migration that rotates every ticket's token: non-atomic, resumed by the next migrate when the
deploy dies, a no-op backwards."""

from __future__ import annotations

from django.db import migrations

from token_rotation.django.operations import RotateTokens


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("deploy", "0001_initial"), ("token_rotation", "0001_install")]
    operations = [RotateTokens("Ticket", "token", batch_size=3000)]
