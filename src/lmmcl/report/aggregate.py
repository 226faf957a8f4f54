"""Collect per-checkpoint evaluation JSONs into tables, metrics and plots.

Input layout (``results_dir`` is the results *root*, the experiment is a sub-folder;
:mod:`lmmcl.layout`), for every run seed s::

    <results_dir>/<experiment>/seed<s>/evals/base/<benchmark>.json                   # stage 0, every method
    <results_dir>/<experiment>/seed<s>/evals/<method>/stage<k>_<task>/<benchmark>.json  # k = 1..T

Outputs of :func:`write_report` (see :func:`report_outputs`)::

    <results_dir>/<experiment>/scores.csv              # one row per (seed, method, stage, benchmark)
    <results_dir>/<experiment>/report_plan.json        # the plan (read by lmmcl.report.across)
    <results_dir>/<experiment>/tables/R_<method>.csv / .md / .tex
    <results_dir>/<experiment>/tables/deltas_<method>.csv / .md / .tex   # R[i][b] − R[0][b]
    <results_dir>/<experiment>/tables/learning_forgetting.csv / .md / .tex   # mean (± std) over seeds
    <results_dir>/<experiment>/tables/learning_forgetting_seeds.csv          # one row per (method, seed)
    <results_dir>/<experiment>/tables/pareto.csv / .md  # Learning vs HeldOut_mean, front, sweep lr rule
    <results_dir>/<experiment>/plots/pareto.png
    <results_dir>/<experiment>/plots/learning_vs_heldout.png
    <results_dir>/<experiment>/plots/heldout_per_stage.png
    <results_dir>/<experiment>/plots/target_per_stage.png
    <results_dir>/<experiment>/plots/R_heatmap_<method>.png

The plan is a plain dict::

    {"experiment": str, "seeds": [int], "methods": [str], "sequence": [task, ...],      # stage 1..T
     "stage_targets": {task: benchmark},   # default: the task name itself
     "target": [...], "held_out": [...], "extra": [...],                  # benchmark groups
     "chance": {benchmark: float},                                        # 0-100
     "sweep": {method: {grid key: value}}, "lr_rule": {"min_learning": pp} | None}   # optional

R matrices, tables and plots give the mean over seeds (std where there are several); R and
deltas of one seed come from :func:`r_matrix` with ``seed=``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .. import sweep as sweep_rules
from ..layout import Layout
from . import metrics
from .metrics import DEFINITIONS
from .tables import (
    atomic_write_csv,
    atomic_write_text,
    deltas_markdown,
    deltas_matrix,
    fmt,
    latex_table,
    pareto_markdown,
    r_matrix_markdown,
    summary_markdown,
)

__all__ = [
    "SCORE_COLUMNS",
    "MISSING_METRIC",
    "normalize_plan",
    "stage_labels",
    "collect_scores",
    "r_matrix",
    "summary_table",
    "summary_per_seed",
    "summary_std",
    "pareto_table",
    "report_outputs",
    "write_report",
    "format_summary",
]

log = logging.getLogger(__name__)

#: File name of the plan written next to scores.csv (read by :mod:`lmmcl.report.across`).
PLAN_FILE = "report_plan.json"
#: Columns of the long score table (scores.csv), in order.
SCORE_COLUMNS = ["seed", "method", "stage", "task", "benchmark", "metric", "score"]
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
    seeds = [int(x) for x in plan.get("seeds") or [0]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds in plan: {seeds}")
    return {
        "experiment": exp,
        "seeds": seeds,
        "methods": methods,
        "sequence": seq,
        "stage_targets": stage_targets,
        "target": target,
        "held_out": held_out,
        "extra": extra,
        "chance": chance,
        "benchmarks": target + held_out + extra,
        "groups": {"target": target, "held-out": held_out, "extra": extra},
        "sweep": {str(m): dict(v) for m, v in (plan.get("sweep") or {}).items()},
        "lr_rule": dict(plan["lr_rule"]) if plan.get("lr_rule") else None,
    }


def stage_labels(plan: Mapping) -> list[str]:
    """Row labels of the R tables: ``["0 base", "1 <task_1>", ..., "T <task_T>"]``."""
    seq = normalize_plan(plan)["sequence"]
    return [f"0 {BASE_TASK}"] + [f"{i} {t}" for i, t in enumerate(seq, start=1)]


def _exp_dir(results_dir: str | os.PathLike, plan: Mapping) -> Path:
    return Path(results_dir) / normalize_plan(plan)["experiment"]


def _layout(results_dir: str | os.PathLike, plan: Mapping) -> Layout:
    return Layout(normalize_plan(plan)["experiment"], root=results_dir)


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
    """Long score table, columns :data:`SCORE_COLUMNS`: one row per (seed, method, stage, benchmark).

    Stage 0 (task ``"base"``, read from the seed's ``evals/base``) is repeated for every method
    so each method's R matrix has its row 0.  A missing JSON gives a row with score NaN and
    metric ``"missing"``; a ``null`` score gives NaN with the JSON's metric.  The list of
    missing files is in ``df.attrs["missing"]``.  Rows are ordered seed → method → stage →
    benchmark (target, held-out, extra).  A corrupt JSON, or one for another benchmark,
    raises ``ValueError``.
    """
    p = normalize_plan(plan)
    layout = _layout(results_dir, p)
    cache: dict[str, tuple[str, float] | None] = {}
    rows, missing = [], []
    for seed in p["seeds"]:
        for m in p["methods"]:
            for k, task in enumerate([BASE_TASK] + p["sequence"]):
                for b in p["benchmarks"]:
                    f = layout.eval_file(seed, m, k, task, b)
                    if f not in cache:
                        cache[f] = _read_eval(Path(f), b)
                        if cache[f] is None:
                            missing.append(f)
                    got = cache[f]
                    metric, score = (MISSING_METRIC, float("nan")) if got is None else got
                    rows.append((seed, m, k, task, b, metric, score))
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    df["seed"] = df["seed"].astype(int)
    df["stage"] = df["stage"].astype(int)
    df["score"] = df["score"].astype(float)
    df.attrs["missing"] = missing
    if missing:
        log.warning("%d evaluation file(s) missing, e.g. %s", len(missing), missing[0])
    return df


def r_matrix(scores: pd.DataFrame, method: str, seed: int | None = None) -> pd.DataFrame:
    """R matrix of one method: index = stage 0..T (int, named ``stage``), columns = benchmarks.

    ``seed``: that run only; None: the mean over the seeds in ``scores`` (a cell missing in
    one seed is the mean of the others; NaN only where every seed misses it).  Columns keep
    the order of ``scores`` (target, held-out, extra for :func:`collect_scores` output);
    values are floats, NaN = missing.  Use :func:`stage_labels` for the row names.
    """
    sub = scores[scores["method"] == method]
    if seed is not None and "seed" in sub:
        sub = sub[sub["seed"] == seed]
    if sub.empty:
        raise KeyError(f"no scores for method {method!r}" + (f" and seed {seed}" if seed is not None else ""))
    order = _dedup(sub["benchmark"])
    R = sub.pivot_table(index="stage", columns="benchmark", values="score", aggfunc="mean", dropna=False)
    R = R.reindex(columns=order).sort_index().astype(float)
    R.index = R.index.astype(int)
    R.index.name = "stage"
    R.columns.name = None
    return R


def _seeds_in(scores: pd.DataFrame, p: Mapping) -> list[int]:
    return sorted(scores["seed"].unique().tolist()) if "seed" in scores else [p["seeds"][0]]


def summary_per_seed(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """Learning/forgetting metrics of every run: index (``method``, ``seed``), columns
    :func:`lmmcl.report.metrics.summary_columns` (Learning_1..T, Learning, HeldOut_1..T,
    HeldOut_final, HeldOut_mean, BWT, MaxForgetting), each computed on that seed's R matrix."""
    p = normalize_plan(plan)
    T = len(p["sequence"])
    rows = {}
    for m in p["methods"]:
        for seed in _seeds_in(scores, p):
            R = r_matrix(scores, m, seed=seed if "seed" in scores else None)
            rows[(m, seed)] = metrics.summary(R, p["stage_targets"], p["held_out"])
    df = pd.DataFrame.from_dict(rows, orient="index", columns=metrics.summary_columns(T)).astype(float)
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "seed"])
    return df


