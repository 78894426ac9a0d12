"""What the Django app hands to the driver: the DSN of a Django database alias, and the table, key and token
column of a model's field, checked to be a token the procedure can rotate (a UUIDField that is not the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import connections
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from token_rotation import connection
from token_rotation.errors import EXIT_BAD_INPUT, ToolError

# the libpq connection keywords (dbname, host, sslmode, options, ...): Django's connection parameters hold
# others too (cursor_factory, context, prepare_threshold), which are psycopg's, not libpq's
_LIBPQ_KEYWORDS = {d.keyword.decode() for d in pq.Conninfo.get_defaults()}


def dsn(alias: str = "default") -> str:
    """The libpq DSN of a Django database alias (NAME, USER, PASSWORD, HOST, PORT and the libpq OPTIONS),
    as Django itself would connect: for PostgreSQL only."""
    if alias not in connections.settings:
        raise ToolError(
            f"no database {alias!r} in the Django settings "
            f"(DATABASES has: {', '.join(connections.settings)})",
            EXIT_BAD_INPUT,
        )
    conn = connections[alias]
    if conn.vendor != "postgresql":
        raise ToolError(
            f"database {alias!r} is {conn.vendor}: token_rotation works on PostgreSQL only", EXIT_BAD_INPUT
        )
    params: dict[str, Any] = conn.get_connection_params()
    return make_conninfo(
        **{
            k: str(v)
            for k, v in params.items()
            if k in _LIBPQ_KEYWORDS - {"client_encoding"} and v is not None and v != ""
        }
    )


def target(alias: str = "default") -> connection.Target:
    """The driver's database target for a Django alias (its masked() form is what the runner shows)."""
    return connection.Target(dsn(alias), f"Django database {alias!r}")


@dataclass(frozen=True)
class TokenField:
    """A model's token field, as the procedure takes it: the quoted table, the token column, the key."""

    label: str  # app_label.Model
    table: str  # the model's db_table, quoted (found through the search_path, as Django does)
    column: str  # the field's db column
    key: list[str] | None  # the columns to walk the rows by; None: the primary key (the procedure finds it)


def get_model(label: str) -> Any:
    """The model of an `app_label.Model` label, or a ToolError saying what to pass."""
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        raise ToolError(
            f"no model {label!r}: pass app_label.Model, e.g. myapp.Ticket (the app in INSTALLED_APPS)",
            EXIT_BAD_INPUT,
        ) from None


def field_column(model: Any, field_name: str) -> str:
    """The column of a model's field (e.g. --rotated-at-field), or a ToolError naming the model's fields."""
    try:
        return str(model._meta.get_field(field_name).column)
    except FieldDoesNotExist:
        names = ", ".join(f.name for f in model._meta.concrete_fields)
        raise ToolError(
            f"{model._meta.label} has no field {field_name!r} (its fields: {names})", EXIT_BAD_INPUT
        ) from None


# the field types whose column a format can fill (the procedure checks the format against the column's type)
TEXT_FIELDS = ("CharField", "TextField", "SlugField")
BYTES_FIELDS = ("BinaryField",)


def token_field(model: Any, field_name: str, token_format: str | None = None) -> TokenField:
    """The table, token column and key of `model.field_name`; refuses, with what to pass instead, a field
    that does not exist, is not a column, or cannot hold a token: a UUIDField, or with --format a text field
    (hex:N, base64url:N, function:) or a BinaryField (bytes:N). A token that is the primary key (Django REST
    framework's Token.key) is walked by another unique NOT NULL field (its OneToOneField to the user); the
    procedure refuses it if a foreign key references it without ON UPDATE CASCADE."""
    meta = model._meta
    label = f"{meta.app_label}.{meta.object_name}"
    uuid_fields = [
        f.name for f in meta.concrete_fields if f.get_internal_type() == "UUIDField" and not f.primary_key
    ]
    others = f" (UUIDFields of {label}: {', '.join(uuid_fields)})" if uuid_fields else f" ({label} has none)"
    try:
        field = meta.get_field(field_name)
    except FieldDoesNotExist:
        raise ToolError(
            f"{label} has no field {field_name!r}: pass --field{others}", EXIT_BAD_INPUT
        ) from None
    if not getattr(field, "concrete", False) or field.is_relation or field.column is None:
        raise ToolError(
            f"{label}.{field_name} is not a column of {meta.db_table}: "
            f"only a token field can be rotated{others}",
            EXIT_BAD_INPUT,
        )
    key = None
    if field.primary_key:
        unique = [
            f.column
            for f in meta.concrete_fields
            if f is not field and f.unique and not f.null and getattr(f, "column", None)
        ]
        if not unique:
            raise ToolError(
                f"{label}.{field_name} is the primary key, and {label} has no other unique NOT NULL field to "
                f"walk the rows by while their keys change: rotate a token field{others}",
                EXIT_BAD_INPUT,
            )
        key = unique[:1]
    kind = field.get_internal_type()
    if kind in TEXT_FIELDS + BYTES_FIELDS and not token_format:
        example = "bytes:32" if kind in BYTES_FIELDS else "hex:32 (or base64url:24, with --prefix ak_)"
        raise ToolError(
            f"{label}.{field_name} is a {kind}: pass the token's format, e.g. --format {example}",
            EXIT_BAD_INPUT,
        )
    if kind != "UUIDField" and kind not in TEXT_FIELDS + BYTES_FIELDS:
        raise ToolError(
            f"{label}.{field_name} is a {kind}, not a token: only a UUIDField, or a text or binary field "
            "with "
            f"--format, can be rotated{others}",
            EXIT_BAD_INPUT,
        )
    pk = meta.pk
    if pk is None or getattr(pk, "column", None) is None:
        raise ToolError(
            f"{label} has no single-column primary key: the rotation walks the table by its key",
            EXIT_BAD_INPUT,
        )
    return TokenField(
        label=label,
        table=sql.Identifier(meta.db_table).as_string(),
        column=field.column,
        key=key,
    )
