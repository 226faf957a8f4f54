import json
import sys
from pathlib import Path

from snakemake.utils import validate

from lmmcl.config import ConfigError, Plan, dumps

# Shapes and types first (fills schema defaults), then the names a schema cannot check.
validate(config, schema="../schemas/config.schema.yaml")
try:
    PLAN = Plan(config)
except ConfigError as e:
    sys.exit(f"Config error: {e}")

EXP = PLAN.experiment
RES = f"results/{EXP}"
DATA = config["data"]["root"]
SYN = config["data"]["synthetic"]
BENCHMARKS = PLAN.benchmarks
RESOURCES = config["resources"]
# Processes per training/evaluation job: one per GPU (resources.gpus), else resources.processes
# on CPU (a gloo group). A job's `threads` cover all its processes: each process runs
# `*_threads` threads (SLURM: --cpus-per-task = processes x threads).
CPU_PROCS = RESOURCES["processes"] if RESOURCES["gpus"] == 0 else 1


def proc_threads(wildcards, threads):
    """Threads of each process of a job (the job's threads, possibly capped by --cores, split)."""
    return max(1, threads // CPU_PROCS)


# Training curves (lmmcl.train.tracking): how the Trainer's integrations log each stage.
# A launch setting, not a param (changing it reruns nothing).
from lmmcl.train.tracking import normalize as _tracking_spec

TRACKING = dumps(_tracking_spec(config.get("tracking")))

wildcard_constraints:
    method="|".join(PLAN.methods),
    k=r"\d+",
    task=r"[A-Za-z0-9_]+",
    benchmark=r"[A-Za-z0-9_]+",


def methods_regex(merged: bool) -> str:
    """Wildcard regex of the methods whose stage ends with a merge job (WiSE-FT), or of the others."""
    from lmmcl.train.methods import MERGE_KINDS

    names = [m for m in PLAN.methods if (PLAN.method_kind(m) in MERGE_KINDS) == merged]
    return "|".join(names) if names else "(?!)"


def stage_dir(method, k, task):
    return f"{RES}/{method}/stage{k}_{task}"


def parent_manifest(wildcards):
    """Stage k starts from stage k-1 of the same method; stage 1 from the base."""
    k = int(wildcards.k)
    PLAN.stage(wildcards.method, k, wildcards.task)  # raises for a stage not in the sequence
    if k == 1:
        return f"{RES}/base/manifest.json"
    return f"{stage_dir(wildcards.method, k - 1, PLAN.sequence[k - 2])}/manifest.json"


def train_split(dataset):
    return f"{DATA}/{dataset}/train.parquet"


def test_split(dataset):
    return f"{DATA}/{dataset}/test.parquet"


def eval_outputs(checkpoint_dir):
    return [f"{checkpoint_dir}/{b}.json" for b in BENCHMARKS]


def all_eval_files():
    files = eval_outputs(f"{RES}/evals/base")
    for m in PLAN.methods:
        for s in PLAN.stages(m):
            files += eval_outputs(f"{RES}/evals/{m}/{s.name}")
    return files


def print_summary():
    lf = Path(f"{RES}/tables/learning_forgetting.md")
    if lf.exists():
        from lmmcl.report.aggregate import format_summary

        print(format_summary("results", PLAN.report_plan()))
    gallery = Path(f"{RES}/gallery/gallery.html")
    if gallery.exists():
        print(f"answer gallery: {gallery} (+ one PNG per benchmark next to it)")
