"""A second Ticket table, rotated by this app's migration 0002 (RotateTokens) during a deploy."""

from __future__ import annotations

import uuid

from django.db import models


class Ticket(models.Model):
    token = models.UUIDField(unique=True, default=uuid.uuid4)
    title = models.CharField(max_length=200, default="")
