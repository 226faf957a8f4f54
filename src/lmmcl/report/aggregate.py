"""`lmmcl report`: collect the evaluation JSONs of one experiment and write every table and plot.

Reads and writes the layout of :mod:`lmmcl.layout` (``results_dir`` is the results *root*, the
experiment a sub-folder); the pieces live by job:

* :mod:`lmmcl.report.plan` -- the report plan (what the experiment ran) and its normalisation;
* :mod:`lmmcl.report.scores` -- the long score table (scores.csv) and the R matrices;
* :mod:`lmmcl.report.summary` -- learning/forgetting per run, mean ± std, Pareto, terminal summary;
* :mod:`lmmcl.report.tables` / :mod:`lmmcl.report.plots` -- Markdown/LaTeX tables, figures.

Outputs of :func:`write_report` (:func:`report_outputs`, from :meth:`lmmcl.layout.Layout.report_files`)::

    <results_dir>/<experiment>/scores.csv              # one row per (seed, method, stage, benchmark)
    <results_dir>/<experiment>/report_plan.json        # the plan (read by lmmcl.report.across)
    <results_dir>/<experiment>/tables/R_<method>.csv / .md / .tex
    <results_dir>/<experiment>/tables/deltas_<method>.csv / .md / .tex   # R[i][b] − R[0][b]
    <results_dir>/<experiment>/tables/learning_forgetting.csv / .md / .tex   # mean (± std) over seeds
    <results_dir>/<experiment>/tables/learning_forgetting_seeds.csv          # one row per (method, seed)
    <results_dir>/<experiment>/tables/R_<method>_ci.csv, deltas_<method>_ci.csv  # 95 % interval of each cell
    <results_dir>/<experiment>/tables/learning_forgetting_ci.csv                 # ... of each table number
    <results_dir>/<experiment>/tables/learning_forgetting_seeds_ci.csv           # ... per (method, seed)
    <results_dir>/<experiment>/tables/comparisons.csv / .md / .tex  # recipe vs recipe, paired intervals
    <results_dir>/<experiment>/tables/items.csv        # per evaluation: which items were paired, or why not
    <results_dir>/<experiment>/tables/pareto.csv / .md  # Learning vs HeldOut_mean, front, sweep lr rule

The 95 % intervals (:mod:`lmmcl.report.intervals`) come from the per-item scores in the
``<benchmark>.samples.jsonl`` next to every evaluation JSON (written before it); ``md``/``tex``
tables mark a number whose interval contains 0 with a dagger, and the plots draw the intervals as
error bars.
    <results_dir>/<experiment>/plots/learning_vs_heldout.png, heldout_per_stage.png,
                                     target_per_stage.png, pareto.png, R_heatmap_<method>.png
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..atomic import atomic_write_json
from ..layout import Layout
from . import interval_tables as ict
from . import plots
from .intervals import Intervals, collect_items, compute_intervals
from .metrics import DEFINITIONS
from .plan import normalize_plan, stage_labels
from .scores import collect_scores, metric_names, n_eval_files, r_matrix
from .summary import mean_over_seeds, pareto_of, std_over_seeds, summary_per_seed
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
    target_cells,
)

__all__ = ["report_outputs", "write_report"]


def report_outputs(results_dir: str | os.PathLike, plan: Mapping) -> dict[str, list[Path]]:
    """Paths :func:`write_report` writes, grouped as ``{"scores": [scores.csv, report_plan.json],
    "tables": [...], "plots": [...]}``."""
    p = normalize_plan(plan)
    files = Layout(p["experiment"], root=results_dir).report_files(p["methods"])
    return {group: [Path(f) for f in paths] for group, paths in files.items()}


def write_report(results_dir: str | os.PathLike, plan: Mapping) -> dict[str, list[Path]]:
    """Collect scores and write every table and plot (atomically); returns the paths
    written, same structure as :func:`report_outputs`."""
    p = normalize_plan(plan)
    layout = Layout(p["experiment"], root=results_dir)
    scores = collect_scores(results_dir, p)
    written = {"scores": [atomic_write_csv(scores, layout.scores, index=False),
                          atomic_write_json(layout.plan_file, p)],
               "tables": [], "plots": []}
    per_seed = summary_per_seed(scores, p)  # every summary table and plot derives from it
    ci = intervals_of(results_dir, scores, per_seed, p)
    heatmaps = []
    for m in p["methods"]:
        written["tables"] += _write_method_tables(layout, scores, p, m, ci)
        heatmaps.append(_plot_heatmap(layout, scores, p, m))
    written["tables"] += _write_summary_tables(layout, scores, per_seed, p, ci)
    written["plots"] += _write_summary_plots(layout, scores, per_seed, p, ci) + heatmaps
    return {group: [Path(f) for f in paths] for group, paths in written.items()}


def intervals_of(results_dir: str | os.PathLike, scores: pd.DataFrame, per_seed: pd.DataFrame, p: dict) -> Intervals:
    """The 95 % intervals of the report (none with ``intervals.resamples: 0``)."""
    if p["intervals"]["resamples"] <= 0:
        return compute_intervals(scores, per_seed, p, None, note="intervals off: intervals.resamples is 0")
    return compute_intervals(scores, per_seed, p, collect_items(results_dir, p, scores))


def _r_of(scores: pd.DataFrame, p: dict, method: str) -> pd.DataFrame:
    """The method's mean R matrix over every stage 0..T and benchmark of the plan (NaN = missing)."""
    R = r_matrix(scores, method).reindex(index=range(len(p["sequence"]) + 1), columns=p["benchmarks"])
    R.index.name = "stage"
    return R


