# aicash: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install tools demo test lint docs docs-serve bench loadtest soak audit lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from the pinned CPU build: an unpinned torch pulls gigabytes of CUDA packages
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -c requirements.lock -e ".[dev]"
	touch $@

install: $(STAMP) ## Create .venv and install the project with every extra

demo: $(STAMP) ## Run the main job end to end on the local defaults
	$(BIN)/aicash data ingest --sample eurusd-1h
	$(BIN)/aicash data list
	$(BIN)/aicash data indicators EURUSD
	$(BIN)/aicash features apply
	$(BIN)/aicash features materialize
	$(BIN)/aicash features show EURUSD
	$(BIN)/aicash pipeline run lstm-training --symbol EURUSD
	$(BIN)/aicash models list
	$(BIN)/python scripts/demo_serve.py

lint: $(STAMP) ## ruff over the whole repository
	$(BIN)/ruff check .

docs: $(STAMP) ## Build the documentation site (mkdocs.yml, docs/) into site/; broken links fail
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP) ## Serve the documentation site at http://127.0.0.1:8000, rebuilt on every change
	$(BIN)/mkdocs serve

tools: ## Install the system tools the tests use where missing (promtool, from Debian's prometheus package)
	bash scripts/ensure_tools.sh

test: $(STAMP) lint tools ## Lint, then run the whole test suite
	$(BIN)/pytest

bench: $(STAMP) ## Print the benchmark figures
	$(BIN)/python -m benchmarks

loadtest: $(STAMP) ## Locust against the served production model; fails on a missed p95 target (after make demo)
	$(BIN)/python -m loadtest.run --duration $(or $(LOADTEST_SECONDS),60) --users $(or $(LOADTEST_USERS),16)

soak: $(STAMP) ## Steady load for SOAK_SECONDS (600): error rate, p99/p95 per interval, memory growth (after make demo)
	$(BIN)/python -m loadtest.soak --duration $(or $(SOAK_SECONDS),600) --rate $(or $(SOAK_RATE),50)

audit: $(STAMP) ## pip-audit over the locked dependencies; fails on a known vulnerability with a fix available
	$(BIN)/python scripts/audit.py requirements.lock

lock: ## Rewrite requirements.lock from the installed environment (after changing a dependency)
	{ echo "# Every dependency of aicash[dev], pinned: installs use it as constraints; make audit checks it."; \
	  echo "# Regenerate with make lock after changing pyproject.toml."; \
	  $(BIN)/pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+cpu$$/\1/'; } > requirements.lock

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
