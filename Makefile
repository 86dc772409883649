# The two commands that matter: `make demo` and `make test`. Each builds .venv first when it is missing or
# older than requirements.txt, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# ---- set-up (issue 18): requirements.txt = the pinned runtime (make demo installs only it), requirements-dev.txt
# = test, lint and docs tools (make test/check/lint/docs add them). Installed with uv (about 25-40 s fresh, against
# pip's 3-20 min here, see docs/development.md); INSTALLER=pip uses plain pip instead. --compile-bytecode writes
# every .pyc at install, as pip does: uv leaves them to the first import, and where PYTHONDONTWRITEBYTECODE is set
# (this machine, many CI images) no import ever writes them, so every process compiled MLflow, Ray and Pulumi's
# SDKs from source again (an MLflow + scikit-learn + hyperopt import: 3.8 s of CPU with .pyc files, ~10 s without).
INSTALLER ?= uv
UV_VERSION := 0.13.9
DEV_STAMP := $(VENV)/.installed-dev
ifeq ($(INSTALLER),uv)
INSTALL = $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY)
else
INSTALL = $(PY) -m pip install --quiet --disable-pip-version-check
endif

.PHONY: demo test check lint docs pins bench load up down serve status env venv clean backup backups restore gc upgrade-check upgrade-db

venv: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ "$(INSTALLER)" = uv ]; then $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" >&2; fi
	@echo "Installing the pinned runtime into $(VENV) with $(INSTALLER)..." >&2
	@$(INSTALL) -r requirements.txt >&2
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	@echo "Installing the pinned test, lint and docs tools into $(VENV) with $(INSTALLER)..." >&2
	@$(INSTALL) -r requirements.txt -r requirements-dev.txt >&2
	@touch $(DEV_STAMP)

# Regenerate the pins after editing requirements.in or requirements-dev.in; existing pins are kept unless a change
# needs another version (add --upgrade-package NAME to move one).
pins: $(DEV_STAMP)
	@$(VENV)/bin/uv pip compile requirements.in -o requirements.txt --python $(PY) --custom-compile-command "make pins" --quiet
	@$(VENV)/bin/uv pip compile requirements-dev.in -o requirements-dev.txt --python $(PY) --custom-compile-command "make pins" --quiet
# ---- end of set-up

demo: $(STAMP)
	@PYTHONPATH=trainer $(PY) -m airline_hpo.demo

# ---- test lanes (issue 18): `make check` = lint + every test that starts no service (no local stack, no Ray
# cluster, no server); `make test` = the whole suite. JOBS=N runs tests in N pytest-xdist workers (JOBS=0: serial).
# `make test` uses 3 on 2 cores: most of its time is spent waiting (on servers, outages, Ray), not computing.
# --dist loadscope keeps a module on one worker, so a module's own stack or Ray cluster starts once; each worker
# starts its own session stack. PYTHONHASHSEED=0: every worker must collect the same ids in the same order.
JOBS ?= 3
CHECK_JOBS ?= 2

test: $(DEV_STAMP)
	@PYTHONHASHSEED=0 $(PY) -m pytest -n $(JOBS) $(if $(filter-out 0,$(JOBS)),--dist loadscope)

check: lint
	@PYTHONHASHSEED=0 $(PY) -m pytest -n $(CHECK_JOBS) -m "not integration and not gpu" -q

# The same checks as .pre-commit-config.yaml (its hooks call these very tools from .venv).
lint: $(DEV_STAMP)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(VENV)/bin/shellcheck .ci/run tests/infra/pod_sandbox.sh
	@$(VENV)/bin/hadolint trainer/Dockerfile

# The docs site: mkdocs-material, --strict (a broken link, anchor or missing page fails), into site/ (git-ignored).
docs: $(DEV_STAMP)
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
# ---- end of test lanes

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

# MLflow always asks for a login (basic auth; the admin password is generated, `make env` exports it). AUTH=0 of
# older versions is refused, not silently ignored: every port of the stack needs a key.
up: $(STAMP)
	@test "$(AUTH)" != 0 || { echo "error: AUTH=0 is gone: the local MLflow server always asks for the stack's login; clients get it from eval \"\$$(make env)\"" >&2; exit 2; }
	@$(PY) -m local_stack up

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
	rm -rf $(VENV) .pytest_cache .ruff_cache site
