"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Table DDL and DROP ... IF EXISTS of routine signatures that no longer exist, nothing else: the routines come
from sql/, re-applied by the head revision's upgrade (the last line of upgrade()). Downgrade goes to base
only (see token_rotation.migrate), so downgrade() reverses only table DDL that base's downgrade cannot.
"""

from __future__ import annotations

from alembic import op

from token_rotation import migrate

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

DDL = """
"""


def upgrade() -> None:
    migrate.run_script(op.get_bind(), DDL)
    migrate.upgraded_to(op.get_bind(), revision)


def downgrade() -> None:
    pass
