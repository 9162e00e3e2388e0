# Two entry points (see README): `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
UV := .run/tools/bin/uv
export BROKER_PORT ?= 19092
# kafka: Apache Kafka from its Maven artifacts (needs a JDK 17+); tansu: the light embedded broker.
export BROKER ?= $(if $(shell command -v java 2>/dev/null),kafka,tansu)
# Parallel pytest workers (pytest-xdist): the suite mostly waits on subprocesses, brokers, MariaDB and
# Airflow schedulers; on 2 cores 4 workers keep them busy (3: 420 s, 4: 365 s, 5: a consumer starved).
PYTEST_WORKERS ?= 4
# Port of the private Tansu that `make test` runs the relay contract on when BROKER=kafka.
export TANSU_SMOKE_PORT ?= 19192
export OUTBOX_TEST_DB_URL ?= mysql+pymysql://root@127.0.0.1:3306
export OUTBOX_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(BROKER_PORT)
# Every demo and test starts many Python processes (`airflow`, the CLI, relays); without bytecode
# each one compiles Airflow from source again (`airflow version`: 5.8 CPU-s instead of 2.3). So the
# venv is compiled at install, and Python may cache the project's own modules.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install services broker broker-stop demo test test-tansu lint typecheck unit integration clean wheel compat

install: $(VENV)/.installed

$(UV):
	@mkdir -p .run
	$(PYTHON) -m venv .run/tools && .run/tools/bin/pip install -q uv==0.13.8

$(VENV)/.installed: pyproject.toml requirements.lock | $(UV)
	$(UV) venv -q --allow-existing -p $(PYTHON) $(VENV)
	$(UV) pip sync -q --compile-bytecode -p $(PY) requirements.lock
	@# The project's packages are used in place: include/ and plugins/ go on the venv's path.
	@printf '%s\n%s\n' "$(CURDIR)/include" "$(CURDIR)/plugins" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/outbox_relay_project.pth
	@# Editable install of the package itself: the `outbox-relay` command (examples stay unpackaged).
	$(UV) pip install -q --no-deps -p $(PY) -e .
	@touch $@

services: install
	@bash include/devstack/mysql.sh
	@bash include/devstack/broker.sh start

broker: services

broker-stop:
	@bash include/devstack/broker.sh stop

demo: services
	@bash include/devstack/demo.sh $(SCENARIO)

lint: install
	$(VENV)/bin/ruff check include plugins dags tests
	$(VENV)/bin/ruff format --check include plugins dags tests
	PYTHONPATH=include:plugins $(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

integration: services
	@bash include/devstack/postgres.sh
	@bash include/devstack/chromium.sh
	$(PY) -m pytest tests/integration tests/airflow -q

# The suite on PYTEST_WORKERS workers; beside it the static checks and (on Kafka) the Tansu contract run.
test: services
	@bash include/devstack/postgres.sh
	@bash include/devstack/redis.sh
	@bash include/devstack/chromium.sh
	@PYTEST_WORKERS=$(PYTEST_WORKERS) bash include/devstack/test_all.sh

# The relay contract once more on the light embedded broker (Tansu), on its own port.
test-tansu: install
	@BROKER=tansu BROKER_PORT=$(TANSU_SMOKE_PORT) OUTBOX_KAFKA_BOOTSTRAP=127.0.0.1:$(TANSU_SMOKE_PORT) \
	  bash include/devstack/broker.sh start
	BROKER=tansu OUTBOX_KAFKA_BOOTSTRAP=127.0.0.1:$(TANSU_SMOKE_PORT) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_relay.py; \
	  rc=$$?; BROKER_PORT=$(TANSU_SMOKE_PORT) bash include/devstack/tansu.sh stop; exit $$rc

# A real local Airflow with the project's DAGs, the Outbox page and live order traffic (see README).
.PHONY: airflow airflow-stop
airflow: services
	@bash include/devstack/airflow.sh start
airflow-stop:
	@bash include/devstack/airflow.sh stop

clean:
	@bash include/devstack/broker.sh stop || true
	rm -rf .run $(VENV) dist

# The distribution to install into an existing Airflow (README, "Install into your Airflow").
wheel: | $(UV)
	@rm -rf dist
	$(UV) build -q --wheel -o dist .
	@ls dist/*.whl

# The compatibility matrix alone (tests/compat: the wheel in fresh venvs per Python/Airflow cell, without the
# lock); `make test` runs it too.
compat: services
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup tests/compat

# The configuration reference (docs/configuration.md) and the editors' JSON Schema, both from the models;
# unit tests fail while either differs from what the models say.
.PHONY: docs
docs: install
	$(PY) -m outbox_relay.config.reference docs/configuration.md
	$(VENV)/bin/outbox-relay schema -o dags/services/service.schema.json

# Side-by-side benchmark (tests/benchmarks/bench.py): table on stdout, JSON in bench-results/.
# e.g. make bench BENCH_ARGS="--rows 50000 --only naive,project"
.PHONY: bench
BENCH_ARGS ?=
bench: services
	@bash include/devstack/postgres.sh
	$(PY) -m tests.benchmarks.bench $(BENCH_ARGS)

# A 6-hour outage (100k rows) drained by the backfill DAG on a real scheduler; BENCH_ARGS=--legacy also
# times `airflow backfill create` on the relay DAG (tests/benchmarks/backfill_outage.py).
.PHONY: bench-backfill
bench-backfill: services
	@bash include/devstack/postgres.sh
	$(PY) -m tests.benchmarks.backfill_outage $(BENCH_ARGS)
