# chiefbench: `make run` and `make test` do all the set-up on a fresh machine (python3 + make).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test soak clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

venv: $(INSTALLED) ## Create .venv and install chiefbench with its test tools

run: $(INSTALLED) ## Run the default experiment (the original chief/worker system), results under outputs/
	$(VENV)/bin/chiefbench

test: $(INSTALLED) ## Run the test suite
	$(PY) -m pytest

soak: $(INSTALLED) ## Soak test: the fastest design at saturation for 10 minutes (CHIEFBENCH_SOAK_S to change)
	CHIEFBENCH_SOAK_S=$${CHIEFBENCH_SOAK_S:-600} $(PY) -m pytest tests/test_soak.py -v

clean: ## Remove .venv and generated outputs
	rm -rf $(VENV) outputs/runs outputs/sweeps *.egg-info
