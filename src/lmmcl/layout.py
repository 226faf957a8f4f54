"""Where every file of an experiment lives: the one home of the results layout.

    results/<experiment>/
      seed<s>/base/manifest.json + model/                 stage 0 of run seed s (shared by every method)
      seed<s>/<method>/stage<k>_<task>/manifest.json      stage k of a method (+ model/, finetuned/)
      seed<s>/evals/base/<benchmark>.json                 evaluation of the base
      seed<s>/evals/<method>/stage<k>_<task>/<benchmark>.json
      logs/seed<s>/...                                     one log per job
      scores.csv, report_plan.json, tables/, plots/        aggregated over every seed
      probes/                                              analysis probes

The Snakemake rules and the report both build their paths here. Every function takes strings,
so passing Snakemake wildcards (`"{seed}"`, `"{method}"`) gives the rules' path patterns.
"""
from __future__ import annotations

from pathlib import Path

BASE = "base"
MANIFEST = "manifest.json"


def stage_name(k, task) -> str:
    """Folder name of stage k: `base` for 0, else `stage<k>_<task>`."""
    return BASE if str(k) == "0" else f"stage{k}_{task}"


class Layout:
    def __init__(self, experiment: str, root: str | Path = "results"):
        self.root = str(root)
        self.experiment = experiment
        self.exp = f"{self.root}/{experiment}"

    # ---- one run (seed) ------------------------------------------------------------------------
    def run(self, seed) -> str:
        return f"{self.exp}/seed{seed}"

    def base_manifest(self, seed) -> str:
        return f"{self.run(seed)}/{BASE}/{MANIFEST}"

    def stage_dir(self, seed, method, k, task) -> str:
        return f"{self.run(seed)}/{method}/{stage_name(k, task)}"

    def stage_manifest(self, seed, method, k, task) -> str:
        """Manifest of stage k (k = 0: the base, whatever the method)."""
        if str(k) == "0":
            return self.base_manifest(seed)
        return f"{self.stage_dir(seed, method, k, task)}/{MANIFEST}"

    def eval_dir(self, seed, method, k, task) -> str:
        """Evaluations of stage k of a method; k = 0: the base's, shared by every method."""
        if str(k) == "0":
            return f"{self.run(seed)}/evals/{BASE}"
        return f"{self.run(seed)}/evals/{method}/{stage_name(k, task)}"

    def eval_file(self, seed, method, k, task, benchmark) -> str:
        return f"{self.eval_dir(seed, method, k, task)}/{benchmark}.json"

    def log(self, seed, *parts) -> str:
        return "/".join([f"{self.exp}/logs/seed{seed}", *map(str, parts)]) + ".log"

    # ---- aggregated over seeds -----------------------------------------------------------------
    @property
    def scores(self) -> str:
        return f"{self.exp}/scores.csv"

    @property
    def plan_file(self) -> str:
        return f"{self.exp}/report_plan.json"

    def table(self, name: str, ext: str) -> str:
        return f"{self.exp}/tables/{name}.{ext}"

    def plot(self, name: str) -> str:
        return f"{self.exp}/plots/{name}.png"

    @property
    def probes(self) -> str:
        return f"{self.exp}/probes"