def _with_task_column(df: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "task", [labels[i].split(" ", 1)[1] for i in out.index])
    return out.round(4)


def _write_method_tables(layout: Layout, scores: pd.DataFrame, p: dict, m: str, ci: Intervals) -> list[Path]:
    """R_<m> and deltas_<m> as CSV, Markdown and LaTeX, each with its 95 % intervals (R_<m>_ci.csv,
    deltas_<m>_ci.csv, and a section of the Markdown / a second table of the LaTeX)."""
    labels, exp = stage_labels(p), p["experiment"]
    R = _r_of(scores, p, m)
    D = deltas_matrix(R)
    marks = ict.delta_marks(ci, m, labels)
    benches = list(R.columns)
    return [
        atomic_write_csv(_with_task_column(R, labels), layout.r_table(m, "csv")),
        atomic_write_text(layout.r_table(m, "md"), r_matrix_markdown(
            R, method=m, experiment=exp, stage_labels=labels,
            groups=p["groups"], stage_targets=p["stage_targets"], chance=p["chance"],
        ) + ict.cell_section(ci, m, labels, benches)),
        atomic_write_text(layout.r_table(m, "tex"), latex_table(
            R.set_axis(labels, axis=0), index_label="stage",
            caption=f"R matrix of method {m} (experiment {exp}): score (%) of the checkpoint "
                    "after each stage (0 = base) on each benchmark; bold = target of that stage; "
                    "n/a = evaluation missing; last row = chance.",
            label=f"tab:R_{exp}_{m}", bold=target_cells(labels, p["stage_targets"], R.columns),
            extra_rows=[["chance"] + [fmt(p["chance"].get(b)) for b in R.columns]],
        ) + ict.cell_tex(ci, m, labels, benches, exp)),
        atomic_write_csv(ci.cells[m].round(4), layout.r_ci_table(m), index=False),
        atomic_write_csv(_with_task_column(D, labels), layout.deltas_table(m, "csv")),
        atomic_write_text(layout.deltas_table(m, "md"), deltas_markdown(
            D, method=m, experiment=exp, stage_labels=labels,
            groups=p["groups"], stage_targets=p["stage_targets"], marks=marks,
        ) + ict.cell_section(ci, m, labels, benches, deltas=True)),
        atomic_write_text(layout.deltas_table(m, "tex"), latex_table(
            D.set_axis(labels[1:], axis=0), index_label="stage", signed=True,
            caption=f"Per-benchmark change vs. base of method {m} (experiment {exp}): "
                    "R[i][b] − R[0][b] in pp; bold = target of that stage; n/a = evaluation missing"
                    + ("; † = its paired 95 % interval contains 0." if ci.available else "."),
            label=f"tab:deltas_{exp}_{m}", bold=target_cells(labels, p["stage_targets"], D.columns), marks=marks,
        ) + ict.cell_tex(ci, m, labels, benches, exp, deltas=True)),
        atomic_write_csv(ci.deltas[m].round(4), layout.deltas_ci_table(m), index=False),
    ]


def _plot_heatmap(layout: Layout, scores: pd.DataFrame, p: dict, m: str) -> Path:
    return plots.plot_r_heatmap(_r_of(scores, p, m), layout.heatmap(m), method=m, stage_labels=stage_labels(p),
                                stage_targets=p["stage_targets"], groups=p["groups"])


