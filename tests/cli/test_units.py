"""Reading sizes and durations the way the command line takes them, and redacting server text."""

from __future__ import annotations

import psycopg
import pytest

from token_rotation.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_INTERRUPTED,
    EXIT_OTHER,
    cli_flags,
    connection_lost,
    exit_code_for,
    lost_message,
    redact,
)
from token_rotation.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("100MB", 100 * 1024**2), ("100 mb", 100 * 1024**2), ("1.5GB", int(1.5 * 1024**3)),
     ("512kB", 512 * 1024), ("2MiB", 2 * 1024**2), ("1TB", 1024**4), ("10B", 10)],
)  # fmt: skip
def test_sizes_are_read_in_powers_of_1024(text: str, expected: int) -> None:
    """Sizes such as 100MB read as PostgreSQL reads its own settings (1 MB = 1024 kB)."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "12XB", "1.2.3"])
def test_a_malformed_size_is_refused(text: str) -> None:
    """Anything that is not a number with an optional unit is refused, never guessed."""
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2", 2.0), ("1.5s", 1.5), ("200ms", 0.2), ("5min", 300.0), ("1h", 3600.0), ("90d", 7776000.0)],
)
def test_durations_take_an_optional_unit(text: str, expected: float) -> None:
    """Durations are seconds unless a unit says otherwise."""
    assert parse_duration(text) == pytest.approx(expected)


def test_durations_and_sizes_print_for_people() -> None:
    """Short durations keep a decimal, long ones read as minutes and hours; sizes as pg_size_pretty does."""
    assert [format_duration(s) for s in (0.042, 0.42, 42, 185, 7620, None)] == [
        "42ms",
        "0.4s",
        "42s",
        "3m05s",
        "2h07m",
        "-",
    ]
    assert [format_size(b) for b in (512, 90 * 1024**2, 1.5 * 1024**3)] == ["512 bytes", "90 MB", "1.5 GB"]


def test_exit_codes_follow_the_sqlstate() -> None:
    """Cancel is 130, a busy table 3, bad input 2 (classes 22 and 42 but permission), anything else 1."""
    assert exit_code_for("57014") == EXIT_INTERRUPTED
    assert exit_code_for("55006") == EXIT_BUSY
    assert [exit_code_for(s) for s in ("22023", "42P01", "42703", "42804", "0A000", "23502")] == [2] * 6
    assert exit_code_for("42501") == EXIT_OTHER
    assert exit_code_for("55P03") == EXIT_OTHER
    assert exit_code_for(None) == EXIT_OTHER
    assert exit_code_for("TROPT") == EXIT_OTHER  # a code of the tool's own, which psycopg does not know
    assert [exit_code_for(s) for s in ("42883", "3F000", "2BP01", "P0002", "42P16")] == [2] * 5
    assert EXIT_BAD_INPUT == 2


def test_redact_hides_uuids_and_passwords() -> None:
    """Server text that quotes a token or a connection string loses the secret parts."""
    text = (
        "Key (token)=(3f1e2d4c-5b6a-4789-8abc-def012345678) already exists; "
        "postgresql://app:hunter2@db/x password=hunter2 password='hunter 2'"
    )
    out = redact(text)
    assert "3f1e2d4c" not in out and "hunter" not in out
    assert "<uuid>" in out and "postgresql://app:***@db/x" in out


@pytest.mark.parametrize(
    ("server", "cli"),
    [
        ("pass the token column with p_column", "pass the token column with --column"),
        ("p_batch_size must be between 1 and 1000000", "--batch-size must be between 1 and 1000000"),
        ("raise p_lock_timeout or p_lock_retries", "raise --lock-timeout or --lock-retries"),
        ("p_max_replication_lag, p_synchronous_commit", "--max-replication-lag, --synchronous-commit"),
        ("p_target_batch_time2 is p_x_1", "--target-batch-time2 is --x-1"),
    ],
)
def test_parameter_names_in_server_text_become_cli_flags(server: str, cli: str) -> None:
    """Any p_foo_bar the server names becomes the flag --foo-bar: the CLI's user reads what to type."""
    assert cli_flags(server) == cli


@pytest.mark.parametrize(
    "text",
    [
        "p_column.x",
        "table public.p_tickets",
        'column "p_token"',
        "ap_x",
        "p_",
        "P_COLUMN",
    ],
)
def test_names_that_only_look_like_parameters_are_left_alone(text: str) -> None:
    """A qualified or quoted name (public.p_tickets, "p_token"), a word that only contains p_, or upper
    case are not parameters: unchanged."""
    assert cli_flags(text) == text


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly\n\tThis probably ..."), True),
        (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True),
        (psycopg.OperationalError("the connection is lost"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CrashShutdown("terminating connection because of crash of another process"), True),
        (psycopg.OperationalError('connection to server at "127.0.0.1", port 1 failed: refused'), False),
        (psycopg.errors.QueryCanceled("canceling statement due to user request"), False),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), False),
    ],
)  # fmt: skip
def test_a_lost_connection_is_told_apart_from_a_failed_connection_attempt(
    error: psycopg.Error, lost: bool
) -> None:
    """A session the server (or the network) ended is a lost connection; a server that cannot be reached at
    all, a cancel or a lock timeout are not."""
    assert connection_lost(error) is lost


def test_the_lost_connection_message_says_batches_are_kept_and_how_to_resume() -> None:
    """The message names the cause, that committed batches are kept, and the exact resume command."""
    error = psycopg.OperationalError("server closed the connection unexpectedly\n\tbefore or while ...")
    assert lost_message(error, "token-rotation rotate --table tickets") == (
        "the connection to the server was lost (server closed the connection unexpectedly); every committed "
        "batch is kept; resume with: token-rotation rotate --table tickets"
    )
