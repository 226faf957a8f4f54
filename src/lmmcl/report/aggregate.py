"""Collect per-checkpoint evaluation JSONs into tables, metrics and plots.

Input layout (``results_dir`` is the results *root*, the experiment is a sub-folder)::

    <results_dir>/<experiment>/evals/base/<benchmark>.json                   # stage 0, every method
    <results_dir>/<experiment>/evals/<method>/stage<k>_<task>/<benchmark>.json  # k = 1..T

Outputs of :func:`write_report` (see :func:`report_outputs`)::

    <results_dir>/<experiment>/scores.csv
    <results_dir>/<experiment>/report_plan.json        # the plan (read by lmmcl.report.across)
    <results_dir>/<experiment>/tables/R_<method>.csv / .md / .tex
    <results_dir>/<experiment>/tables/deltas_<method>.csv / .md / .tex   # R[i][b] − R[0][b]
    <results_dir>/<experiment>/tables/learning_forgetting.csv / .md / .tex
    <results_dir>/<experiment>/plots/learning_vs_heldout.png
    <results_dir>/<experiment>/plots/heldout_per_stage.png
    <results_dir>/<experiment>/plots/target_per_stage.png
    <results_dir>/<experiment>/plots/R_heatmap_<method>.png

The plan is a plain dict::

    {"experiment": str, "methods": [str], "sequence": [task, ...],      # stage 1..T
     "stage_targets": {task: benchmark},   # default: the task name itself
     "target": [...], "held_out": [...], "extra": [...],                  # benchmark groups
     "chance": {benchmark: float}}                                        # 0-100
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from . import metrics
from .metrics import DEFINITIONS
from .tables import (
    atomic_write_csv,
    atomic_write_text,
    deltas_markdown,
    deltas_matrix,
    fmt,
    latex_table,
    r_matrix_markdown,
    summary_markdown,
)

__all__ = [
    "SCORE_COLUMNS",
    "MISSING_METRIC",
    "normalize_plan",
    "stage_dir",
    "stage_labels",
    "collect_scores",
    "r_matrix",
    "summary_table",
    "report_outputs",
    "write_report",
    "format_summary",
]

log = logging.getLogger(__name__)

#: File name of the plan written next to scores.csv (read by :mod:`lmmcl.report.across`).
PLAN_FILE = "report_plan.json"
#: Columns of the long score table (scores.csv), in order.
SCORE_COLUMNS = ["method", "stage", "task", "benchmark", "metric", "score"]
#: ``metric`` value of a row whose evaluation JSON does not exist (its score is NaN).
MISSING_METRIC = "missing"
BASE_TASK = "base"


def _dedup(xs) -> list:
    return list(dict.fromkeys(xs))


def normalize_plan(plan: Mapping) -> dict:
    """Validated copy of ``plan`` with defaults filled in.

    Returns keys ``experiment, methods, sequence, stage_targets`` (list aligned with
    ``sequence``: t_1..t_T), ``target, held_out, extra, chance, benchmarks`` (all
    benchmarks in group order target → held-out → extra, deduplicated) and ``groups``.
    Stage-target benchmarks missing from ``target`` are appended to it.  Idempotent.
    """
    exp = plan.get("experiment")
    if not isinstance(exp, str) or not exp:
        raise ValueError("plan['experiment'] must be a non-empty string")
    methods = [str(m) for m in plan.get("methods") or []]
    if not methods:
        raise ValueError("plan['methods'] must list at least one method")
    if len(set(methods)) != len(methods):
        raise ValueError(f"duplicate methods in plan: {methods}")
    if BASE_TASK in methods:
        raise ValueError(f"'{BASE_TASK}' is reserved for the stage-0 evaluations, not a method name")
    seq = [str(t) for t in plan.get("sequence") or []]
    if not seq:
        raise ValueError("plan['sequence'] must list at least one task")
    st = plan.get("stage_targets") or {}
    if isinstance(st, Mapping):
        stage_targets = [str(st.get(t, t)) for t in seq]
    else:  # already normalised (list aligned with the sequence)
        stage_targets = [str(t) for t in st]
        if len(stage_targets) != len(seq):
            raise ValueError("plan['stage_targets'] as a list must have one entry per stage")
    target = _dedup([str(b) for b in plan.get("target") or []] + stage_targets)
    held_out = _dedup(str(b) for b in plan.get("held_out") or [] if str(b) not in target)
    extra = _dedup(
        str(b) for b in plan.get("extra") or [] if str(b) not in target and str(b) not in held_out
    )
    chance = {str(k): float(v) for k, v in (plan.get("chance") or {}).items() if v is not None}
    return {
        "experiment": exp,
        "methods": methods,
        "sequence": seq,
        "stage_targets": stage_targets,
        "target": target,
        "held_out": held_out,
        "extra": extra,
        "chance": chance,
        "benchmarks": target + held_out + extra,
        "groups": {"target": target, "held-out": held_out, "extra": extra},
    }


def stage_dir(k: int, task: str) -> str:
    """Folder name of stage ``k`` (``base`` for 0, else ``stage<k>_<task>``)."""
    return BASE_TASK if k == 0 else f"stage{k}_{task}"


def stage_labels(plan: Mapping) -> list[str]:
    """Row labels of the R tables: ``["0 base", "1 <task_1>", ..., "T <task_T>"]``."""
    seq = normalize_plan(plan)["sequence"]
    return [f"0 {BASE_TASK}"] + [f"{i} {t}" for i, t in enumerate(seq, start=1)]


def _exp_dir(results_dir: str | os.PathLike, plan: Mapping) -> Path:
    return Path(results_dir) / normalize_plan(plan)["experiment"]


def _read_eval(path: Path, benchmark: str) -> tuple[str, float] | None:
    """(metric, score) from one evaluation JSON, or None if the file does not exist."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if data.get("benchmark") not in (None, benchmark):
        raise ValueError(f"{path}: file is for benchmark {data.get('benchmark')!r}, expected {benchmark!r}")
    score = data.get("score")
    try:
        score = float("nan") if score is None else float(score)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: score {score!r} is not a number") from e
    return str(data.get("metric") or ""), score


