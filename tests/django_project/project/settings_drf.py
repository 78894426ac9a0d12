"""The test project with Django REST framework's token authentication (rest_framework.authtoken): its
authtoken_token table, whose key is the primary key, rotated by rotate_tokens and checked by DRF itself."""

from __future__ import annotations

from project.settings import *  # noqa: F403

INSTALLED_APPS = [  # noqa: F405
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework.authtoken",
    *INSTALLED_APPS,  # noqa: F405
]
