#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment of envs/lmmcl.yaml (from the repository root):
# lmms-eval without its own requirement list (requirements/nodeps.txt: it would replace the pinned
# torch), then lmmcl itself; the pins of envs/lmmcl.yaml already hold everything both need.
set -euo pipefail
python -m pip install --no-deps -r requirements/nodeps.txt
python -m pip install --no-deps --no-build-isolation -e .
