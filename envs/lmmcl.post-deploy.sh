#!/usr/bin/env bash
# Run by Snakemake (`--sdm conda`) inside the new conda environment of envs/lmmcl.yaml, once, when
# it creates that environment: lmms-eval without its own requirement list
# (requirements/nodeps.txt: it would replace the pinned torch), then lmmcl itself (editable, from
# this repository); the pins of envs/lmmcl.yaml already hold everything both need.
# The repository is LMMCL_REPO, which the workflow sets (workflow/rules/common.smk) to the folder
# above workflow/, so `snakemake --directory <elsewhere>` works too; by hand: LMMCL_REPO=<repo> bash envs/lmmcl.post-deploy.sh
set -euo pipefail
repo=${LMMCL_REPO:-.}
if [ ! -f "$repo/requirements/nodeps.txt" ] || [ ! -f "$repo/pyproject.toml" ]; then
  echo "envs/lmmcl.post-deploy.sh: $repo is not the lmmcl repository (no requirements/nodeps.txt or pyproject.toml);" \
       "set LMMCL_REPO to the repository root" >&2
  exit 1
fi
cd "$repo"
python -m pip install --no-deps -r requirements/nodeps.txt
python -m pip install --no-deps --no-build-isolation -e .
