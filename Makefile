# Every target creates .venv with uv from the pinned constraints when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV := $(PYTHON) -m uv
PYTEST_ARGS ?=
# make test spreads the suite's files over three pytest workers (pytest-xdist): most tests wait on
# an Airflow, a container or a server in another process. With two workers the suite kept 1.16
# of the two cores busy on average and took 17:23 (clean clone, 2026-12-07); with three, 1.40
# and 15:29. A file stays on one worker (its module fixtures start servers once), and files go
# out in collection order, where tests/conftest.py puts the long ones first.
PYTEST_WORKERS ?= -n 3 --dist loadfile --no-loadscope-reorder

.PHONY: dist demo test test-compat test-alone test-reverse lint format bench constraints clean system-packages

# The example plugin package is installed too: the suite tests it as a real third-party plugin.
VENV_EXAMPLE := examples/dagster-airflow-venv

# Installed compiled: every process of the suite (each `airflow` command, each step, each CLI
# call) imports Airflow or Dagster, and a venv without .pyc files (uv writes none by default;
# PYTHONDONTWRITEBYTECODE=1 keeps Python from writing them) compiles them again in each one,
# about 40% of `import airflow`. Our own package is compiled before each test run.
$(STAMP): constraints.txt setup.cfg pyproject.toml $(VENV_EXAMPLE)/setup.cfg
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	@# Before the rename to dagster-on-airflow this checkout installed as dagster-airflow, the
	@# retired package's name (docs/install.md): an environment that still has it is cleaned first.
	@$(UV) pip uninstall --quiet --python $(PY) dagster-airflow 2>/dev/null || true
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt --reinstall-package dagster-on-airflow \
		-e '.[dev]' -e $(VENV_EXAMPLE)
	@touch $@

## make dist: the wheel and the sdist of dagster-on-airflow, in dist/ (or DIST=folder; docs/install.md)
DIST ?= dist
dist: $(STAMP)
	rm -rf $(DIST)
	$(UV) build --quiet --out-dir $(DIST)
	@ls $(DIST)/*.whl $(DIST)/*.tar.gz

## make demo: scaffold the demo job and run it through a real Airflow on SQLite
demo: $(STAMP)
	$(PY) examples/run_demo.py

## make test: lint, then the whole suite against real components (installs podman, redis-server and chromium if missing)
test: $(STAMP) lint system-packages
	$(PY) -m compileall -q dagster_airflow harness $(VENV_EXAMPLE)/dagster_airflow_venv.py
	$(PY) -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

## make test-compat: every supported Airflow x Dagster pair, each side in its own venv under .compat/,
## compared with Dagster's own runs; rewrites the support table in docs/install.md (not in make test)
COMPAT ?=
test-compat:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(PYTHON) compat/run.py $(foreach c,$(COMPAT),--only $(c))

# Every test file of the suite (pytest's testpaths), in name order.
TEST_FILES = $(shell find tests examples/dagster-airflow-venv/tests -name 'test_*.py' | sort)

## make test-alone: each test file in a pytest process of its own (no test may need another first)
test-alone: $(STAMP) system-packages
	@failed=""; for file in $(TEST_FILES); do \
		echo "== $$file"; $(PY) -m pytest -q $(PYTEST_ARGS) $$file || failed="$$failed $$file"; \
	done; if [ -n "$$failed" ]; then echo "failed alone:$$failed"; exit 1; fi

## make test-reverse: the whole suite in one process, its files in reverse order
test-reverse: $(STAMP) system-packages
	$(PY) -m pytest $(PYTEST_ARGS) $(shell echo $(TEST_FILES) | tr ' ' '\n' | sort -r)

# The docker runner's tests need a real container engine: rootful podman with runc (CI runs as
# root with no standard input). The Celery deployment test needs Debian's Redis server (the
# tests start it themselves, on loopback), and the browser tests drive Debian's Chromium through
# Playwright (no browser is downloaded; docs/ui.md). The team-instance tests start Debian's
# PostgreSQL server themselves (harness/postgres.py, docs/dagster-instance.md).
system-packages:
	@command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 \
		&& command -v redis-server >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q podman runc redis-server chromium postgresql; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## make bench: every benchmark under bench/, as ratios against baselines measured in the same run
bench: $(STAMP)
	$(PY) -m compileall -q dagster_airflow harness
	$(PY) bench/run.py

## make constraints: re-pin every package after changing a version in setup.cfg
constraints: $(STAMP)
	{ head -2 constraints.txt; $(UV) pip freeze --python $(PY) --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .demo .bench .compat .pytest_cache .ruff_cache
