# The two commands that matter: `make demo` and `make test`. Each builds .venv first when it is missing or
# older than requirements.txt, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench load up down serve status env venv clean backup backups restore gc upgrade-check upgrade-db

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@echo "Installing pinned requirements into $(VENV) (about 2-3 minutes the first time)..." >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2  # test-only (selenium)
	@touch $(STAMP)

demo: $(STAMP)
	@PYTHONPATH=trainer $(PY) -m airline_hpo.demo

test: $(STAMP)
	@$(PY) -m pytest

lint: $(STAMP)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

bench: $(STAMP)
	@PYTHONPATH=trainer:. $(PY) -m benchmarks.search_overhead
	@PYTHONPATH=trainer:. $(PY) -m benchmarks.load_memory
	@PYTHONPATH=trainer:. $(PY) -m benchmarks.ray_overhead
	@PYTHONPATH=trainer:. $(PY) -m benchmarks.family_fit
	@PYTHONPATH=trainer:. $(PY) -m benchmarks.serving

# LOAD_LOGGERS concurrent MlflowClient loggers for LOAD_SECONDS against the running local stack (`make up` first):
# calls/s, p50/p95/p99 per call type, errors, the MLflow server's RSS. Exits 1 on any error.
LOAD_LOGGERS ?= 16
LOAD_SECONDS ?= 60

load: $(STAMP)
	@$(PY) -m local_stack load --loggers "$(LOAD_LOGGERS)" --seconds "$(LOAD_SECONDS)"

# `make up AUTH=1` runs MLflow's basic-auth app (admin password generated; `make env` exports it).
up: $(STAMP)
	@$(PY) -m local_stack up $(if $(filter-out 0,$(AUTH)),--auth)

# The champion on http://127.0.0.1:$(SERVE_PORT) (default 5050), following its alias; Ctrl-C stops it.
serve: $(STAMP)
	@$(PY) -m local_stack serve

down: $(STAMP)
	@$(PY) -m local_stack down

status: $(STAMP)
	@$(PY) -m local_stack status

# Prints only `export NAME=value` lines on stdout (set-up messages go to stderr): eval "$$(make env)".
env: $(STAMP)
	@$(PY) -m local_stack env

# Day two. `make backup` logs to stderr and prints only the backup's key on stdout (its last line).
GC_OLDER_THAN ?= 30d

backup: $(STAMP)
	@$(PY) -m local_stack backup

backups: $(STAMP)
	@$(PY) -m local_stack backups

restore: $(STAMP)
	@test -n "$(BACKUP)" || { echo "error: name the backup: make restore BACKUP=backups/mlflow-...dump (see make backups)" >&2; exit 2; }
	@$(PY) -m local_stack restore "$(BACKUP)"

gc: $(STAMP)
	@$(PY) -m local_stack gc --older-than "$(GC_OLDER_THAN)"

# Rehearses `mlflow db upgrade` on a restored copy of BACKUP (default: the latest); UPGRADE_PYTHON names the
# interpreter of the newer MLflow (default: this venv's).
upgrade-check: $(STAMP)
	@$(PY) -m local_stack upgrade-check $(if $(BACKUP),--backup "$(BACKUP)") $(if $(UPGRADE_PYTHON),--python "$(UPGRADE_PYTHON)")

# After upgrade-check passed and the venv holds the new MLflow: backup, `mlflow db upgrade` on the live database.
upgrade-db: $(STAMP)
	@$(PY) -m local_stack upgrade-db

clean:
	@$(PY) -m local_stack down --wipe 2>/dev/null || true
	rm -rf $(VENV) .pytest_cache .ruff_cache
