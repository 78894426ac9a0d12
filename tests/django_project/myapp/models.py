"""The original system's model: a ticket with a secret token."""

from __future__ import annotations

import uuid

from django.db import models


class Ticket(models.Model):
    token = models.UUIDField(unique=True, default=uuid.uuid4)
    title = models.CharField(max_length=200, default="")
    created_at = models.DateTimeField(auto_now_add=True)


class ApiKey(models.Model):
    """A text token, as most real keys are (rotate_tokens --format hex:32 --prefix ak_)."""

    key = models.CharField(max_length=80, unique=True)
    user_id = models.IntegerField(unique=True)
