"""Rotation on a schedule (issue 19): a real pg_cron job on a PostgreSQL 15 server of its own with pg_cron
preloaded (the Debian package postgresql-15-cron, which .ci/run installs), that fires within a minute,
rotates what is due and shows in `schedule --list`, `status --json` and the Prometheus metrics, then is
removed by `unschedule`; and the clear error where the server has no pg_cron."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from background import run_cli, wait_until
from helpers import make_table, table_checksum
from plugins.cron import needs_cron
from roles import dsn_as, temporary_role
from servers import Server

API_KEYS = """
CREATE TABLE api_keys (id integer PRIMARY KEY, token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
                       rotated_at timestamptz);
INSERT INTO api_keys (id, rotated_at)
SELECT g, CASE WHEN g % 3 = 0 THEN now() - interval '5 days' ELSE now() - interval '100 days' END
  FROM generate_series(1, 3000) g;
"""


def tokens(conn: psycopg.Connection) -> dict[int, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT id, token::text FROM api_keys").fetchall()}


@needs_cron
@pytest.mark.slow
@pytest.mark.own_server
def test_a_real_pg_cron_job_fires_rotates_what_is_due_shows_in_status_and_is_unscheduled(
    cron_server: Server,
) -> None:
    """`schedule --cron '* * * * *' --older-than 90d --rotated-at-column rotated_at --for 1h`: within about a
    minute pg_cron fires the job, which rotates the 2,000 keys older than 90 days and no other; the run is
    finished and verified; `schedule --list`, `status --json` and the Prometheus metrics show the job, its
    successful firing, the run it made and the oldest token's age; `unschedule` removes the job."""
    dsn = cron_server.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(API_KEYS)
        before = tokens(conn)
        made = run_cli(
            dsn, "schedule", "--table", "api_keys", "--cron", "* * * * *", "--older-than", "90d",
            "--rotated-at-column", "rotated_at", "--for", "1h",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "scheduled job" in made.stdout
        command = conn.execute("SELECT command, username FROM cron.job").fetchone()
        assert command is not None and command[1] == "postgres"
        assert (
            "p_older_than => '7776000.0 seconds'" in command[0]
            and "p_max_duration => '3600.0 seconds'" in command[0]
        )

        def fired() -> bool:
            row = conn.execute(
                "SELECT (SELECT state::text FROM token_rotation.runs ORDER BY run_id DESC LIMIT 1),"
                " (SELECT status FROM cron.job_run_details ORDER BY runid DESC LIMIT 1)"
            ).fetchone()
            return row == ("finished", "succeeded")

        wait_until(fired, timeout=150, what="the job's first firing to finish a run")
        after = tokens(conn)
        rotated = {k for k in before if after[k] != before[k]}
        assert rotated == {k for k in before if k % 3 != 0}
        assert conn.execute("SELECT rows_expected, rows_done FROM token_rotation.runs").fetchall() == [
            (2000, 2000)
        ]
        failed = conn.execute("SELECT check_name FROM token_rotation.verify(1) WHERE NOT ok").fetchall()
        assert failed == []

        listed = run_cli(dsn, "schedule", "--list")
        assert listed.returncode == 0, listed.stderr
        assert (
            "public.api_keys at '* * * * *'" in listed.stdout and "succeeded, run 1 finished" in listed.stdout
        )
        status = run_cli(dsn, "status", "--json")
        jobs = [json.loads(line) for line in status.stdout.splitlines() if '"kind": "schedule"' in line]
        assert len(jobs) == 1 and jobs[0]["run_id"] == 1 and jobs[0]["never_rotated"] is False
        assert 0 <= jobs[0]["oldest_token_seconds"] < 6 * 86400  # the 5-day-old keys are now the oldest
        metrics = run_cli(dsn, "status", "--format", "prometheus").stdout
        assert 'token_rotation_schedule_last_success{jobid="1",table="public.api_keys"} 1' in metrics
        assert 'token_rotation_oldest_token_age_seconds{jobid="1",table="public.api_keys"}' in metrics

        removed = run_cli(dsn, "unschedule", "--table", "api_keys")
        assert removed.returncode == 0, removed.stderr
        assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
        assert "no schedules" in run_cli(dsn, "schedule", "--list").stdout
        again = run_cli(dsn, "unschedule", "--table", "api_keys")
        assert again.returncode == 2 and "has no schedule" in again.stderr


@needs_cron
@pytest.mark.slow
@pytest.mark.own_server
def test_a_schedule_is_made_only_by_a_role_that_may_rotate_the_table_and_runs_as_that_role(
    cron_server: Server,
) -> None:
    """A role without UPDATE on the table cannot schedule it (42501, no job); a role with the recipe's
    UPDATE on it makes a job that pg_cron runs as that role (cron.job.username), never as a superuser."""
    with psycopg.connect(cron_server.dsn, autocommit=True) as conn:
        make_table(conn, "tickets", rows=100)
        with temporary_role(conn, "tr_sched") as outsider, temporary_role(conn, "tr_rotator") as rotator:
            for role in (outsider, rotator):
                conn.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA cron, token_rotation TO {}").format(sql.Identifier(role))
                )
            conn.execute(sql.SQL("GRANT SELECT, UPDATE ON tickets TO {}").format(sql.Identifier(rotator)))
            with (
                psycopg.connect(dsn_as(cron_server.dsn, outsider), autocommit=True) as c,
                pytest.raises(psycopg.Error) as refused,
            ):
                c.execute("SELECT token_rotation.schedule('public.tickets', '0 1 * * *')")
            assert refused.value.sqlstate == "42501"
            assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
            with psycopg.connect(dsn_as(cron_server.dsn, rotator), autocommit=True) as c:
                c.execute(
                    "SELECT token_rotation.schedule('public.tickets', '0 1 * * *', '{\"batch_size\": 50}')"
                )
            assert conn.execute("SELECT username::text, jobname FROM cron.job").fetchall() == [
                (rotator, "token_rotation:public.tickets")
            ]
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")


