"""Fixtures of the security tests: an attacker role with nothing but the recipe's grants
(sql/examples/grants.sql) for a table of its own, and the victim's table that a superuser rotates.

Each test in this folder plays one finding of the security review (issue 17) as the attacker would, and
asserts that the attack fails: the test fails on code that lets it through.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from helpers import make_table
from roles import dsn_as, grant_recipe, temporary_role


@pytest.fixture
def victim(conn: psycopg.Connection) -> str:
    """public.tickets, 1,000 rows, owned by the test's superuser: the table the attacker must not touch."""
    make_table(conn, rows=1000)
    return "public.tickets"


@pytest.fixture
def attacker(conn: psycopg.Connection) -> Iterator[str]:
    """A LOGIN role with the recipe's grants for its own table public.attacker_tickets (1,000 rows, owned by
    the superuser, as an application's table would be) and nothing else."""
    make_table(conn, name="attacker_tickets", rows=1000)
    with temporary_role(conn, "tr_attacker") as role:
        grant_recipe(conn, role, table="public.attacker_tickets")
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        yield role
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(sql.Identifier(role)))


@pytest.fixture
def attacker_conn(dsn: str, attacker: str) -> Iterator[psycopg.Connection]:
    """An autocommit session logged in as the attacker role."""
    with psycopg.connect(dsn_as(dsn, attacker), autocommit=True) as connection:
        yield connection
