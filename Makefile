# Two entry points, each setting up .venv itself from a fresh clone:
#   make run    the default experiment (pass Snakemake arguments with ARGS="...")
#   make test   the test suite
VENV  ?= .venv
BIN   := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
CORES ?= 2
ARGS  ?=
PYTEST_ARGS ?=
# Nothing in the default run or the tests may reach a model/dataset hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PATH := $(BIN):$(PATH)

.PHONY: install run test dry-run clean

install: $(STAMP)

# lmms-eval is installed with --no-deps: resolving its own requirements would replace the CPU
# torch by a CUDA build or add a torchvision that does not import (feasibility_ml.md §1).
$(STAMP): requirements/cpu.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/cpu.txt
	$(BIN)/pip install -q --no-deps lmms-eval==0.7.3
	$(BIN)/pip install -q --no-deps -e .
	touch $@

run: $(STAMP)
	$(OFFLINE) $(BIN)/snakemake --cores $(CORES) $(ARGS)

dry-run: $(STAMP)
	$(OFFLINE) $(BIN)/snakemake -n --cores $(CORES) $(ARGS)

test: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -q $(PYTEST_ARGS)

clean:
	rm -rf results/*/ data/ .snakemake/
