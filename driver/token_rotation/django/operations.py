"""RotateTokens: a migration operation that rotates a model's token field during `manage.py migrate`.

    from token_rotation.django.operations import RotateTokens

    class Migration(migrations.Migration):
        atomic = False  # every batch commits: no transaction around the rotation
        dependencies = [("myapp", "0001_initial"), ("token_rotation", "0001_install")]
        operations = [RotateTokens("Ticket", "token")]  # batches of about 10 ms and reclaim, as the CLI
        # or a subset: RotateTokens("Ticket", where="tenant_id = 42", older_than=90 * 86400,
        #                           rotated_at_field="rotated_at")

It runs the CLI's runner (token_rotation.runner: the same workers, progress and exit codes) on the migration's
database. When the rotation does not finish (the deploy is killed, Ctrl-C, a lost connection), the migration
fails and is not recorded: the next `migrate` runs it again, and the runner resumes the run left open (every
committed batch kept, each row rotated once). Backwards it does nothing: old tokens are not kept anywhere.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from token_rotation import connection, render, runner
from token_rotation.django import options as model_options
from token_rotation.errors import EXIT_OK, ToolError


class RotationNotFinished(RuntimeError):
    """The rotation stopped before every row was rotated: the migration is not recorded, migrate resumes."""


class RotateTokens(migrations.operations.base.Operation):
    """Rotate `model_name.field_name` (a UUIDField) of the migration's app, or of `app_label.Model`."""

    reversible = True
    reduces_to_sql = False
    atomic = False

    def __init__(
        self,
        model_name: str,
        field_name: str = "token",
        rotated_at_field: str | None = None,
        **options: Any,
    ) -> None:
        """`options`: those of `token-rotation rotate` by their Python names (batch_size, workers, sleep,
        target_batch_time, where, older_than, fill_null, reclaim, token_format, ...: the names of
        model_options.operation_names()), durations in seconds, sizes in bytes; not given: the CLI's."""
        unknown = set(options) - model_options.operation_names()
        if unknown:
            raise TypeError(
                f"RotateTokens() got unknown options: {', '.join(sorted(unknown))}; it takes "
                f"{', '.join(sorted(model_options.operation_names()))}"
            )
        self.model_name = model_name
        self.field_name = field_name
        self.rotated_at_field = rotated_at_field
        self.options = options

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"field_name": self.field_name, **self.options}
        if self.rotated_at_field is not None:
            kwargs["rotated_at_field"] = self.rotated_at_field
        return (self.__class__.__qualname__, [self.model_name], kwargs)

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # no change to the models

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        from token_rotation.django import database

        db = schema_editor.connection
        if db.in_atomic_block:
            raise ToolError(
                f"{self.describe()}: the migration must not be atomic (set atomic = False on the Migration): "
                "the rotation commits every batch in sessions of its own, which cannot roll back with the "
                "migration and would wait for the locks its transaction holds"
            )
        label = self.model_name if "." in self.model_name else f"{app_label}.{self.model_name}"
        try:
            model = to_state.apps.get_model(label)
        except LookupError:
            raise ToolError(f"{self.describe()}: no model {label} in the migration's state") from None
        field = database.token_field(model, self.field_name, self.options.get("token_format"))
        request = runner.Request.from_options(
            {
                **self.options,
                "table": field.table,
                "column": field.column,
                "key": field.key,
                "rotated_at_column": self.rotated_at_field
                and database.field_column(model, self.rotated_at_field),
            }
        )
        code = runner.rotate(
            database.target(db.alias),
            f"{connection.APPLICATION_NAME}/migrate",
            request,
            render.renderer_for(False, None),
            resume="manage.py migrate (the migration resumes the open run)",
        )
        if code != EXIT_OK:
            raise RotationNotFinished(
                f"{self.describe()} stopped before the end (exit code {code}); every committed batch is "
                "kept: run manage.py migrate again to resume"
            )

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        pass  # the old tokens are not kept anywhere: nothing to restore

    def describe(self) -> str:
        return f"RotateTokens({self.model_name!r}, {self.field_name!r})"

    @property
    def migration_name_fragment(self) -> str:
        return f"rotate_{self.model_name.lower().replace('.', '_')}_{self.field_name.lower()}"