def summary_table(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """The mean over seeds of :func:`summary_per_seed`: one row per method (index ``method``)."""
    p = normalize_plan(plan)
    df = summary_per_seed(scores, p).groupby(level="method", sort=False).mean()
    return df.reindex(p["methods"]).rename_axis("method")


def summary_std(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """The standard deviation over seeds (ddof 1) of :func:`summary_per_seed`; NaN with one seed."""
    p = normalize_plan(plan)
    df = summary_per_seed(scores, p).groupby(level="method", sort=False).std(ddof=1)
    return df.reindex(p["methods"]).rename_axis("method")


def pareto_table(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """One row per method: mean ± std over seeds of Learning and HeldOut_mean, whether it is on
    the Pareto front (no method learns at least as much and forgets at most as much, better on
    one), and for a sweep with an `lr_rule` the rule's verdict (lmmcl.sweep.pick_lrs)."""
    p = normalize_plan(plan)
    mean, std = summary_table(scores, p), summary_std(scores, p)
    seeds = summary_per_seed(scores, p)["Learning"].groupby(level="method", sort=False).count()
    df = pd.DataFrame({
        "Learning": mean["Learning"], "Learning_std": std["Learning"],
        "HeldOut_mean": mean["HeldOut_mean"], "HeldOut_mean_std": std["HeldOut_mean"],
        "seeds": seeds.reindex(mean.index).astype(int),
    })
    front = sweep_rules.pareto_front({m: (r.Learning, r.HeldOut_mean) for m, r in df.iterrows()})
    df["pareto"] = [m in front for m in df.index]
    for key in sorted({k for point in p["sweep"].values() for k in point}):
        df[key] = [p["sweep"].get(m, {}).get(key) for m in df.index]
    if p["lr_rule"] and p["sweep"]:
        verdict = sweep_rules.pick_lrs(p["sweep"], df["Learning"].to_dict(), p["lr_rule"])
        df["lr_rule"] = [verdict.get(m, "") for m in df.index]
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
    tables += [exp / "tables" / "learning_forgetting_seeds.csv"]
    tables += [exp / "tables" / f"pareto.{ext}" for ext in ("csv", "md")]
    plots = [
        exp / "plots" / "learning_vs_heldout.png",
        exp / "plots" / "heldout_per_stage.png",
        exp / "plots" / "target_per_stage.png",
        exp / "plots" / "pareto.png",
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

    summ, std = summary_table(scores, p), summary_std(scores, p)
    both = pd.concat([summ, std.add_suffix("_std")], axis=1)
    both["seeds"] = len(p["seeds"])
    written["tables"].append(atomic_write_csv(both.round(4), tdir / "learning_forgetting.csv"))
    md = summary_markdown(
        summ, experiment=p["experiment"], sequence=p["sequence"], stage_targets=p["stage_targets"],
        held_out=p["held_out"], chance=p["chance"], metric_names=_metric_names(scores),
        n_missing=len(scores.attrs.get("missing", [])), n_total=_n_eval_files(scores),
        std_df=std, seeds=p["seeds"],
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

    written["tables"].append(atomic_write_csv(summary_per_seed(scores, p).round(4),
                                              tdir / "learning_forgetting_seeds.csv"))
    pareto = pareto_table(scores, p)
    written["tables"].append(atomic_write_csv(pareto.round(4), tdir / "pareto.csv"))
    written["tables"].append(atomic_write_text(tdir / "pareto.md", pareto_markdown(
        pareto, experiment=p["experiment"], seeds=p["seeds"], lr_rule=p["lr_rule"])))

    pl = dict(zip(["lvh", "held", "target", "pareto"], out["plots"]))
    written["plots"].append(plots.plot_learning_vs_heldout(summ, pl["lvh"], std_df=std))
    written["plots"].append(plots.plot_heldout_per_stage(scores, p, pl["held"]))
    written["plots"].append(plots.plot_target_per_stage(scores, p, pl["target"]))
    written["plots"].append(plots.plot_pareto(pareto, summary_per_seed(scores, p), pl["pareto"]))
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
