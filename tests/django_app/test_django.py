"""The Django app (token_rotation.django) in a real Django project (tests/django_project: the original's
Ticket model, token = UUIDField(unique=True)), run as its users run it: `python manage.py ...` in a
subprocess against a real PostgreSQL database."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pytest_postgresql.executors import NoopExecutor

from token_rotation import migrate

from background import backends, batches_done, wait_until
from catalog import install_shipped
from django_app.project import PROJECT, env, manage
from helpers import assert_rotated_exactly_once, snapshot, table_checksum
from plugins.database import new_database

HEAD = migrate.head_revision()


@pytest.fixture
def empty_dsn(postgresql_proc: NoopExecutor) -> Iterator[str]:
    """DSN of a new, empty database: nothing of the tool installed, as a Django project's database is."""
    yield from new_database(postgresql_proc, "tr_django")


@pytest.fixture
def db(empty_dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the empty database."""
    with psycopg.connect(empty_dsn, autocommit=True) as connection:
        yield connection


def applied(conn: psycopg.Connection, app: str) -> list[str]:
    """The migrations of `app` Django has recorded as applied."""
    rows = conn.execute("SELECT name FROM django_migrations WHERE app = %s ORDER BY name", (app,)).fetchall()
    return [r[0] for r in rows]


def fill(conn: psycopg.Connection, table: str, rows: int) -> None:
    conn.execute(
        f"INSERT INTO {table} (token, title{', created_at' if table == 'myapp_ticket' else ''})"
        f" SELECT gen_random_uuid(), 'ticket ' || g{', now()' if table == 'myapp_ticket' else ''}"
        " FROM generate_series(1, %s) g",
        (rows,),
    )


def runs(conn: psycopg.Connection) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in conn.execute("SELECT run_id, state FROM token_rotation.runs ORDER BY 1")]


def test_django_is_an_optional_dependency_stated_as_a_range() -> None:
    """`pip install token-rotation` does not pull Django; the `django` extra requires it as a range."""
    requires = importlib.metadata.requires("token-rotation") or []
    django = [r for r in requires if re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower() == "django"]
    assert django and all('extra == "django"' in r for r in django)
    versions = [r.split(";")[0] for r in django]
    assert all(">=" in v and "<" in v and "==" not in v for v in versions), versions


def routines(conn: psycopg.Connection) -> list[str]:
    """The definition of every function and procedure of the tool, and of its progress view."""
    rows = conn.execute(
        "SELECT pg_get_functiondef(oid) FROM pg_proc"
        f" WHERE pronamespace::regnamespace::text IN {migrate.SCHEMA_LIST}"
        " UNION ALL SELECT pg_get_viewdef('token_rotation.progress') ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_migrate_installs_the_schema_at_alembics_head_and_migrate_zero_uninstalls_it(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """`migrate` installs through the tool's own Alembic machinery (its version row at head, which
    `token-rotation install` then finds), and `migrate token_rotation zero` removes the schema."""
    done = manage(empty_dsn, "migrate")
    assert done.returncode == 0, done.stderr
    assert "Applying token_rotation.0001_install... OK" in done.stdout
    assert migrate.installed_revision(empty_dsn) == HEAD
    assert applied(db, "token_rotation") == ["0001_install"]
    assert db.execute("SELECT count(*) FROM pg_proc WHERE proname = 'rotate'").fetchone() == (1,)
    migrate.upgrade(empty_dsn)  # token-rotation install: at head already
    assert migrate.installed_revision(empty_dsn) == HEAD

    gone = manage(empty_dsn, "migrate", "token_rotation", "zero")
    assert gone.returncode == 0, gone.stderr
    assert "Unapplying token_rotation.0001_install... OK" in gone.stdout
    assert migrate.installed_revision(empty_dsn) is None
    assert db.execute("SELECT to_regnamespace('token_rotation')").fetchone() == (None,)
    assert applied(db, "token_rotation") == []


def test_a_database_installed_by_alembic_is_seen_as_installed_by_django_migrate(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """After `token-rotation install`, `migrate` records the app's migration without reinstalling: the
    version row stays at head and a run already in the database is kept."""
    migrate.upgrade(empty_dsn)
    assert manage(empty_dsn, "migrate", "myapp").returncode == 0
    fill(db, "myapp_ticket", 1000)
    db.execute("CALL token_rotation.rotate('myapp_ticket', p_max_batches => 1, p_batch_size => 100)")
    before = runs(db)
    assert before == [(1, "active")]

    done = manage(empty_dsn, "migrate")
    assert done.returncode == 0, done.stderr
    assert "Applying token_rotation.0001_install... OK" in done.stdout
    assert applied(db, "token_rotation") == ["0001_install"]
    assert migrate.installed_revision(empty_dsn) == HEAD
    assert runs(db) == before


def test_migrate_upgrades_a_schema_installed_by_an_older_package_in_place(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """A project whose database got the tool from an older package (shipped revision 0002, its migration
    recorded): after the package upgrade, a plain `migrate` brings the schema to head, as
    `token-rotation install` would, keeping the runs."""
    install_shipped(empty_dsn, "0002")
    db.execute(
        "INSERT INTO token_rotation.runs (target, token_column, key_column, key_type, batch_size)"
        " VALUES ('token_rotation.runs', 'token', 'run_id', 'bigint', 100)"
    )
    assert manage(empty_dsn, "migrate", "token_rotation", "--fake").returncode == 0
    assert migrate.installed_revision(empty_dsn) == "0002"

    done = manage(empty_dsn, "migrate")
    assert done.returncode == 0, done.stderr
    assert migrate.installed_revision(empty_dsn) == HEAD
    assert db.execute("SELECT to_regprocedure('token_rotation.resume(regclass)')").fetchone() == (None,)
    assert len(runs(db)) == 1


def test_rotate_tokens_rotates_every_ticket_once_with_two_workers_and_migrate_again_changes_nothing(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """`migrate` then `rotate_tokens myapp.Ticket --batch-size 3000 --workers 2`: every row gets a new
    token exactly once (the CLI's checks); `rotation_status` shows the run; a second `migrate` changes
    neither the tokens nor the tool's schema version nor the runs."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 30_000)
    before = snapshot(db, "myapp_ticket")

    done = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--batch-size", "3000", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "rotating run 1: 30,000 rows of public.myapp_ticket.token, 2 slice(s), 2 worker(s)" in done.stdout
    assert "rotated 30,000 rows of public.myapp_ticket" in done.stdout
    assert_rotated_exactly_once(db, before, 1, "myapp_ticket")

    status = manage(empty_dsn, "rotation_status", "myapp.Ticket", "--json")
    assert status.returncode == 0, status.stderr
    [run] = [json.loads(line) for line in status.stdout.splitlines()]
    assert (run["run_id"], run["state"], run["rows_done"]) == (1, "finished", 30_000)

    checksum, versions, defined = (
        table_checksum(db, "myapp_ticket"),
        applied(db, "token_rotation"),
        routines(db),
    )
    again = manage(empty_dsn, "migrate")
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply." in again.stdout
    assert table_checksum(db, "myapp_ticket") == checksum
    assert routines(db) == defined
    assert applied(db, "token_rotation") == versions
    assert migrate.installed_revision(empty_dsn) == HEAD
    assert runs(db) == [(1, "finished")]


def test_rotate_tokens_json_and_dry_run_speak_as_the_cli_does(empty_dsn: str, db: psycopg.Connection) -> None:
    """--dry-run prints the plan and changes nothing; --json prints the CLI's JSON lines, ending with a
    summary whose exit code is the command's."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 5000)
    checksum = table_checksum(db, "myapp_ticket")

    plan = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--dry-run", "--workers", "2")
    assert plan.returncode == 0, plan.stderr
    assert "dry run" in plan.stdout and "2 slice(s)" in plan.stdout
    assert table_checksum(db, "myapp_ticket") == checksum
    assert runs(db) == []

    done = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--json", "--batch-size", "1000")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events][0] == "started"
    assert events[-1]["event"] == "summary"
    assert (events[-1]["outcome"], events[-1]["exit_code"], events[-1]["rows_done"]) == ("finished", 0, 5000)


def test_rotate_tokens_stopped_by_max_batches_names_the_manage_py_command_that_resumes_it(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """--max-batches stops early and says how to resume in Django's words; that command finishes the run,
    each row rotated once."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 10_000)
    before = snapshot(db, "myapp_ticket")
    stopped = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--batch-size", "1000", "--max-batches", "2")
    assert stopped.returncode == 0, stopped.stderr
    assert "resume with: python manage.py rotate_tokens myapp.Ticket --batch-size 1000" in stopped.stdout
    assert runs(db) == [(1, "active")]
    resumed = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--batch-size", "1000")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming run 1" in resumed.stdout
    assert_rotated_exactly_once(db, before, 1, "myapp_ticket")


@pytest.mark.slow
def test_ctrl_c_stops_rotate_tokens_with_exit_130_and_the_command_that_resumes_it(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """Ctrl-C (SIGINT) as in the CLI: the workers' CALLs are cancelled, exit 130, committed batches kept,
    and the message names the manage.py command that resumes."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 60_000)
    before = snapshot(db, "myapp_ticket")
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rotate_tokens",
            "myapp.Ticket",
            "--batch-size",
            "1000",
            "--sleep",
            "50ms",
        ],
        cwd=PROJECT,
        env=env(empty_dsn),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: batches_done(db, "myapp_ticket") >= 3, timeout=60, what="three batches")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Resume with: python manage.py rotate_tokens myapp.Ticket --batch-size 1000" in out
    assert runs(db) == [(1, "active")]
    wait_until(lambda: not backends(db, "token-rotation"), timeout=15, what="the workers gone")
    assert manage(empty_dsn, "rotate_tokens", "myapp.Ticket").returncode == 0
    assert_rotated_exactly_once(db, before, 1, "myapp_ticket")


def test_rotate_tokens_in_an_atomic_migration_is_refused_before_anything_changes(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """RotateTokens inside a transaction (a Migration left atomic) says to set atomic = False, before it
    starts a run: its committed batches cannot roll back with the migration, and its sessions would wait
    for the locks that transaction holds."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 100)
    code = (
        "from django.db import connection, transaction\n"
        "from django.db.migrations.loader import MigrationLoader\n"
        "from token_rotation.django.operations import RotateTokens\n"
        "state = MigrationLoader(connection).project_state()\n"
        "with transaction.atomic(), connection.schema_editor(atomic=False) as editor:\n"
        "    RotateTokens('Ticket').database_forwards('myapp', editor, state, state)\n"
    )
    refused = manage(empty_dsn, "shell", "-c", code)
    assert refused.returncode == 1  # the shell's uncaught ToolError
    assert "the migration must not be atomic (set atomic = False on the Migration)" in refused.stderr
    assert runs(db) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["myapp.Ticket", "--field", "created_at"],
            "myapp.Ticket.created_at is a DateTimeField, not a token",
        ),
        (["myapp.Ticket", "--field", "id"], "myapp.Ticket.id is a BigAutoField, not a token"),
        (["myapp.Ticket", "--field", "nope"], "myapp.Ticket has no field 'nope'"),
        (["myapp.Nope"], "no model 'myapp.Nope'"),
        (["myapp.Ticket", "--database", "other"], "no database 'other' in the Django settings"),
    ],
)
def test_rotate_tokens_refuses_what_is_not_a_token_field_with_exit_code_2(
    empty_dsn: str, db: psycopg.Connection, args: list[str], message: str
) -> None:
    """A field that cannot hold a token, the key, a missing field or model, an unknown database:
    one line saying so (and which UUIDFields there are), exit 2, nothing changed."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 100)
    checksum = table_checksum(db, "myapp_ticket")
    refused = manage(empty_dsn, "rotate_tokens", *args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and message in refused.stderr
    assert "Traceback" not in refused.stderr
    if "--field" in args:
        assert "(UUIDFields of myapp.Ticket: token)" in refused.stderr
    assert table_checksum(db, "myapp_ticket") == checksum
    assert runs(db) == []


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_rotate_tokens_in_a_deploy_migration_killed_mid_run_is_resumed_by_the_next_migrate(
    empty_dsn: str, db: psycopg.Connection, how: signal.Signals
) -> None:
    """RotateTokens in a non-atomic migration: the deploy dies mid-run (SIGKILL), or is stopped (SIGTERM:
    the runner stops its workers and the operation fails), so the migration is not recorded; the next
    `migrate` resumes the open run and every row is rotated exactly once; migrating back past it changes
    nothing."""
    deploy = "project.settings_deploy"
    assert manage(empty_dsn, "migrate", "deploy", "0001", settings=deploy).returncode == 0
    assert manage(empty_dsn, "migrate", "token_rotation", settings=deploy).returncode == 0
    fill(db, "deploy_ticket", 120_000)
    before = snapshot(db, "deploy_ticket")

    proc = subprocess.Popen(
        [sys.executable, "manage.py", "migrate"],
        cwd=PROJECT,
        env=env(empty_dsn, deploy, DEPLOY_SLEEP="0.05"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: batches_done(db, "deploy_ticket") >= 3, timeout=60, what="three batches")
    finally:
        os.kill(proc.pid, how)
        proc.wait(timeout=10)
    wait_until(lambda: not backends(db, "token-rotation/migrate"), timeout=15, what="the worker gone")
    assert runs(db) == [(1, "active")]
    assert 3 <= batches_done(db, "deploy_ticket") < 40
    assert "0002_rotate_tokens" not in applied(db, "deploy")

    again = manage(empty_dsn, "migrate", settings=deploy)
    assert again.returncode == 0, again.stderr
    assert "Applying deploy.0002_rotate_tokens" in again.stdout
    assert "resuming run 1" in again.stdout
    assert applied(db, "deploy") == ["0001_initial", "0002_rotate_tokens"]
    assert_rotated_exactly_once(db, before, 1, "deploy_ticket")

    checksum = table_checksum(db, "deploy_ticket")
    back = manage(empty_dsn, "migrate", "deploy", "0001", settings=deploy)
    assert back.returncode == 0, back.stderr
    assert "Unapplying deploy.0002_rotate_tokens... OK" in back.stdout
    assert table_checksum(db, "deploy_ticket") == checksum
    assert runs(db) == [(1, "finished")]


def test_rotate_tokens_rotates_a_subset_of_old_tokens_by_field_names(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """--where "id <= 3000" --older-than 90d --rotated-at-field created_at: only the rows of the subset whose
    created_at is 100 days old get a new token (and created_at the batch's time); a field the model does not
    have is refused with exit 2."""
    assert manage(empty_dsn, "migrate").returncode == 0
    fill(db, "myapp_ticket", 5000)
    db.execute("UPDATE myapp_ticket SET created_at = now() - interval '100 days' WHERE id % 2 = 0")
    before: dict[int, str] = dict(db.execute("SELECT id, token::text FROM myapp_ticket").fetchall())
    args = ["rotate_tokens", "myapp.Ticket", "--where", "id <= 3000", "--older-than", "90d"]
    wrong = manage(empty_dsn, *args, "--rotated-at-field", "rotated")
    assert wrong.returncode == 2, wrong.stderr
    assert "no field 'rotated'" in wrong.stderr + wrong.stdout
    done = manage(empty_dsn, *args, "--rotated-at-field", "created_at")
    assert done.returncode == 0, done.stderr
    after: dict[int, str] = dict(db.execute("SELECT id, token::text FROM myapp_ticket").fetchall())
    rotated = {k for k in before if after[k] != before[k]}
    assert rotated == {k for k in before if k % 2 == 0 and k <= 3000}
    assert db.execute("SELECT rows_expected, rows_done FROM token_rotation.runs").fetchall() == [(1500, 1500)]


def test_rotate_tokens_operation_keeps_its_options_through_deconstruct_and_refuses_unknown_ones() -> None:
    """A migration file written by makemigrations keeps the subset and every option: deconstruct() gives
    them back. An option the CLI does not have (or a per-run one, as json) is refused, naming the known."""
    from token_rotation.django.operations import RotateTokens

    operation = RotateTokens(
        "Ticket",
        where="tenant_id = 42",
        older_than=7_776_000.0,
        rotated_at_field="rotated_at",
        token_format="hex:16",
        max_replay_lag=5.0,
    )
    name, args, kwargs = operation.deconstruct()
    again = RotateTokens(*args, **kwargs)
    assert again.rotated_at_field == "rotated_at"
    assert again.options == {
        "where": "tenant_id = 42",
        "older_than": 7_776_000.0,
        "token_format": "hex:16",
        "max_replay_lag": 5.0,
    }
    assert RotateTokens("Ticket", fill_null=True).deconstruct()[2]["fill_null"] is True
    for wrong in ("batch", "as_json", "table"):
        unknown: dict[str, Any] = {wrong: 1}
        with pytest.raises(TypeError, match=f"unknown options: {wrong}; it takes .*batch_size"):
            RotateTokens("Ticket", **unknown)


def test_rotate_tokens_takes_every_option_of_the_cli_that_a_model_takes_with_its_checks(
    empty_dsn: str,
) -> None:
    """The command's options are derived from the CLI's declaration: --help lists each of `rotate`'s but
    those the model gives (--table, --column, --key, ...), and a bad value is refused with click's check
    (exit 2, before any database work)."""
    from token_rotation.django.options import FROM_THE_MODEL
    from token_rotation.options import rotate_params

    done = manage(empty_dsn, "rotate_tokens", "--help")
    assert done.returncode == 0 and "--batch-size" in done.stdout, done.stderr
    listed = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "import json\n"
         "from django.core.management import load_command_class\n"
         "parser = load_command_class('token_rotation.django', 'rotate_tokens').create_parser('m', 'r')\n"
         "print(json.dumps([s for action in parser._actions for s in action.option_strings]))\n"],
        cwd=PROJECT, env=env(empty_dsn), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    options = set(json.loads(listed.stdout.splitlines()[-1]))
    for param in rotate_params():
        for opt in [*param.opts, *param.secondary_opts]:
            assert (opt in options) == (param.name not in FROM_THE_MODEL), opt
    bad = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--batch-size", "0")
    assert bad.returncode == 2 and "0 is not in the range x>=1" in bad.stderr, bad.stderr
    bad = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--until", "25:00")
    assert bad.returncode == 2 and "--until" in bad.stderr, bad.stderr


def test_rotate_tokens_with_its_defaults_batches_and_reclaims_as_the_cli_does(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """The same 100,000-row table rotated by `rotate_tokens` and by `token-rotation rotate`, each with its
    defaults (and the same 50 ms sleep, so that the run lasts long enough for several VACUUMs): both adapt
    their batches to about 10 ms, reclaim every 5% of the table with VACUUMs, and grow the heap alike
    (autovacuum off: only the runs' own VACUUMs count)."""
    assert manage(empty_dsn, "migrate").returncode == 0
    db.execute("ALTER TABLE myapp_ticket SET (autovacuum_enabled = off)")
    outcome: dict[str, tuple[float, float, bool]] = {}
    growth: dict[str, float] = {}
    for way in ("django", "cli"):
        db.execute("TRUNCATE myapp_ticket")
        fill(db, "myapp_ticket", 100_000)
        db.execute("VACUUM myapp_ticket")
        before = db.execute("SELECT pg_relation_size('myapp_ticket')").fetchone()
        assert before is not None
        if way == "django":
            done = manage(empty_dsn, "rotate_tokens", "myapp.Ticket", "--sleep", "50ms", "--json")
        else:
            done = subprocess.run(
                [sys.executable, "-m", "token_rotation", "--dsn", empty_dsn, "rotate",
                 "--table", "myapp_ticket", "--sleep", "50ms", "--json"],
                env=env(empty_dsn), capture_output=True, text=True, timeout=300,
            )  # fmt: skip
        assert done.returncode == 0, done.stderr
        events = [json.loads(line) for line in done.stdout.splitlines()]
        started = next(e for e in events if e["event"] == "started")
        finished = next(e for e in events if e["event"] == "finished")
        after = db.execute("SELECT pg_relation_size('myapp_ticket')").fetchone()
        assert after is not None
        reclaim = finished["reclaim"]
        outcome[way] = (started["target_batch_time"], reclaim["every_percent"], reclaim["vacuums"] >= 2)
        growth[way] = after[0] / before[0]
    assert outcome["django"] == outcome["cli"] == (0.01, 5.0, True), outcome
    assert max(growth.values()) <= 1.5, growth  # without reclaim the heap doubles (test_reclaim.py)
    assert abs(growth["django"] - growth["cli"]) <= 0.25, growth


def test_rotate_tokens_rotates_a_text_key_with_a_format_and_asks_for_one_without(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """myapp.ApiKey.key is a CharField: without --format, exit 2 naming an example; with --format hex:32
    --prefix ak_ every key is new, prefixed, 64 hex digits and unique; stopped early, the resume command
    names the format."""
    assert manage(empty_dsn, "migrate").returncode == 0
    db.execute(
        "INSERT INTO myapp_apikey (key, user_id) SELECT 'old-' || g, g FROM generate_series(1, 2000) g"
    )
    refused = manage(empty_dsn, "rotate_tokens", "myapp.ApiKey", "--field", "key")
    assert refused.returncode == 2, refused.stderr
    assert "--format hex:32" in refused.stderr + refused.stdout
    args = ["rotate_tokens", "myapp.ApiKey", "--field", "key", "--format", "hex:32", "--prefix", "ak_"]
    stopped = manage(empty_dsn, *args, "--batch-size", "500", "--max-batches", "1")
    assert stopped.returncode == 0, stopped.stderr
    assert "--field key --format hex:32 --batch-size 500" in stopped.stdout
    done = manage(empty_dsn, *args)
    assert done.returncode == 0, done.stderr
    row = db.execute(
        "SELECT count(*), count(DISTINCT key), count(*) FILTER (WHERE key ~ '^ak_[0-9a-f]{64}$')"
        " FROM myapp_apikey"
    ).fetchone()
    assert row == (2000, 2000, 2000)


DRF_CHECK = """
import sys
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

auth = TokenAuthentication()
accepted = refused = 0
for line in sys.stdin.read().splitlines()[1:]:
    user_id, old, new = line.split()
    user, token = auth.authenticate_credentials(new)
    accepted += user.pk == int(user_id) and token.key == new
    try:
        auth.authenticate_credentials(old)
    except AuthenticationFailed:
        refused += 1
print(accepted, refused)
"""


def test_drf_authtoken_rotated_by_rotate_tokens_is_accepted_by_drf_and_the_old_keys_are_refused(
    empty_dsn: str, db: psycopg.Connection
) -> None:
    """The real Django REST framework: `migrate` creates its authtoken_token (key varchar(40), the primary
    key; user_id one-to-one), DRF makes 1,000 users' keys; `rotate_tokens authtoken.Token --field key
    --format hex:20` (stopped after one batch, then resumed) walks the rows by user_id and gives every
    user a new 40-hex-digit key; DRF's own TokenAuthentication then accepts each new key for its user and
    refuses each old one. No key is printed: they go to DRF's check on stdin."""
    settings = "project.settings_drf"
    assert manage(empty_dsn, "migrate", settings=settings).returncode == 0
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.contrib.auth.models import User\n"
         "from rest_framework.authtoken.models import Token\n"
         "User.objects.bulk_create([User(username=f'user{i}') for i in range(1000)])\n"
         "Token.objects.bulk_create(\n"
         "    [Token(user=u, key=Token.generate_key()) for u in User.objects.all()])\n"],
        cwd=PROJECT, env=env(empty_dsn, settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    old: dict[int, str] = dict(db.execute("SELECT user_id, key FROM authtoken_token").fetchall())
    assert len(old) == 1000

    args = ["rotate_tokens", "authtoken.Token", "--field", "key", "--format", "hex:20"]
    stopped = manage(empty_dsn, *args, "--batch-size", "300", "--max-batches", "1", settings=settings)
    assert stopped.returncode == 0, stopped.stderr
    done = manage(empty_dsn, *args, settings=settings)
    assert done.returncode == 0, done.stderr
    assert db.execute("SELECT key_columns FROM token_rotation.runs").fetchall() == [(["user_id"],)]
    new: dict[int, str] = dict(db.execute("SELECT user_id, key FROM authtoken_token").fetchall())
    assert new.keys() == old.keys()
    assert all(len(k) == 40 and int(k, 16) >= 0 and k != old[u] for u, k in new.items())
    assert len(set(new.values())) == 1000

    pairs = "user old new\n" + "".join(f"{u} {old[u]} {new[u]}\n" for u in new)
    checked = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", DRF_CHECK],
        cwd=PROJECT, env=env(empty_dsn, settings), input=pairs, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1].split() == ["1000", "1000"]  # after the shell's own lines
