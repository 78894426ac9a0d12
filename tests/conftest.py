"""The suite's fixtures, registered as plugins (tests/plugins/): every test runs against a real PostgreSQL
(plugins.database: DATABASE_URL's server or an embedded PostgreSQL 18, a fresh database per test); the
wheel of this checkout, built once (plugins.wheel); a PostgreSQL 15 with pg_cron (plugins.cron).

The tests are grouped by layer: engine/ (the SQL, CALLed as in psql), cli/ (the command line), django_app/,
install/ (wheel, migrations, psql-only install, docs), dedicated_servers/ (servers of their own: replicas,
crashes, pg_cron, Citus), security/ (an attacker role per protection). Helpers they share are modules here:
helpers (tables, snapshots, checks), background (CALLs and CLI processes in the background, waiting),
roles, servers, catalog, citus_cluster."""

pytest_plugins = ("plugins.database", "plugins.wheel", "plugins.cron")
