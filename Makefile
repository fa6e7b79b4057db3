# chiefbench: `make run` and `make test` do all the set-up on a fresh machine (python3 + make).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test docs soak browser sweep bench report clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

# Reinstalled when the dependencies (pyproject.toml) or the build (setup.py) change.
$(INSTALLED): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

venv: $(INSTALLED) ## Create .venv and install chiefbench with its test tools

run: $(INSTALLED) ## Run the default experiment (the original chief/worker system), results under outputs/
	$(VENV)/bin/chiefbench

test: $(INSTALLED) browser ## Run the test suite, then build the docs strictly (CHIEFBENCH_SKIP_INSTALL_TEST=1 skips the wheel test)
	$(PY) -m pytest
	$(MAKE) --no-print-directory docs

docs: $(INSTALLED) ## Build the docs site into site/ (strict: a broken link or reference fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

soak: $(INSTALLED) ## Soak: shm_ring at full speed for 10 min, chief RSS, end cost, books, histograms vs exact (CHIEFBENCH_SOAK_S)
	CHIEFBENCH_SOAK_S=$${CHIEFBENCH_SOAK_S:-600} $(PY) experiments/soak.py

browser: ## Install Debian's chromium for the report's browser test (as root; otherwise that test is skipped)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get) for the report's browser test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	    echo "could not install chromium: the browser test will be skipped"; \
	  else echo "chromium is missing and this is not root: the browser test will be skipped"; fi; }

# A short queue shoot-out: every design x 1, 2, 4 workers x 8 B and 16 KiB items, 3 fresh repeats of 1 s each.
SWEEP_ARGS ?= workers.count=1,2,4 'payload.shape=[8],[16384]' run.duration_s=1 run.warmup_s=0.2 run.repeats=3 \
	run.start_method=fork

sweep: $(INSTALLED) ## A short queue shoot-out (about 3 min on 2 cores): one table and report.html in its sweep directory
	$(VENV)/bin/chiefbench -m +experiment=queue_shootout $(SWEEP_ARGS)

# The bench: every available design x float, 1 KiB, 64 KiB, 1 MiB (and rollout) x 1, 2 workers, batched, and x float,
# 64 KiB one item per put (chief.take_batch=1 and 0), 3 interleaved repeats, each run next to its raw primitive; memcpy,
# the latency / idle-cost table, the chief's check cost, both rankings and the targets. A quick one:
#   make bench BENCH_ARGS='--repeats 1 --duration 0.3 --per-put-duration 0.3 --designs pipe,zmq'
BENCH_ARGS ?=

bench: $(INSTALLED) ## Queue bench (~10 min on 2 cores): batched and one item per put vs raw primitives, targets; BENCH_ARGS
	$(PY) experiments/bench.py $(BENCH_ARGS)

report: $(INSTALLED) ## Write report.html for DIR (default: the latest sweep under outputs/sweeps)
	$(VENV)/bin/chiefbench-report $(or $(DIR),$(shell ls -dt outputs/sweeps/*/*/ 2>/dev/null | head -1))

clean: ## Remove .venv and generated outputs
	rm -rf $(VENV) outputs/runs outputs/sweeps *.egg-info site
