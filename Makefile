# Two entry points, each setting up .venv itself from a fresh clone:
#   make run    the default experiment (pass Snakemake arguments with ARGS="...")
#   make test   the test suite
#   make pretrain  rebuild the default's shipped pretrained base (pretrained/tiny_default/)
# and the lock (docs/install.md, requirements/lock.py):
#   make lock        rebuild requirements/lock.txt from requirements/direct.txt (keeps existing pins)
#   make lock UPGRADE=1   ... re-resolving every pin to the newest allowed release
#   make check-lock  fail naming every package of .venv that differs from the lock
VENV  ?= .venv
BIN   := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
LOCK  := requirements/lock.txt
CORES ?= 2
ARGS  ?=
PYTEST_ARGS ?=
# Extra pip options for every install (e.g. a proxy or a mirror); none are needed.
PIP_ARGS ?=
# The lock's CPU torch (torch==<version>+cpu) is on PyTorch's CPU index, not on PyPI: `make install`
# takes it from pip's configured indexes / wheel paths when they have it, else from this index.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
UPGRADE ?=
# DeepSpeed installs from its sdist: build none of its C++/CUDA ops at install time (the CPU tests
# JIT-build the one they use, the shared-memory comm op, on first use; docs/cluster.md).
export DS_BUILD_OPS := 0
# Nothing in the default run or the tests may reach a model/dataset hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PATH := $(BIN):$(PATH)

.PHONY: install run test dry-run clean lock check-lock lint pretrain

install: $(STAMP)

# Exactly the lock, nothing resolved: --no-deps, pip itself first, the project without build
# isolation (its setuptools is the locked one). --clear: a rebuilt venv holds no leftovers.
$(STAMP): $(LOCK) pyproject.toml
	python3 -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q $(PIP_ARGS) --no-deps "$$(grep -i '^pip==' $(LOCK))"
	$(BIN)/python -m pip install -q $(PIP_ARGS) --no-deps "$$(grep '^torch==' $(LOCK))" 2>/dev/null || \
	  { echo "$$(grep '^torch==' $(LOCK)) is not on pip's indexes here: taking it from $(TORCH_CPU_INDEX)"; \
	    $(BIN)/python -m pip install -q $(PIP_ARGS) --no-deps --extra-index-url $(TORCH_CPU_INDEX) "$$(grep '^torch==' $(LOCK))"; }
	$(BIN)/python -m pip install -q $(PIP_ARGS) --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python requirements/lock.py check --python $(BIN)/python
	touch $@

check-lock: $(STAMP)
	$(BIN)/python requirements/lock.py check --python $(BIN)/python

# A fresh environment resolved from the direct requirements (constrained by the current lock
# unless UPGRADE=1), smoke-tested, then frozen. Run `make test` on the new lock before committing.
LOCK_VENV := .lock-venv
lock:
	python3 -m venv --clear $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q $(PIP_ARGS) $(if $(UPGRADE),,-c $(LOCK)) --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q $(PIP_ARGS) $(if $(UPGRADE),,-c $(LOCK)) -r requirements/direct.txt
	$(LOCK_VENV)/bin/python -m pip install -q $(PIP_ARGS) --no-deps -r requirements/nodeps.txt
	$(LOCK_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	$(LOCK_VENV)/bin/python -c "import lmms_eval.evaluator, lmmcl.cli, snakemake, torch, transformers"
	$(LOCK_VENV)/bin/python requirements/lock.py write --python $(abspath $(LOCK_VENV))/bin/python
	rm -rf $(LOCK_VENV)

run: $(STAMP)
	$(OFFLINE) $(BIN)/snakemake --cores $(CORES) $(ARGS)

dry-run: $(STAMP)
	$(OFFLINE) $(BIN)/snakemake -n --cores $(CORES) $(ARGS)

test: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -q $(PYTEST_ARGS)

# Rebuild the tiny default's shipped base (pretrained/tiny_default/) from config/pretrain_tiny.yaml:
# pre-train it through the workflow, then copy it into the repository (same bytes with portable numerics)
PRETRAIN_BASE := results/pretrain_tiny/seed0/base/manifest.json
pretrain: $(STAMP)
	$(OFFLINE) $(BIN)/snakemake $(PRETRAIN_BASE) --cores $(CORES) --configfile config/config.yaml config/pretrain_tiny.yaml
	$(BIN)/lmmcl ship-base $(PRETRAIN_BASE) --out pretrained/tiny_default

# `snakemake --lint` of the workflow (also a test: tests/test_lint_conda.py)
lint: $(STAMP)
	$(OFFLINE) $(BIN)/snakemake --lint

clean:
	rm -rf results/*/ data/ .snakemake/