def test_without_pg_cron_schedule_says_what_to_install_and_changes_nothing(
    dsn: str, conn: psycopg.Connection
) -> None:
    """On a server without pg_cron: `schedule` exits 1 with the package, the setting and the statement to
    run; `schedule --list` and `status` say nothing of schedules, without error."""
    make_table(conn, rows=100)
    before = table_checksum(conn)
    refused = run_cli(dsn, "schedule", "--table", "tickets", "--cron", "0 1 * * *")
    assert refused.returncode == 1, refused.stderr
    assert "cron" in refused.stderr and "shared_preload_libraries" in refused.stderr
    assert "CREATE EXTENSION pg_cron" in refused.stderr
    assert table_checksum(conn) == before
    listed = run_cli(dsn, "schedule", "--list")
    assert listed.returncode == 0 and "no schedules" in listed.stdout


def test_a_schedule_refuses_options_a_job_cannot_pass(conn: psycopg.Connection) -> None:
    """Keys that are not rotate()'s parameters, and the per-CALL ones a job cannot use, are refused (22023)
    before pg_cron is asked; the others become the job's CALL, values as literals."""
    make_table(conn, rows=10)
    for options in ('{"nope": 1}', '{"stop_at": "2030-01-01"}', '{"table": "other"}', '{"quiet": false}'):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT token_rotation_internal.schedule_command('tickets', %s)", (options,))
        assert refused.value.sqlstate == "22023", options
    row = conn.execute(
        "SELECT token_rotation_internal.schedule_command('tickets', %s)",
        ('{"where": "status = 1", "max_duration": "4 hours"}',),
    ).fetchone()
    assert row == (
        "CALL token_rotation.rotate('public.tickets'::regclass, p_quiet => true, p_max_duration => '4 hours',"
        " p_where => 'status = 1')",
    )


@needs_cron
@pytest.mark.slow
@pytest.mark.own_server
def test_rotate_tokens_declares_and_removes_a_models_schedule(cron_server: Server) -> None:
    """`manage.py rotate_tokens myapp.Ticket --schedule '0 3 * * *' --older-than 90d --rotated-at-field
    created_at` makes the job (the column in its CALL, nothing rotated now); --unschedule removes it."""
    from django_app.project import manage

    assert manage(cron_server.dsn, "migrate").returncode == 0
    with psycopg.connect(cron_server.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO myapp_ticket (token, title, created_at) SELECT gen_random_uuid(), 't', now()"
        )
        checksum = table_checksum(conn, "myapp_ticket")
        made = manage(
            cron_server.dsn, "rotate_tokens", "myapp.Ticket", "--schedule", "0 3 * * *",
            "--older-than", "90d",
            "--rotated-at-field", "created_at",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "scheduled job" in made.stdout
        job = conn.execute("SELECT schedule, command FROM cron.job").fetchone()
        assert job is not None and job[0] == "0 3 * * *"
        assert "p_rotated_at_column => 'created_at'" in job[1] and "p_older_than =>" in job[1]
        assert table_checksum(conn, "myapp_ticket") == checksum
        removed = manage(cron_server.dsn, "rotate_tokens", "myapp.Ticket", "--unschedule")
        assert removed.returncode == 0, removed.stderr
        assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
