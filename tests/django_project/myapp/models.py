"""The original system's model: a ticket with a secret token."""

from __future__ import annotations

import uuid

from django.db import models


class Ticket(models.Model):
    token = models.UUIDField(unique=True, default=uuid.uuid4)
    title = models.CharField(max_length=200, default="")
    created_at = models.DateTimeField(auto_now_add=True)