def collect_scores(results_dir: str | os.PathLike, plan: Mapping) -> pd.DataFrame:
    """Long score table, columns :data:`SCORE_COLUMNS`: one row per (method, stage, benchmark).

    Stage 0 (task ``"base"``, read from ``evals/base``) is repeated for every method so
    each method's R matrix has its row 0.  A missing JSON gives a row with score NaN and
    metric ``"missing"``; a ``null`` score gives NaN with the JSON's metric.  The list of
    missing files is in ``df.attrs["missing"]``.  Rows are ordered method → stage →
    benchmark (target, held-out, extra).  A corrupt JSON, or one for another benchmark,
    raises ``ValueError``.
    """
    p = normalize_plan(plan)
    evals = _exp_dir(results_dir, p) / "evals"
    cache: dict[Path, tuple[str, float] | None] = {}
    rows, missing = [], []
    for m in p["methods"]:
        for k, task in enumerate([BASE_TASK] + p["sequence"]):
            folder = evals / BASE_TASK if k == 0 else evals / m / stage_dir(k, task)
            for b in p["benchmarks"]:
                f = folder / f"{b}.json"
                if f not in cache:
                    cache[f] = _read_eval(f, b)
                    if cache[f] is None:
                        missing.append(str(f))
                got = cache[f]
                metric, score = (MISSING_METRIC, float("nan")) if got is None else got
                rows.append((m, k, task, b, metric, score))
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    df["stage"] = df["stage"].astype(int)
    df["score"] = df["score"].astype(float)
    df.attrs["missing"] = missing
    if missing:
        log.warning("%d evaluation file(s) missing, e.g. %s", len(missing), missing[0])
    return df


def r_matrix(scores: pd.DataFrame, method: str) -> pd.DataFrame:
    """R matrix of one method: index = stage 0..T (int, named ``stage``), columns = benchmarks.

    Columns keep the order of ``scores`` (target, held-out, extra for
    :func:`collect_scores` output); values are floats, NaN = missing.  Use
    :func:`stage_labels` for the human-readable row names.
    """
    sub = scores[scores["method"] == method]
    if sub.empty:
        raise KeyError(f"no scores for method {method!r}")
    order = _dedup(sub["benchmark"])
    R = sub.pivot(index="stage", columns="benchmark", values="score")
    R = R.reindex(columns=order).sort_index().astype(float)
    R.index = R.index.astype(int)
    R.index.name = "stage"
    R.columns.name = None
    return R


