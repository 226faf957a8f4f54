"""One learning/forgetting table across experiments (models, configs) from their score tables.

Each experiment folder ``<results>/<experiment>/`` written by :func:`lmmcl.report.aggregate.write_report`
holds ``scores.csv`` and ``report_plan.json`` (stage targets, held-out set).  For an older folder
without the plan file the plan is inferred from ``scores.csv`` (stage i's target = its task
name; held-out = every other benchmark) and the row is marked ``plan inferred``.
The model column comes from ``<experiment>/base/manifest.json`` when it exists.

Where an experiment folder holds ``tables/learning_forgetting_ci.csv`` (the 95 % intervals,
:mod:`lmmcl.report.intervals`) whose estimates are this table's numbers, each number gets its
interval (``<metric>_lo``, ``<metric>_hi``; † in the Markdown/LaTeX where it contains 0).

Outputs of :func:`write_across` (``out_dir`` chosen by the caller)::

    <out_dir>/learning_forgetting_across.csv / .md / .tex
    <out_dir>/learning_vs_heldout_across.png
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..layout import BASE, MANIFEST, PLAN_FILE, SCORES_FILE, Layout
from . import metrics, plots
from .plan import normalize_plan
from .scores import SCORE_COLUMNS
from .summary import summary_table
from .tables import atomic_write_csv, atomic_write_text, fmt_interval, latex_table, markdown_table

__all__ = ["ACROSS_COLUMNS", "INTERVAL_COLUMNS", "load_experiment", "across_table", "across_outputs", "write_across"]

#: Numeric columns of the cross-experiment table (after experiment, method, model).
ACROSS_COLUMNS = ["stages", *metrics.SUMMARY_SCALARS, "n_missing"]
#: the 95 % interval of every number, after `plan` (NaN where the experiment has none)
INTERVAL_COLUMNS = [f"{k}_{b}" for k in metrics.SUMMARY_SCALARS for b in ("lo", "hi")]
NAN = float("nan")


def _model_name(exp_dir: Path) -> str:
    layout = Layout(exp_dir.name, root=exp_dir.parent)
    runs = sorted(exp_dir.glob(str(Path(layout.base_manifest("*")).relative_to(layout.exp))))
    # a folder written before runs had seeds holds <experiment>/base/manifest.json
    f = runs[0] if runs else exp_dir / BASE / MANIFEST
    if not f.is_file():
        return "n/a"
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "n/a"
    family = m.get("family") or "?"
    ckpt = m.get("checkpoint")
    if ckpt and not m.get("checkpoint_is_local", True):
        return f"{family} ({ckpt})"
    return str(family)


def _infer_plan(scores: pd.DataFrame, experiment: str) -> dict:
    stages = scores[scores["stage"] > 0][["stage", "task"]].drop_duplicates().sort_values("stage")
    seq = stages["task"].tolist()
    benches = list(dict.fromkeys(scores["benchmark"]))
    missing = [t for t in seq if t not in benches]
    if missing:
        raise ValueError(
            f"{experiment}: no {PLAN_FILE}, and stage task(s) {missing} are not benchmarks, so the "
            "stage targets cannot be inferred; rerun `lmmcl report` for that experiment"
        )
    return {
        "experiment": experiment,
        "methods": list(dict.fromkeys(scores["method"])),
        "sequence": seq,
        "target": seq,
        "held_out": [b for b in benches if b not in seq],
    }


def load_experiment(exp_dir: str | os.PathLike) -> tuple[pd.DataFrame, dict, bool]:
    """(scores, normalised plan, plan_inferred) of one experiment folder."""
    exp_dir = Path(exp_dir)
    f = exp_dir / SCORES_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: run `lmmcl report` (rule aggregate) for {exp_dir} first")
    scores = pd.read_csv(f, dtype={"method": str, "task": str, "benchmark": str, "metric": str})
    if list(scores.columns) == SCORE_COLUMNS[1:]:  # written before runs had seeds: one run, seed 0
        scores.insert(0, "seed", 0)
    if list(scores.columns) != SCORE_COLUMNS:
        raise ValueError(f"{f}: columns {list(scores.columns)}, expected {SCORE_COLUMNS}")
    scores["score"] = scores["score"].astype(float)
    pf = exp_dir / PLAN_FILE
    if pf.is_file():
        return scores, normalize_plan(json.loads(pf.read_text(encoding="utf-8"))), False
    return scores, normalize_plan(_infer_plan(scores, exp_dir.name)), True


def across_table(exp_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per (experiment, method): model, number of stages, Learning, HeldOut_final,
    HeldOut_mean, BWT, MaxForgetting (pp) and the number of missing score cells.

    Index: (experiment, method).  Column ``plan`` says whether the plan was read or inferred.
    Two folders with the same experiment name are an error.
    """
    if not exp_dirs:
        raise ValueError("no experiment folders given")
    rows, seen = [], {}
    for d in map(Path, exp_dirs):
        scores, p, inferred = load_experiment(d)
        exp = p["experiment"]
        if exp in seen:
            raise ValueError(f"experiment {exp!r} appears twice: {seen[exp]} and {d}")
        seen[exp] = d
        model = _model_name(d)
        T = len(p["sequence"])
        summ = summary_table(scores, p)  # per seed, then the mean over seeds
        ci = _intervals(d, summ)
        for m in p["methods"]:
            s = summ.loc[m]
            n_missing = int(scores[(scores["method"] == m)]["score"].isna().sum())
            rows.append({
                "experiment": exp, "method": m, "model": model, "stages": T,
                **{k: float(s[k]) for k in metrics.SUMMARY_SCALARS},
                "n_missing": n_missing, "plan": "inferred" if inferred else "read",
                **{f"{k}_{b}": ci.get((m, k), (NAN, NAN))[i] for k in metrics.SUMMARY_SCALARS
                   for i, b in enumerate(("lo", "hi"))},
            })
    df = pd.DataFrame(rows).set_index(["experiment", "method"])
    return df[["model", *ACROSS_COLUMNS, "plan", *INTERVAL_COLUMNS]]



