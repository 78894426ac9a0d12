"""token-rotation: rotate the secret uuid token of every row of a PostgreSQL table, online and resumably.

The work happens inside PostgreSQL (`CALL token_rotation.rotate(...)`, installed by the migrations); this
package is the thin driver around it: connection, installation, progress and ETA, the command line.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
