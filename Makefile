# The collection's commands. `make test` and `make demo` create .venv (gitignored) on first use and
# reinstall only when requirements/lock.txt or pyproject.toml change.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Colab's runtime is Python 3.13: the first python3.13 that runs (pyenv's shim fails where 3.13 is not global).
COLAB_PYTHON ?= $(shell for p in python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13); do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v $$p; break; }; done)
COLAB_VENV := .venv-colab
STAMP := $(VENV)/.medimg-installed
NOTEBOOK_DIRS := 01_load_data 02_annotation 03_train_classifier 04_segmentation_unet 05_deploy_explain 06_workshop_experiments
# pytest stops with "file or directory not found" on a folder that does not exist yet: pass only those present.
PRESENT_DIRS = $(wildcard $(NOTEBOOK_DIRS))
# pip prints one warning per package for this machine's local index folders; they say nothing useful.
QUIET_PIP := sed -u '/^WARNING: Location .* is ignored/d'

export JUPYTER_PREFER_ENV_PATH := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export TF_CPP_MIN_LOG_LEVEL := 2
# No person watches make demo / make test: widgets fall back to static figures.
export MEDIMG_HEADLESS := 1
# ipykernel on Python >= 3.11 warns once per kernel that debugging frozen modules may miss breakpoints; no debugger runs here.
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help env demo warm live test test-colab check lock bench clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

env: $(STAMP)  ## create or refresh .venv from the lock file (nothing to do when up to date)

$(STAMP): requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else f"Python >= 3.11 is needed, found {v.major}.{v.minor}: run make PYTHON=/path/to/python3.11")'
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing the locked stack into $(VENV) (first time: several minutes, ~8 GB)"
	$(PY) -m pip install --quiet -r requirements/lock.txt 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	$(PY) -m pip check
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (medimg)" > /dev/null
	@touch $(STAMP)

demo: $(STAMP)  ## run every notebook headless (full setting, generated data) into outputs/
	MEDIMG_QUICK=0 $(PY) -m helpers.nbtools run --out outputs

warm: $(STAMP)  ## train every notebook's models once (full setting) and store them for live mode (MEDIMG_REUSE=1), ~45 min
	MEDIMG_QUICK=0 MEDIMG_REUSE=1 $(PY) -m helpers.nbtools run --out outputs-warm

live: $(STAMP)  ## after make warm: every notebook in live mode (full setting, stored runs reused), about a minute each
	MEDIMG_QUICK=0 MEDIMG_REUSE=1 $(PY) -m helpers.nbtools run --out outputs-live

test: $(STAMP)  ## unit tests, notebook template checks, and every notebook under nbval (quick setting)
	MEDIMG_QUICK=1 $(PY) -m pytest -p no:cacheprovider tests $(PRESENT_DIRS) \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=900

test-colab: $(STAMP)  ## every notebook on Colab's packages (Python 3.13, .venv-colab), and what each setup cell changes there
	@test -n "$(COLAB_PYTHON)" || { echo "make test-colab needs Python 3.13: make test-colab COLAB_PYTHON=/path/to/python3.13"; exit 1; }
	$(PY) -m helpers.colab --venv $(COLAB_VENV) env --python $(COLAB_PYTHON)
	$(PY) -m helpers.colab --venv $(COLAB_VENV) check-setup
	$(PY) -m helpers.colab --venv $(COLAB_VENV) widgets
	$(PY) -m helpers.colab --venv $(COLAB_VENV) run --out outputs-colab

check: $(STAMP)  ## template check of every notebook only
	$(PY) -m helpers.nbtools check

bench: $(STAMP)  ## speed, memory and key results of everything -> benchmarks/results/<date>-<host>.{json,md} (~1 h; BENCH_ARGS="--settings quick" for ~15 min)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

lock:  ## re-resolve requirements/requirements.in into requirements/lock.txt in a scratch venv
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements/requirements.in 2>&1 | $(QUIET_PIP)
	.lock-venv/bin/pip check
	{ sed -n '1,/^# ---- pinned/p' requirements/lock.txt; .lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^pip==' | grep -vi '^medimg-helpers'; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt && rm -rf .lock-venv

clean:  ## remove executed notebooks and caches (keeps .venv)
	rm -rf outputs outputs-colab outputs-warm outputs-live .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
