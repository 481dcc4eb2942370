# Every target creates .venv with uv from the pinned constraints when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV := $(PYTHON) -m uv
PYTEST_ARGS ?=

.PHONY: demo test lint format bench constraints clean podman

# The example plugin package is installed too: the suite tests it as a real third-party plugin.
VENV_EXAMPLE := examples/dagster-airflow-venv

$(STAMP): constraints.txt setup.cfg pyproject.toml $(VENV_EXAMPLE)/setup.cfg
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(PY) -c constraints.txt -e '.[dev]' -e $(VENV_EXAMPLE)
	@touch $@

## make demo: scaffold the demo job and run it through a real Airflow on SQLite
demo: $(STAMP)
	$(PY) examples/run_demo.py

## make test: lint, then the whole suite against real components (installs podman if missing)
test: $(STAMP) lint podman
	$(PY) -m pytest $(PYTEST_ARGS)

# The docker runner's tests need a real container engine: rootful podman with runc (CI runs as
# root with no standard input).
podman:
	@command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q podman runc; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## make bench: every benchmark under bench/, as ratios against baselines measured in the same run
bench: $(STAMP)
	$(PY) bench/run.py

## make constraints: re-pin every package after changing a version in setup.cfg
constraints: $(STAMP)
	{ head -2 constraints.txt; $(UV) pip freeze --python $(PY) --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .ruff_cache
