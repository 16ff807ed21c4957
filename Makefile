# aicash: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from the pinned CPU build: an unpinned torch pulls gigabytes of CUDA packages
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
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

test: $(STAMP) lint ## Lint, then run the whole test suite
	$(BIN)/pytest

bench: $(STAMP) ## Print the benchmark figures
	$(BIN)/python -m benchmarks

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
