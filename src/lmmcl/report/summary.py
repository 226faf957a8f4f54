"""Learning/forgetting summaries of an experiment: per run, mean and std over seeds, the Pareto
table, and the short terminal summary.

R matrices, tables and plots give the mean over seeds (std where there are several); R and
deltas of one seed come from :func:`lmmcl.report.scores.r_matrix` with ``seed=``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from .. import sweep as sweep_rules
from ..layout import Layout
from . import metrics
from .plan import normalize_plan
from .scores import collect_scores, r_matrix, seeds_in
from .tables import fmt

__all__ = ["summary_per_seed", "summary_table", "summary_std", "pareto_table", "mean_over_seeds",
           "std_over_seeds", "pareto_of", "format_summary"]


def summary_per_seed(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """Learning/forgetting metrics of every run: index (``method``, ``seed``), columns
    :func:`lmmcl.report.metrics.summary_columns` (Learning_1..T, Learning, HeldOut_1..T,
    HeldOut_final, HeldOut_mean, BWT, MaxForgetting), each computed on that seed's R matrix."""
    p = normalize_plan(plan)
    T = len(p["sequence"])
    rows = {}
    for m in p["methods"]:
        for seed in seeds_in(scores, p):
            R = r_matrix(scores, m, seed=seed if "seed" in scores else None)
            rows[(m, seed)] = metrics.summary(R, p["stage_targets"], p["held_out"])
    df = pd.DataFrame.from_dict(rows, orient="index", columns=metrics.summary_columns(T)).astype(float)
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "seed"])
    return df


def summary_table(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """The mean over seeds of :func:`summary_per_seed`: one row per method (index ``method``)."""
    p = normalize_plan(plan)
    return mean_over_seeds(summary_per_seed(scores, p), p)


def summary_std(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """The standard deviation over seeds (ddof 1) of :func:`summary_per_seed`; NaN with one seed."""
    p = normalize_plan(plan)
    return std_over_seeds(summary_per_seed(scores, p), p)


def pareto_table(scores: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    """One row per method: mean ± std over seeds of Learning and HeldOut_mean, whether it is on
    the Pareto front (no method learns at least as much and forgets at most as much, better on
    one), and for a sweep with an `lr_rule` the rule's verdict (lmmcl.sweep.pick_lrs)."""
    p = normalize_plan(plan)
    return pareto_of(summary_per_seed(scores, p), p)


# The same from a computed `summary_per_seed` (the report computes it once for every table and plot)
def mean_over_seeds(per_seed: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    df = per_seed.groupby(level="method", sort=False).mean()
    return df.reindex(normalize_plan(plan)["methods"]).rename_axis("method")


def std_over_seeds(per_seed: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    df = per_seed.groupby(level="method", sort=False).std(ddof=1)
    return df.reindex(normalize_plan(plan)["methods"]).rename_axis("method")


def pareto_of(per_seed: pd.DataFrame, plan: Mapping) -> pd.DataFrame:
    p = normalize_plan(plan)
    mean, std = mean_over_seeds(per_seed, p), std_over_seeds(per_seed, p)
    seeds = per_seed["Learning"].groupby(level="method", sort=False).count()
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


def format_summary(results_dir: str | os.PathLike, plan: Mapping) -> str:
    """Short terminal summary: one line per method (Learning, HeldOut_final,
    HeldOut_mean, BWT in pp) and the paths of the main table and the plots."""
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
        ref = p["paper"].get(m)
        study = (f"   study: {fmt(ref['learning'], signed=True)} / {fmt(ref['heldout'], signed=True)}" if ref else "")
        lines.append(f"{m:<{w}}  " + "  ".join(f"{fmt(row[c], signed=True):>13}" for c in cols) + study)
    lines.append("(pp; Learning = mean target gain, HeldOut = held-out change vs. base, BWT < 0 = forgetting)")
    if p["paper"]:
        lines.append(f"(study: its headline Δ learning / Δ held-out of the same recipe, {p['paper_source']})")
    layout = Layout(p["experiment"], root=results_dir)
    lines += [f"table: {layout.table('learning_forgetting', ext)}" for ext in ("md", "csv")]
    lines.append(f"table: {layout.table('comparisons', 'md')} (recipe against recipe, 95 % intervals)")
    lines += [f"plot:  {f}" for f in layout.report_files(p["methods"])["plots"]]
    return "\n".join(lines)
