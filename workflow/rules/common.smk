import json
import re
import sys
from pathlib import Path

from snakemake.utils import validate

from lmmcl.config import ConfigError, Plan, dumps
from lmmcl.layout import Layout

# Shapes and types first (fills schema defaults), then the names a schema cannot check.
validate(config, schema="../schemas/config.schema.yaml")
try:
    PLAN = Plan(config)
except ConfigError as e:
    sys.exit(f"Config error: {e}")

EXP = PLAN.experiment
LAYOUT = Layout(EXP)
RES = LAYOUT.exp
SEEDS = PLAN.seeds
DATA = config["data"]["root"]
SYN = config["data"]["synthetic"]
BENCHMARKS = PLAN.benchmarks
RESOURCES = config["resources"]

wildcard_constraints:
    method="|".join(map(re.escape, PLAN.methods)),
    seed="|".join(map(str, SEEDS)),
    k=r"\d+",
    task=r"[A-Za-z0-9_]+",
    benchmark=r"[A-Za-z0-9_]+",


def methods_regex(merged: bool) -> str:
    """Wildcard regex of the methods whose stage ends with a merge job (WiSE-FT), or of the others."""
    from lmmcl.train.methods import MERGE_KINDS

    names = [m for m in PLAN.methods if (PLAN.method_kind(m) in MERGE_KINDS) == merged]
    return "|".join(map(re.escape, names)) if names else "(?!)"


def parent_manifest(wildcards):
    """Stage k starts from stage k-1 of the same method and seed; stage 1 from the seed's base."""
    k = int(wildcards.k)
    PLAN.stage(wildcards.method, k, wildcards.task)  # raises for a stage not in the sequence
    return LAYOUT.stage_manifest(wildcards.seed, wildcards.method, k - 1, PLAN.sequence[k - 2] if k > 1 else "")


def train_split(dataset):
    return f"{DATA}/{dataset}/train.parquet"


def test_split(dataset):
    return f"{DATA}/{dataset}/test.parquet"


def eval_outputs(checkpoint_dir):
    return [f"{checkpoint_dir}/{b}.json" for b in BENCHMARKS]


def all_eval_files():
    files = []
    for seed in SEEDS:
        files += eval_outputs(LAYOUT.eval_dir(seed, None, 0, None))
        for m in PLAN.methods:
            for s in PLAN.stages(m):
                files += eval_outputs(LAYOUT.eval_dir(seed, m, s.k, s.task))
    return files


def print_summary():
    lf = Path(f"{RES}/tables/learning_forgetting.md")
    if lf.exists():
        from lmmcl.report.aggregate import format_summary

        print(format_summary("results", PLAN.report_plan()))
