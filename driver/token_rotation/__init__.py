"""token-rotation: rotate the secret uuid token of every row of a PostgreSQL table, online and resumably.

The work happens inside PostgreSQL (`CALL token_rotation.rotate(...)`, installed by the migrations); this
package is the thin driver around it: connection, installation, progress and ETA, the command line.

The SQL and the migrations ship inside the package: the repository's top-level sql/ and migrations/ folders
are the subpackages token_rotation.sql and token_rotation.migrations (see pyproject.toml), read through
importlib.resources, so every command works wherever the package is installed (wheel, pipx, editable).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__version__ = "0.1.0"

SQL_DIR: Traversable = files("token_rotation.sql")
MIGRATIONS_DIR: Traversable = files("token_rotation.migrations")
