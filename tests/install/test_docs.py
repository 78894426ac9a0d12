"""The README, docs/, the Makefile and docker-compose.yml agree with the code: the newcomer's two commands
come first in a README short enough to finish, every procedure parameter and exit code is documented, every
relative link leads to a file, and the compose file is valid and consistent (no Docker engine runs here, so
it is checked, not started)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from token_rotation.cli import cli
from token_rotation.errors import EXIT_CODES
from token_rotation.render import ProgressFields, StartedEvent

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS_DIR = ROOT / "docs"
SQL_DOC = (DOCS_DIR / "sql.md").read_text()
CLI_DOC = (DOCS_DIR / "cli.md").read_text()
ALL_DOCS = "\n".join([README] + [p.read_text() for p in sorted(DOCS_DIR.glob("*.md"))])
MAKEFILE = (ROOT / "Makefile").read_text()


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_readme_starts_with_make_demo_and_make_test() -> None:
    """The first lines of the README are the two commands that work on a fresh machine."""
    first = README.splitlines()[:5]
    assert any(line.strip().startswith("make demo") for line in first)
    assert any(line.strip().startswith("make test") for line in first)


def test_the_readme_is_short_and_links_to_every_page_of_docs() -> None:
    """A newcomer finishes the README: at most 150 lines, and it links every page of docs/."""
    assert len(README.splitlines()) <= 150
    for page in DOCS_DIR.glob("*.md"):
        assert f"(docs/{page.name})" in README, page.name


def test_every_relative_link_of_the_docs_leads_to_a_file() -> None:
    """Links between README.md, BENCHMARKS.md and docs/*.md (the files moved once; a link must move too)."""
    pages = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted(DOCS_DIR.glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_docs_give_every_parameter_of_rotate_with_its_default() -> None:
    """Each parameter of token_rotation.rotate in sql/20_rotate.sql has a row in docs/sql.md with its
    default: a stored option's SQL default is NULL ("not given"), a new run's is the comment after it."""
    source = (ROOT / "sql" / "20_rotate.sql").read_text()
    signature = source[source.index("PROCEDURE token_rotation.rotate(") : source.index("LANGUAGE plpgsql")]
    params = re.findall(
        r"(p_\w+)\s+\S+(?:\s+DEFAULT\s+(\S+))?(?:\s+--\s+(\S+))?", signature
    )  # a type may be name[]
    assert len(params) >= 14
    for name, default, new_run_default in params:
        row = next((line for line in SQL_DOC.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} is not documented"
        documented = row.split("|")[2].strip()
        expected = f"`{new_run_default or default}`" if default else "(required)"
        assert documented == expected or documented.startswith(expected + " for "), f"{name}: {row!r}"


def test_the_defaults_documented_are_those_of_default_options(conn: psycopg.Connection) -> None:
    """The defaults of a new run are written once, in token_rotation.default_options(): each one the
    parameter list of rotate() and docs/sql.md repeat is the same value (compared as the parameter's type),
    and every key of default_options() is repeated there."""
    source = (ROOT / "sql" / "20_rotate.sql").read_text()
    signature = source[source.index("PROCEDURE token_rotation.rotate(") : source.index("LANGUAGE plpgsql")]
    commented = re.findall(r"p_(\w+)\s+(\S+)\s+DEFAULT\s+NULL\s+--\s+('[^']*'|\S+)", signature)
    row = conn.execute("SELECT token_rotation.default_options()").fetchone()
    assert row is not None
    defaults = row[0]
    assert set(defaults) <= {name for name, _, _ in commented}
    for name, sql_type, value in commented:
        if name not in defaults:
            continue  # a default that depends on the table (format) or means "off" (fill_null)
        same = conn.execute(
            sql.SQL("SELECT %s::{0} = {1}::{0}").format(sql.SQL(sql_type), sql.SQL(value)),  # our own file
            (str(defaults[name]).lower(),),
        ).fetchone()
        assert same == (True,), f"p_{name}: the comment says {value}, default_options() {defaults[name]!r}"


def test_the_api_schema_holds_what_the_sql_reference_documents(conn: psycopg.Connection) -> None:
    """The schema token_rotation is the API: each of its routines and views is in docs/sql.md, and every
    routine the page names (token_rotation.name) is there; what only the tool calls lives in
    token_rotation_internal, which the page never names (it is no API)."""
    api = {
        str(r[0])
        for r in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'token_rotation'::regnamespace"
            " UNION SELECT relname FROM pg_class WHERE relnamespace = 'token_rotation'::regnamespace"
            " AND relkind = 'v'"
        )
    }
    internal = conn.execute(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'token_rotation_internal'::regnamespace"
    ).fetchone()
    page = (ROOT / "docs" / "sql.md").read_text()
    named = set(re.findall(r"token_rotation\.(\w+)\s*\(", page)) | {"progress"}
    assert len(api) >= 15 and internal is not None and internal[0] >= 60
    assert api == named, (sorted(api - named), sorted(named - api))
    assert "token_rotation_internal." not in page


def test_the_docs_name_every_field_of_the_typed_json_events() -> None:
    """docs/cli.md lists the fields of `started` and `progress` as token_rotation.render types them."""
    events = CLI_DOC[CLI_DOC.index("The events of `--json`") :]
    for event, typed in (("started", StartedEvent), ("progress", ProgressFields)):
        item = events[events.index(f"- `{event}`") :]
        item = item[: item.index("\n- ")]
        assert set(re.findall(r"`(\w+)`", item)) - {event, "progress-interval"} == set(typed.__annotations__)


def test_the_docs_list_the_exit_codes_the_cli_uses() -> None:
    """The exit-code table of docs/cli.md has exactly the codes of token_rotation.errors."""
    section = CLI_DOC[CLI_DOC.index("## Exit codes") :]
    section = section[: section.index("\n## ", 3)] if "\n## " in section[3:] else section
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    assert documented == set(EXIT_CODES)


def test_the_docs_mention_every_command_and_the_make_targets_they_name_exist() -> None:
    """Every CLI command appears in the docs, and every `make X` they name is a Makefile target."""
    assert isinstance(cli, click.Group)
    for command in cli.list_commands(click.Context(cli)):
        assert f"`{command}" in CLI_DOC or f"{command}`" in CLI_DOC, command
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))
    for target in set(re.findall(r"\bmake ([a-z][a-z-]+)", ALL_DOCS)):
        assert target in targets, f"make {target} is not a Makefile target"
    for target in ("demo", "rotate", "seed", "status", "install", "test", "lint", "help", "bench-driver"):
        assert target in targets


def test_compose_file_is_valid_and_its_services_fit_together() -> None:
    """docker-compose.yml parses; postgres is a current PostgreSQL with a pg_isready healthcheck and tuned
    settings; demo waits for it to be healthy and points DATABASE_URL at its service name, port, user,
    password and database."""
    services = compose()["services"]
    assert {name for name, service in services.items() if "profiles" not in service} == {"postgres", "demo"}
    pg, demo = services["postgres"], services["demo"]
    image, _, tag = pg["image"].partition(":")
    assert image == "postgres" and int(tag.split(".")[0]) >= 15
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    settings = [arg for arg in pg["command"] if "=" in arg]
    assert any(s.startswith("shared_buffers=") for s in settings)
    assert any(s.startswith("max_wal_size=") for s in settings)
    assert demo["depends_on"]["postgres"]["condition"] == "service_healthy"

    url = conninfo_to_dict(demo["environment"]["DATABASE_URL"])
    host_port, _, container_port = pg["ports"][0].partition(":")
    assert url["host"] == "postgres"
    assert url["port"] == container_port
    env = pg["environment"]
    assert (url["user"], url["password"], url["dbname"]) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )
    assert f"localhost:{host_port}/{env['POSTGRES_DB']}" in ALL_DOCS
    for name in ("`postgres`", "`demo`", "docker compose up", demo["environment"]["DATABASE_URL"]):
        assert name in ALL_DOCS


def test_compose_citus_profile_is_a_coordinator_two_workers_and_a_demo_that_waits_for_them() -> None:
    """The citus profile: a coordinator and two workers of the public Citus image with a pg_isready
    healthcheck, and a demo that waits for all three, points at the coordinator, and runs real commands."""
    services = compose()["services"]
    citus = {name: service for name, service in services.items() if service.get("profiles") == ["citus"]}
    assert set(citus) == {"citus-coordinator", "citus-worker1", "citus-worker2", "citus-demo"}
    for name in ("citus-coordinator", "citus-worker1", "citus-worker2"):
        assert citus[name]["image"].startswith("citusdata/citus:")
        assert "pg_isready" in " ".join(citus[name]["healthcheck"]["test"])
    demo = citus["citus-demo"]
    assert {n: d["condition"] for n, d in demo["depends_on"].items()} == dict.fromkeys(
        ("citus-coordinator", "citus-worker1", "citus-worker2"), "service_healthy"
    )
    assert conninfo_to_dict(demo["environment"]["DATABASE_URL"])["host"] == "citus-coordinator"
    script = demo["command"][-1]
    assert "citus_add_node" in script and "create_distributed_table" in script
    commands = [line.split()[1] for line in script.splitlines() if line.strip().startswith("token-rotation")]
    assert commands == ["install", "rotate", "status"]
    assert "docker compose --profile citus up citus-demo" in ALL_DOCS


def test_compose_demo_runs_only_commands_and_options_the_cli_has() -> None:
    """Each `token-rotation ...` line the demo service runs names a real command with real options, and the
    variables it uses are set in its environment."""
    demo = compose()["services"]["demo"]
    script = demo["command"][-1]
    lines = [line.strip() for line in script.splitlines() if line.strip().startswith("token-rotation")]
    assert [line.split()[1] for line in lines] == ["install", "seed", "rotate", "verify", "status"]
    assert isinstance(cli, click.Group)
    ctx = click.Context(cli)
    for line in lines:
        words = shlex.split(line.replace("$$", "$"))
        command = cli.get_command(ctx, words[1])
        assert command is not None, words[1]
        options = {opt for p in command.params for opt in p.opts}
        for word in words[2:]:
            if word.startswith("--"):
                assert word in options, f"{words[1]} has no option {word}"
    for variable in set(re.findall(r"\$\$(\w+)", script)):
        assert variable in demo["environment"], variable
