"""Installing and shipping: the wheel, the Alembic migrations, the psql-only install, the docs."""