def _write_summary_tables(layout: Layout, scores: pd.DataFrame, per_seed: pd.DataFrame, p: dict,
                          ci: Intervals) -> list[Path]:
    """learning_forgetting (mean ± std over seeds, † where the 95 % interval contains 0, the
    intervals; CSV, Markdown, LaTeX), the per-seed rows, the intervals as CSV, recipe against
    recipe, the items behind the intervals and the Pareto table."""
    summ, std = mean_over_seeds(per_seed, p), std_over_seeds(per_seed, p)
    both = pd.concat([summ, std.add_suffix("_std")], axis=1)
    both["seeds"] = len(p["seeds"])
    T, exp = len(p["sequence"]), p["experiment"]
    marks = ict.summary_marks(ci)
    md = summary_markdown(
        summ, experiment=exp, sequence=p["sequence"], stage_targets=p["stage_targets"],
        held_out=p["held_out"], chance=p["chance"], metric_names=metric_names(scores),
        n_missing=len(scores.attrs.get("missing", [])), n_total=n_eval_files(scores),
        std_df=std, seeds=p["seeds"], paper=p["paper"], paper_source=p["paper_source"],
        marks=marks, sections=[ict.summary_section(ci, list(summ.index), list(summ.columns))],
        bounds=(ci.wide("lo"), ci.wide("hi")) if ci.available else None,
    )
    tex = latex_table(
        summ, index_label="method", signed=True, marks=marks,
        caption=f"Learning and forgetting (pp) of experiment {exp} "
                f"({T} stages: {', '.join(p['sequence'])}); held-out set H = {', '.join(p['held_out']) or 'none'}. "
                "n/a = not computable (missing evaluation)"
                + ("; † = its 95 % interval contains 0." if ci.available else "."),
        label=f"tab:learning_forgetting_{exp}",
        notes=["R[i][b] = score (%) after stage i on benchmark b; stage 0 = base; t_i = target of stage i."]
        + list(DEFINITIONS.values()),
    ) + ict.summary_tex(ci, list(summ.index), list(summ.columns), exp)
    pareto = _pareto_with_intervals(per_seed, p, ci)
    return [
        atomic_write_csv(both.round(4), layout.table("learning_forgetting", "csv")),
        atomic_write_text(layout.table("learning_forgetting", "md"), md),
        atomic_write_text(layout.table("learning_forgetting", "tex"), tex),
        atomic_write_csv(per_seed.round(4), layout.table("learning_forgetting_seeds", "csv")),
        atomic_write_csv(ci.summary.round(4), layout.table("learning_forgetting_ci", "csv"), index=False),
        atomic_write_csv(ci.per_seed.round(4), layout.table("learning_forgetting_seeds_ci", "csv"), index=False),
        atomic_write_csv(ci.comparisons.round(4), layout.table("comparisons", "csv"), index=False),
        atomic_write_text(layout.table("comparisons", "md"), ict.comparisons_markdown(ci, exp, p["seeds"])),
        atomic_write_text(layout.table("comparisons", "tex"), ict.comparisons_tex(ci, exp)),
        atomic_write_csv(ci.items, layout.table("items", "csv"), index=False),
        atomic_write_csv(pareto.round({c: 4 for c in ("Learning", "Learning_std", "HeldOut_mean", "HeldOut_mean_std",
                                                      *_PARETO_CI)}),
                         layout.table("pareto", "csv")),
        atomic_write_text(layout.table("pareto", "md"), pareto_markdown(
            pareto, experiment=exp, seeds=p["seeds"], lr_rule=p["lr_rule"])),
    ]


_PARETO_CI = ("Learning_lo", "Learning_hi", "HeldOut_mean_lo", "HeldOut_mean_hi")


def _pareto_with_intervals(per_seed: pd.DataFrame, p: dict, ci: Intervals) -> pd.DataFrame:
    """The Pareto table with the 95 % intervals of Learning and HeldOut_mean after their std."""
    pareto = pareto_of(per_seed, p)
    lo, hi = ci.wide("lo"), ci.wide("hi")
    at = list(pareto.columns).index("HeldOut_mean_std") + 1
    for k, (metric, bound) in enumerate((("Learning", "lo"), ("Learning", "hi"), ("HeldOut_mean", "lo"),
                                         ("HeldOut_mean", "hi"))):
        src = lo if bound == "lo" else hi
        pareto.insert(at + k, f"{metric}_{bound}", src[metric].reindex(pareto.index).astype(float))
    return pareto


def _ci_frame(ci: Intervals, columns) -> pd.DataFrame:
    """method × {<metric>_lo, <metric>_hi} for the plots."""
    lo, hi = ci.wide("lo"), ci.wide("hi")
    return pd.concat([lo[list(columns)].add_suffix("_lo"), hi[list(columns)].add_suffix("_hi")], axis=1)


def _write_summary_plots(layout: Layout, scores: pd.DataFrame, per_seed: pd.DataFrame, p: dict,
                         ci: Intervals) -> list[Path]:
    """The figures of lmmcl.layout.PLOTS, in that order; error bars = the 95 % intervals where
    there are any, else ± std over seeds."""
    summ, std = mean_over_seeds(per_seed, p), std_over_seeds(per_seed, p)
    T = len(p["sequence"])
    held = None
    if ci.available:
        lo, hi = ci.wide("lo"), ci.wide("hi")
        cols = [f"HeldOut_{i}" for i in range(1, T + 1)]
        held = {m: ((summ.loc[m, cols] - lo.loc[m, cols]).to_numpy(dtype=float),
                    (hi.loc[m, cols] - summ.loc[m, cols]).to_numpy(dtype=float)) for m in summ.index}
    return [
        plots.plot_learning_vs_heldout(summ, layout.plot("learning_vs_heldout"), std_df=std,
                                       ci_df=_ci_frame(ci, ["Learning", "HeldOut_mean"]) if ci.available else None),
        plots.plot_heldout_per_stage(scores, p, layout.plot("heldout_per_stage"), intervals=held),
        plots.plot_target_per_stage(scores, p, layout.plot("target_per_stage"),
                                    intervals=ci.cells if ci.available else None),
        plots.plot_pareto(_pareto_with_intervals(per_seed, p, ci), per_seed, layout.plot("pareto")),
    ]