def _intervals(exp_dir: Path, summ: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """{(method, metric): (lo, hi)} from the experiment's learning_forgetting_ci.csv, for the numbers
    whose estimate there is the one recomputed here ({} without the file)."""
    f = exp_dir / "tables" / "learning_forgetting_ci.csv"
    if not f.is_file():
        return {}
    ci = pd.read_csv(f, dtype={"method": str, "metric": str})
    out = {}
    for r in ci.itertuples():
        if r.method in summ.index and r.metric in summ.columns:
            ours = float(summ.at[r.method, r.metric])
            if abs(ours - float(r.estimate)) <= 1e-3:
                out[(r.method, r.metric)] = (float(r.lo), float(r.hi))
    return out


def across_outputs(out_dir: str | os.PathLike) -> list[Path]:
    out = Path(out_dir)
    return [out / f"learning_forgetting_across.{e}" for e in ("csv", "md", "tex")] + [
        out / "learning_vs_heldout_across.png"
    ]


def write_across(exp_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """Write the cross-experiment table (CSV, Markdown, LaTeX) and its scatter plot; returns the paths."""
    df = across_table(exp_dirs)
    csv_p, md_p, tex_p, png_p = across_outputs(out_dir)
    atomic_write_csv(df.round(4), csv_p)
    flat = df.copy()
    flat.index = [f"{e} / {m}" for e, m in df.index]
    shown = flat.drop(columns=["plan", *INTERVAL_COLUMNS]).astype({"stages": int, "n_missing": int}).astype(
        {"stages": str, "n_missing": str})
    marks = {(i, k) for i, row in flat.iterrows() for k in metrics.SUMMARY_SCALARS
             if row[f"{k}_lo"] <= 0 <= row[f"{k}_hi"]}
    with_ci = bool(flat[INTERVAL_COLUMNS].notna().any().any())
    if with_ci:
        for k in ("Learning", "HeldOut_mean"):
            shown.insert(list(shown.columns).index("n_missing"), f"{k} 95 % interval",
                         [fmt_interval(lo, hi) for lo, hi in zip(flat[f"{k}_lo"], flat[f"{k}_hi"])])
    defs = [metrics.DEFINITIONS[k] for k in metrics.SUMMARY_SCALARS]
    inferred = sorted({e for (e, _), v in df["plan"].items() if v == "inferred"})
    md = [
        "# Learning and forgetting across experiments",
        "",
        "One row per experiment / method. R[i][b] = score (%, 0-100) after stage i on benchmark b "
        "(0 = base), t_i = target of stage i, H = held-out set of that experiment. All metrics in pp; "
        "`n/a` = not computable; `n_missing` = missing score cells of that method.",
        "",
        "## Definitions",
        "",
        *[f"- {d}" for d in defs],
        "",
    ]
    if inferred:
        md += [f"Plan inferred from scores.csv (no {PLAN_FILE}) for: {', '.join(inferred)}.", ""]
    if with_ci:
        md += ["95 % intervals: each experiment's own (tables/learning_forgetting_ci.csv: paired bootstrap over "
               "its test items; with several seeds, items and seeds together); † = the interval contains 0; "
               "every interval in the CSV (`<metric>_lo`, `<metric>_hi`).", ""]
    md += ["## Results (pp)", "", markdown_table(shown, index_label="experiment / method", signed=True, marks=marks)]
    atomic_write_text(md_p, "\n".join(md))
    atomic_write_text(tex_p, latex_table(
        shown, index_label="experiment / method", signed=True, marks=marks,
        caption="Learning and forgetting (pp) across experiments; n/a = not computable"
                + ("; † = its 95 % interval contains 0." if with_ci else "."),
        label="tab:learning_forgetting_across", notes=defs,
    ))
    summ = flat[["Learning", "HeldOut_mean"]]
    plots.plot_learning_vs_heldout(
        summ, png_p, title="Learning vs. forgetting across experiments\n(up-right = learns more, forgets less)",
        ci_df=flat[["Learning_lo", "Learning_hi", "HeldOut_mean_lo", "HeldOut_mean_hi"]] if with_ci else None,
    )
    return [csv_p, md_p, tex_p, png_p]