def summary_table(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """Learning/forgetting metrics, one row per method (index ``method``), columns
    :func:`lmmcl.report.metrics.summary_columns` (Learning_1..T, Learning, HeldOut_1..T,
    HeldOut_final, HeldOut_mean, BWT, MaxForgetting)."""
    p = normalize_plan(plan)
    T = len(p["sequence"])
    rows = {}
    for m in p["methods"]:
        R = r_matrix(scores, m)
        rows[m] = metrics.summary(R, p["stage_targets"], p["held_out"])
    df = pd.DataFrame.from_dict(rows, orient="index", columns=metrics.summary_columns(T)).astype(float)
    df.index.name = "method"
    return df


def _n_eval_files(scores: pd.DataFrame) -> int:
    """Number of distinct evaluation files behind ``scores`` (base rows are shared)."""
    return int((scores["stage"] > 0).sum() + scores.loc[scores["stage"] == 0, "benchmark"].nunique())


def _metric_names(scores: pd.DataFrame) -> dict[str, str]:
    ok = scores[(scores["metric"] != MISSING_METRIC) & (scores["metric"] != "")]
    return ok.groupby("benchmark", sort=False)["metric"].first().to_dict()


def report_outputs(results_dir: str | os.PathLike, plan: Mapping) -> dict[str, list[Path]]:
    """Paths :func:`write_report` writes (e.g. for Snakemake ``output:``), grouped as
    ``{"scores": [scores.csv, report_plan.json], "tables": [...], "plots": [...]}``."""
    p = normalize_plan(plan)
    exp = _exp_dir(results_dir, p)
    tables = []
    for m in p["methods"]:
        tables += [exp / "tables" / f"R_{m}.{ext}" for ext in ("csv", "md", "tex")]
        tables += [exp / "tables" / f"deltas_{m}.{ext}" for ext in ("csv", "md", "tex")]
    tables += [exp / "tables" / f"learning_forgetting.{ext}" for ext in ("csv", "md", "tex")]
    plots = [
        exp / "plots" / "learning_vs_heldout.png",
        exp / "plots" / "heldout_per_stage.png",
        exp / "plots" / "target_per_stage.png",
    ]
    plots += [exp / "plots" / f"R_heatmap_{m}.png" for m in p["methods"]]
    return {"scores": [exp / "scores.csv", exp / PLAN_FILE], "tables": tables, "plots": plots}


def write_report(results_dir: str | os.PathLike, plan: Mapping) -> dict[str, list[Path]]:
    """Collect scores and write every table and plot (atomically); returns the paths
    written, same structure as :func:`report_outputs`."""
    p = normalize_plan(plan)
    out = report_outputs(results_dir, p)
    scores = collect_scores(results_dir, p)
    written: dict[str, list[Path]] = {"scores": [], "tables": [], "plots": []}

    written["scores"].append(atomic_write_csv(scores, out["scores"][0], index=False))
    written["scores"].append(atomic_write_text(out["scores"][1], json.dumps(p, indent=2) + "\n"))

    from . import plots  # lazy: plots imports this module

    labels = stage_labels(p)
    exp = _exp_dir(results_dir, p)
    tdir = exp / "tables"
    T = len(p["sequence"])
    target_cells = {(labels[i], t) for i, t in enumerate(p["stage_targets"], start=1)}  # R[i][t_i]
    heatmaps = []
    for m in p["methods"]:
        R = r_matrix(scores, m).reindex(index=range(T + 1), columns=p["benchmarks"])
        R.index.name = "stage"
        csv = R.copy()
        csv.insert(0, "task", [labels[i].split(" ", 1)[1] for i in csv.index])
        written["tables"].append(atomic_write_csv(csv.round(4), tdir / f"R_{m}.csv"))
        md = r_matrix_markdown(
            R, method=m, experiment=p["experiment"], stage_labels=labels,
            groups=p["groups"], stage_targets=p["stage_targets"], chance=p["chance"],
        )
        written["tables"].append(atomic_write_text(tdir / f"R_{m}.md", md))
        shown = R.set_axis(labels, axis=0)
        tex = latex_table(
            shown, index_label="stage",
            caption=f"R matrix of method {m} (experiment {p['experiment']}): score (%) of the checkpoint "
                    "after each stage (0 = base) on each benchmark; bold = target of that stage; "
                    "n/a = evaluation missing; last row = chance.",
            label=f"tab:R_{p['experiment']}_{m}", bold=target_cells,
            extra_rows=[["chance"] + [fmt(p["chance"].get(b)) for b in R.columns]],
        )
        written["tables"].append(atomic_write_text(tdir / f"R_{m}.tex", tex))

        D = deltas_matrix(R)
        dcsv = D.copy()
        dcsv.insert(0, "task", [labels[i].split(" ", 1)[1] for i in dcsv.index])
        written["tables"].append(atomic_write_csv(dcsv.round(4), tdir / f"deltas_{m}.csv"))
        written["tables"].append(atomic_write_text(tdir / f"deltas_{m}.md", deltas_markdown(
            D, method=m, experiment=p["experiment"], stage_labels=labels,
            groups=p["groups"], stage_targets=p["stage_targets"],
        )))
        written["tables"].append(atomic_write_text(tdir / f"deltas_{m}.tex", latex_table(
            D.set_axis(labels[1:], axis=0), index_label="stage", signed=True,
            caption=f"Per-benchmark change vs. base of method {m} (experiment {p['experiment']}): "
                    "R[i][b] − R[0][b] in pp; bold = target of that stage; n/a = evaluation missing.",
            label=f"tab:deltas_{p['experiment']}_{m}", bold=target_cells,
        )))
        heatmaps.append(plots.plot_r_heatmap(
            R, exp / "plots" / f"R_heatmap_{m}.png", method=m, stage_labels=labels,
            stage_targets=p["stage_targets"], groups=p["groups"],
        ))

    summ = summary_table(scores, p)
    written["tables"].append(atomic_write_csv(summ.round(4), tdir / "learning_forgetting.csv"))
    md = summary_markdown(
        summ, experiment=p["experiment"], sequence=p["sequence"], stage_targets=p["stage_targets"],
        held_out=p["held_out"], chance=p["chance"], metric_names=_metric_names(scores),
        n_missing=len(scores.attrs.get("missing", [])), n_total=_n_eval_files(scores),
    )
    written["tables"].append(atomic_write_text(tdir / "learning_forgetting.md", md))
    written["tables"].append(atomic_write_text(tdir / "learning_forgetting.tex", latex_table(
        summ, index_label="method", signed=True,
        caption=f"Learning and forgetting (pp) of experiment {p['experiment']} "
                f"({T} stages: {', '.join(p['sequence'])}); held-out set H = {', '.join(p['held_out']) or 'none'}. "
                "n/a = not computable (missing evaluation).",
        label=f"tab:learning_forgetting_{p['experiment']}",
        notes=["R[i][b] = score (%) after stage i on benchmark b; stage 0 = base; t_i = target of stage i."]
        + list(DEFINITIONS.values()),
    )))

    pl = dict(zip(["lvh", "held", "target"], out["plots"]))
    written["plots"].append(plots.plot_learning_vs_heldout(summ, pl["lvh"]))
    written["plots"].append(plots.plot_heldout_per_stage(scores, p, pl["held"]))
    written["plots"].append(plots.plot_target_per_stage(scores, p, pl["target"]))
    written["plots"] += heatmaps
    return written


def format_summary(results_dir: str | os.PathLike, plan: Mapping) -> str:
    """Short terminal summary: one line per method (Learning, HeldOut_final,
    HeldOut_mean, BWT in pp) and the paths of the main table."""
    p = normalize_plan(plan)
    scores = collect_scores(results_dir, p)
    summ = summary_table(scores, p)
    n_missing = len(scores.attrs.get("missing", []))
    cols = ["Learning", "HeldOut_final", "HeldOut_mean", "BWT"]
    w = max(6, *(len(m) for m in summ.index))
    lines = [
        f"experiment {p['experiment']}: {len(p['methods'])} method(s) x {len(p['sequence'])} stage(s)"
        + (f", {n_missing} evaluation(s) missing" if n_missing else ""),
        f"{'method':<{w}}  " + "  ".join(f"{c:>13}" for c in cols),
    ]
    for m, row in summ.iterrows():
        lines.append(f"{m:<{w}}  " + "  ".join(f"{fmt(row[c], signed=True):>13}" for c in cols))
    lines.append("(pp; Learning = mean target gain, HeldOut = held-out change vs. base, BWT < 0 = forgetting)")
    outputs = report_outputs(results_dir, p)
    tables = [t for t in outputs["tables"] if t.stem == "learning_forgetting" and t.suffix in (".csv", ".md")]
    lines += [f"table: {t}" for t in reversed(tables)]
    lines += [f"plot:  {f}" for f in outputs["plots"]]
    return "\n".join(lines)
