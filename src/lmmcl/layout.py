"""Where every file of an experiment lives: the one home of the results and data layouts.

    results/<experiment>/
      seed<s>/base/manifest.json + model/                 stage 0 of run seed s (shared by every method)
      seed<s>/<method>/stage<k>_<task>/manifest.json      stage k of a method (+ model/, finetuned/)
      seed<s>/evals/base/<benchmark>.json                 evaluation of the base (+ .samples.jsonl)
      seed<s>/evals/<method>/stage<k>_<task>/<benchmark>.json
      logs/seed<s>/...                                     one log per job of a run
      logs/<name>.log                                      the jobs over every seed (aggregate, gallery)
      scores.csv, report_plan.json, tables/, plots/        aggregated over every seed (`lmmcl report`)
      gallery/                                             answer gallery (`lmmcl gallery`)
      probes/                                              analysis probes

    <data.root>/<dataset>/<split>.parquet + report.json  every dataset split (DataLayout)
    <data.root>/downloads/<dataset>/                      raw downloads of a conversion
    <data.root>/logs/<name>.log

The Snakemake rules, the report, the gallery and the probes all build their paths here. Every
method takes strings, so passing Snakemake wildcards (`"{seed}"`, `"{method}"`) gives the rules'
path patterns.
"""
from __future__ import annotations

from pathlib import Path

BASE = "base"
MANIFEST = "manifest.json"
MODEL_DIR = "model"            # a stage's checkpoint, next to its manifest
FINETUNED_DIR = "finetuned"    # WiSE-FT: the stage as trained, before its merge
TABLE_FORMATS = ("csv", "md", "tex")
# the figures of `lmmcl report` besides one R heatmap per method (caption: workflow/report/<name>.rst)
PLOTS = ("learning_vs_heldout", "heldout_per_stage", "target_per_stage", "pareto")
SOURCE_REPORT = "report.json"  # written last by a dataset conversion
SCORES_FILE = "scores.csv"     # the long score table of an experiment
PLAN_FILE = "report_plan.json"  # the report plan next to it (read by lmmcl.report.across)


def stage_name(k, task) -> str:
    """Folder name of stage k: `base` for 0, else `stage<k>_<task>`."""
    return BASE if str(k) == "0" else f"stage{k}_{task}"


