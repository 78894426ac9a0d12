"""The options of `rotate_tokens` and `RotateTokens`, derived from the CLI's (token_rotation.options, where
each option of `rotate` is declared once): the same names, types, defaults and help. A model gives what
the CLI asks for by name (the table, its token and timestamp columns, its key), so those are left out and
the command takes fields instead (--field, --rotated-at-field).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import click

from token_rotation.options import rotate_params

# what the model gives: --table (the model), --column (--field), --rotated-at-column (--rotated-at-field);
# --key and --previous-column have no field-level counterpart yet
FROM_THE_MODEL = frozenset({"table", "column", "rotated_at_column", "previous_column", "key"})
# per command run, not for a migration operation: how the run is shown, or no run at all
COMMAND_ONLY = frozenset({"as_json", "progress_interval", "dry_run", "sample", "until", "window"})


def model_params() -> list[click.Option]:
    """The CLI's options of `rotate` that a model's rotation takes."""
    return [p for p in rotate_params() if p.name not in FROM_THE_MODEL]


def operation_names() -> frozenset[str]:
    """The keyword arguments RotateTokens takes besides the model and its fields (typed values: seconds for
    durations, bytes for sizes)."""
    return frozenset(str(p.name) for p in model_params() if p.name not in COMMAND_ONLY)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds every option of model_params() to an argparse parser (Django's), as click declares it."""
    for param in model_params():
        kwargs: dict[str, Any] = {"dest": param.name, "help": param.help}
        if param.is_flag and param.secondary_opts:
            kwargs.update(action=argparse.BooleanOptionalAction, default=param.default)
        elif param.is_flag:
            kwargs.update(action="store_true")
        else:
            kwargs.update(type=_converter(param), default=param.default, metavar=param.make_metavar(_CONTEXT))
        parser.add_argument(*param.opts, **kwargs)


_CONTEXT = click.Context(click.Command("rotate_tokens"))


def _converter(param: click.Option) -> Callable[[str], Any]:
    """argparse's type= for a click option: click's own conversion and checks, its message on a bad value."""

    def convert(text: str) -> Any:
        try:
            return param.type.convert(text, param, None)
        except click.BadParameter as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    convert.__name__ = param.type.name  # argparse names the type in its message
    return convert
