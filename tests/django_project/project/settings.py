"""Settings of the test Django project: the original's Ticket model (myapp) and token_rotation.django.

The database is DATABASE_URL (a libpq URL or key=value string), split into Django's DATABASES keys."""

from __future__ import annotations

import os

from psycopg.conninfo import conninfo_to_dict

_params = conninfo_to_dict(os.environ.get("DATABASE_URL", "dbname=postgres"))

SECRET_KEY = "test-only, not a secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "token_rotation.django",
    "myapp",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _params.get("dbname", "postgres"),
        "USER": _params.get("user", ""),
        "PASSWORD": _params.get("password", ""),
        "HOST": _params.get("host", ""),
        "PORT": _params.get("port", ""),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