class Layout:
    def __init__(self, experiment: str, root: str | Path = "results"):
        self.root = str(Path(root))
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

    def finetuned_manifest(self, seed, method, k, task) -> str:
        """WiSE-FT: the manifest of stage k as trained, before it is merged with the previous model."""
        return f"{self.stage_dir(seed, method, k, task)}/{FINETUNED_DIR}/{MANIFEST}"

    def eval_dir(self, seed, method, k, task) -> str:
        """Evaluations of stage k of a method; k = 0: the base's, shared by every method."""
        if str(k) == "0":
            return f"{self.run(seed)}/evals/{BASE}"
        return f"{self.run(seed)}/evals/{method}/{stage_name(k, task)}"

    def eval_file(self, seed, method, k, task, benchmark) -> str:
        return f"{self.eval_dir(seed, method, k, task)}/{eval_file_name(benchmark)}"

    def eval_files(self, seed, method, k, task, benchmarks) -> list[str]:
        return [self.eval_file(seed, method, k, task, b) for b in benchmarks]

    def eval_samples(self, seed, method, k, task, benchmark) -> str:
        """Every evaluated example of one benchmark (written before its JSON)."""
        return f"{self.eval_dir(seed, method, k, task)}/{samples_file_name(benchmark)}"

    def log(self, seed, *parts) -> str:
        return "/".join([f"{self.exp}/logs/seed{seed}", *map(str, parts)]) + ".log"

    def eval_log(self, seed, method, k, task) -> str:
        """Log of the evaluation job of stage k (k = 0: the base's)."""
        return self.log(seed, "evals", BASE) if str(k) == "0" else self.log(seed, "evals", method, stage_name(k, task))

    def probe_log(self, seed, name: str) -> str:
        return self.log(seed, "probes", name)

    def stage_log(self, seed, method, k, task, step: str = "") -> str:
        """Log of a stage's job; `step`: `finetuned`, `merge` (WiSE-FT) or `` (the training)."""
        return self.log(seed, method, stage_name(k, task) + (f".{step}" if step else ""))

    # ---- aggregated over seeds -----------------------------------------------------------------
    def exp_log(self, name: str) -> str:
        return f"{self.exp}/logs/{name}.log"

    @property
    def scores(self) -> str:
        return f"{self.exp}/{SCORES_FILE}"

    @property
    def plan_file(self) -> str:
        return f"{self.exp}/{PLAN_FILE}"

    def table(self, name: str, ext: str) -> str:
        return f"{self.exp}/tables/{name}.{ext}"

    def plot(self, name: str) -> str:
        return f"{self.exp}/plots/{name}.png"

    def r_table(self, method: str, ext: str) -> str:
        return self.table(f"R_{method}", ext)

    def deltas_table(self, method: str, ext: str) -> str:
        return self.table(f"deltas_{method}", ext)

    def r_ci_table(self, method: str) -> str:
        """95 % interval of every R cell (lmmcl.report.intervals)."""
        return self.table(f"R_{method}_ci", "csv")

    def deltas_ci_table(self, method: str) -> str:
        """Paired 95 % interval of every per-benchmark change vs. the base."""
        return self.table(f"deltas_{method}_ci", "csv")

    def heatmap(self, method: str) -> str:
        return self.plot(f"R_heatmap_{method}")

    def report_files(self, methods) -> dict[str, list[str]]:
        """What `lmmcl report` writes, in its order: {"scores", "tables", "plots"}."""
        tables = []
        for m in methods:
            tables += [self.r_table(m, e) for e in TABLE_FORMATS] + [self.r_ci_table(m)]
            tables += [self.deltas_table(m, e) for e in TABLE_FORMATS] + [self.deltas_ci_table(m)]
        tables += [self.table("learning_forgetting", e) for e in TABLE_FORMATS]
        tables += [self.table("learning_forgetting_seeds", "csv")]
        # the 95 % intervals (lmmcl.report.intervals): of the table above, per seed, recipe against
        # recipe, and which items of every evaluation were paired
        tables += [self.table("learning_forgetting_ci", "csv"), self.table("learning_forgetting_seeds_ci", "csv")]
        tables += [self.table("comparisons", e) for e in TABLE_FORMATS]
        tables += [self.table("items", "csv")]
        tables += [self.table("pareto", e) for e in ("csv", "md")]
        plots = [self.plot(n) for n in PLOTS] + [self.heatmap(m) for m in methods]
        return {"scores": [self.scores, self.plan_file], "tables": tables, "plots": plots}

    @property
    def gallery_dir(self) -> str:
        return f"{self.exp}/gallery"

    def gallery_files(self, benchmarks) -> dict:
        return gallery_files(self.gallery_dir, benchmarks)

    @property
    def probes(self) -> str:
        return f"{self.exp}/probes"

    def probe(self, name: str, ext: str) -> str:
        return f"{self.probes}/{name}.{ext}"


def gallery_files(folder, benchmarks) -> dict:
    """What `lmmcl gallery` writes into `folder`: {"html", "json", "png": [one per benchmark]}."""
    return {"html": f"{folder}/gallery.html", "json": f"{folder}/gallery.json",
            "png": [f"{folder}/{b}.png" for b in benchmarks]}


class DataLayout:
    """Every dataset split under the data root (config `data.root`), in the data contract."""

    def __init__(self, root: str | Path = "data"):
        self.root = str(root)

    def dataset_dir(self, dataset) -> str:
        return f"{self.root}/{dataset}"

    def split(self, dataset, split) -> str:
        return f"{self.dataset_dir(dataset)}/{split_file(split)}"

    def report(self, dataset) -> str:
        """What a conversion did (counts, skipped items, source revision); written last."""
        return f"{self.dataset_dir(dataset)}/{SOURCE_REPORT}"

    def log(self, name) -> str:
        return f"{self.root}/logs/{name}.log"

    def downloads(self, dataset) -> str:
        """Raw downloads of a conversion (tarball and its extraction, fetched images), kept for reruns."""
        return f"{self.root}/downloads/{dataset}"


def eval_file_name(benchmark) -> str:
    """The JSON `lmmcl evaluate` writes per benchmark into its output folder (score, metric, n, ...)."""
    return f"{benchmark}.json"


def samples_file_name(benchmark) -> str:
    """Every evaluated example of a benchmark, next to its JSON."""
    return f"{benchmark}.samples.jsonl"


def split_file(split) -> str:
    """File name of a split inside its dataset folder."""
    return f"{split}.parquet"
