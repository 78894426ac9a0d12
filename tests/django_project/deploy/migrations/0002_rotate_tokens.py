"""A deploy's migration that rotates every ticket's token: non-atomic, resumed by the next migrate when the
deploy dies, a no-op backwards. (DEPLOY_SLEEP, seconds between batches, lets a test kill it mid-run.)"""

from __future__ import annotations

import os

from django.db import migrations

from token_rotation.django.operations import RotateTokens


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("deploy", "0001_initial"), ("token_rotation", "0001_install")]
    operations = [
        RotateTokens("Ticket", "token", batch_size=3000, sleep=float(os.environ.get("DEPLOY_SLEEP", "0")))
    ]
