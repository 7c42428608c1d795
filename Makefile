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

.PHONY: install demo test lint docs notebooks bench clean seed003 seed003-backends

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt src/advlab/classic/_l1.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/advlab demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy src

test: lint docs
	$(BIN)/pytest -n 2 --dist loadgroup -q --durations=15

# The documentation site (mkdocs-material + mkdocstrings), built offline into site/; strict:
# a broken link, snippet or API reference fails the build, and so `make test`.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Every lab notebook at full size (SMALL = False) on the real data; executed copies with their
# outputs and figures in runs/notebooks/.
notebooks: $(STAMP)
	$(BIN)/python notebooks/run_notebooks.py --full --out runs/notebooks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps torchattacks  # it pins requests~=2.25.1
	$(BIN)/python -m pip install --quiet -c constraints.txt adversarial-robustness-toolbox
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/knn.py
	$(BIN)/python benchmarks/scratch_epoch.py
	$(BIN)/python benchmarks/resnet_cpu_bf16.py
	$(BIN)/python benchmarks/attacks.py
	$(BIN)/python benchmarks/one_pixel.py
	$(BIN)/python benchmarks/sweep_scale.py
	$(BIN)/python benchmarks/emotion.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .mypy_cache .ruff_cache .pytest_cache

# seed 003 in full: both numpy models at the report's defaults, then every ablation of the
# report (30 epochs, 3 seeds each) through `advlab sweep`; prints the wall time it took.
SWEEP := $(BIN)/advlab sweep --seeds 3 --out runs --resume
seed003: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/advlab run cifar-scratch-linear --out runs && \
	$(BIN)/advlab run cifar-scratch-softmax --out runs && \
	$(BIN)/advlab run cifar-scratch-twolayer --out runs && \
	$(SWEEP) cifar-scratch-softmax --set epochs=30 --grid reg=0,0.001,0.01,0.1 && \
	$(SWEEP) cifar-scratch-softmax --set epochs=30 --grid batch_size=128,256,512,1024 && \
	$(SWEEP) cifar-scratch-softmax --set epochs=30 --grid lr=0.001,0.005,0.01,0.05 && \
	$(SWEEP) cifar-scratch-softmax --set epochs=30 --grid lr_decay=1.0,0.99,0.9,0.8 && \
	$(SWEEP) cifar-scratch-twolayer --grid hidden=50,100,150,200 && \
	$(SWEEP) cifar-scratch-twolayer --grid batch_size=128,256,512,1024 && \
	$(SWEEP) cifar-scratch-twolayer --grid lr=0.2,0.1,0.05,0.01 && \
	$(SWEEP) cifar-scratch-twolayer --grid lr_decay=1.0,0.99,0.9,0.8 && \
	echo "seed003: $$(( $$(date +%s) - start )) s in all"

# The eight ablation sweeps of seed003 on the local pool and on a private Ray cluster, every
# point's metrics compared, wall times aside (about 30 min on 2 cores; benchmarks/README.md).
seed003-backends: $(STAMP)
	$(BIN)/python benchmarks/seed003_backends.py
