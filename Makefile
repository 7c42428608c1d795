# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.advlab-installed

# Real data for tests and benchmarks: ../shared/data when it is there, unless the caller chose.
ifeq ($(origin ADVLAB_DATA_DIR), undefined)
ifneq ($(wildcard ../shared/data),)
export ADVLAB_DATA_DIR := $(abspath ../shared/data)
endif
endif

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml src/advlab/classic/_l1.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/advlab demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/knn.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
