"""Report figures (PNG) of one experiment: the teaser panel, the Pareto plot, per-stage plots
and the R heatmaps (figure helpers: :mod:`lmmcl.report.figures`). Each plot is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .figures import CHANCE_STYLE, HALO, method_colors, new_figure, no_data, save_figure
from .metrics import nanmean
from .plan import normalize_plan
from .scores import r_matrix

__all__ = [
    "plot_learning_vs_heldout",
    "plot_heldout_per_stage",
    "plot_target_per_stage",
    "plot_r_heatmap",
    "plot_pareto",
]


# --------------------------------------------------------------------------- teaser panel
def plot_learning_vs_heldout(
    summary_df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    x: str = "Learning",
    y: str = "HeldOut_mean",
    title: str | None = None,
    std_df: pd.DataFrame | None = None,
    ci_df: pd.DataFrame | None = None,
) -> Path:
    """Scatter of mean target gain (x, pp) vs. mean held-out change (y, pp), one point per method.

    ``summary_df``: index = method, columns include ``x`` and ``y`` (see
    :func:`lmmcl.report.summary.summary_table`); error bars: the 95 % intervals of ``ci_df``
    (columns ``<x>_lo``, ``<x>_hi``, ``<y>_lo``, ``<y>_hi``; lmmcl.report.intervals) where it has
    them, else ± the std over seeds of ``std_df`` (same shape as ``summary_df``).  Methods with a
    NaN coordinate are listed in the lower corner instead of plotted.
    """
    methods = [str(m) for m in summary_df.index]
    colors = method_colors(methods)
    fig = new_figure(6.8, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0, color="0.3", lw=1, ls="--", zorder=1, label="no held-out change")
    ax.axvline(0, color="0.75", lw=0.8, zorder=1)
    missing = []
    xs, ys = [], []
    for m in methods:
        xv, yv = float(summary_df.at[m, x]), float(summary_df.at[m, y])
        if np.isnan(xv) or np.isnan(yv):
            missing.append(m)
            continue
        xs.append(xv)
        ys.append(yv)
        ax.scatter([xv], [yv], s=90, color=colors[m], edgecolor="black", lw=0.6, zorder=3, label=m)
        if not _interval_bars(ax, ci_df, m, x, y, xv, yv, colors[m]):
            _error_bars(ax, std_df, m, x, y, xv, yv, colors[m])
        ax.annotate(m, (xv, yv), xytext=(7, 6), textcoords="offset points", fontsize=10, zorder=4)
    if xs:
        # symmetric-ish padding so annotations stay inside and the zero line is visible
        xlo, xhi = min(xs + [0.0]), max(xs + [0.0])
        ylo, yhi = min(ys + [0.0]), max(ys + [0.0])
        xpad, ypad = max(2.0, 0.15 * (xhi - xlo)), max(1.0, 0.2 * (yhi - ylo))
        ax.set_xlim(xlo - xpad, xhi + 2 * xpad)
        ax.set_ylim(ylo - ypad, yhi + ypad)
    else:
        no_data(ax, "no method has both metrics")
    if missing:
        ax.text(
            0.01, 0.01, "n/a: " + ", ".join(missing), transform=ax.transAxes,
            fontsize=8, color="0.4", va="bottom",
        )
    ax.set_xlabel(f"Δ target score, {x} (mean over stages) [pp]")
    ax.set_ylabel(f"Δ held-out score, {y} [pp]")
    bars = _bars_label(ci_df, std_df, [x, y])
    ax.set_title(title or "Learning vs. forgetting per method\n(up-right = learns more, forgets less"
                 + (f"; bars: {bars})" if bars else ")"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return save_figure(fig, path)


def _seed_std(values) -> float:
    """Sample std (ddof 1) of the finite values; NaN (no error bar) with fewer than two."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")


def _interval_bars(ax, ci_df, m, x, y, xv, yv, color) -> bool:
    """Asymmetric error bars from the 95 % intervals of ``ci_df`` (``<x>_lo`` …); False where
    there are none for this method."""
    if ci_df is None or m not in ci_df.index:
        return False

    def err(c, v):
        lo, hi = float(ci_df.at[m, f"{c}_lo"]), float(ci_df.at[m, f"{c}_hi"])
        return None if np.isnan(lo) or np.isnan(hi) else [[max(v - lo, 0.0)], [max(hi - v, 0.0)]]

    xe, ye = err(x, xv), err(y, yv)
    if xe is None and ye is None:
        return False
    ax.errorbar([xv], [yv], xerr=xe, yerr=ye, fmt="none", ecolor=color, elinewidth=1.4, capsize=4, zorder=2)
    return True


def _bars_label(ci_df, std_df, cols) -> str:
    """What the error bars show, for the title."""
    if ci_df is not None and any(ci_df[f"{c}_lo"].notna().any() for c in cols if f"{c}_lo" in ci_df):
        return "95 % intervals"
    if std_df is not None and any(std_df[c].notna().any() for c in cols if c in std_df):
        return "± std over seeds"
    return ""


def _error_bars(ax, std_df, m, x, y, xv, yv, color) -> None:
    if std_df is None or m not in std_df.index:
        return
    xe, ye = float(std_df.at[m, x]), float(std_df.at[m, y])
    if np.isnan(xe) and np.isnan(ye):
        return
    ax.errorbar([xv], [yv], xerr=None if np.isnan(xe) else [xe], yerr=None if np.isnan(ye) else [ye],
                fmt="none", ecolor=color, elinewidth=1.4, capsize=4, zorder=2)


def plot_pareto(pareto: pd.DataFrame, per_seed: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Learning (x) vs HeldOut_mean (y) of every run: small dots = one seed, big markers with error
    bars = the mean over seeds per method with its 95 % interval (``pareto`` columns ``Learning_lo``
    …, where present) or ± std over seeds, the Pareto front joined by a line (table: pareto.md)."""
    methods = [str(m) for m in pareto.index]
    colors = method_colors(methods)
    fig = new_figure(7.5 if len(methods) <= 10 else 9.5, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0, color="0.3", lw=1, ls="--", zorder=1)
    for m in methods:
        runs = per_seed.xs(m, level="method") if m in per_seed.index.get_level_values("method") else None
        if runs is not None and len(runs) > 1:
            ax.scatter(runs["Learning"], runs["HeldOut_mean"], s=14, color=colors[m], alpha=0.5, zorder=2)
        xv, yv = float(pareto.at[m, "Learning"]), float(pareto.at[m, "HeldOut_mean"])
        if np.isnan(xv) or np.isnan(yv):
            continue
        on_front = bool(pareto.at[m, "pareto"])
        ax.scatter([xv], [yv], s=110 if on_front else 70, marker="*" if on_front else "o", color=colors[m],
                   edgecolor="black", lw=0.6, zorder=4, label=m)
        if not _interval_bars(ax, pareto if "Learning_lo" in pareto else None, m, "Learning", "HeldOut_mean",
                              xv, yv, colors[m]):
            _error_bars(ax, pareto.rename(columns={"Learning_std": "_x", "HeldOut_mean_std": "_y"}), m, "_x", "_y",
                        xv, yv, colors[m])
        if len(methods) <= 16:
            ax.annotate(m, (xv, yv), xytext=(6, 5), textcoords="offset points", fontsize=8, zorder=5)
    front = pareto[pareto["pareto"]].sort_values("Learning")
    if len(front) > 1:
        ax.plot(front["Learning"], front["HeldOut_mean"], color="black", lw=1, ls=":", zorder=3, label="Pareto front")
    if not len(front):
        no_data(ax, "no method has both metrics")
    ax.set_xlabel("Learning: mean target gain [pp]")
    ax.set_ylabel("HeldOut_mean: mean held-out change [pp]")
    if "Learning_lo" in pareto and pareto[["Learning_lo", "HeldOut_mean_lo"]].notna().any().any():
        bars = "; bars: 95 % intervals"
    elif pareto[["Learning_std", "HeldOut_mean_std"]].notna().any().any():
        bars = "; bars: ± std over seeds"
    else:
        bars = ""
    ax.set_title(f"Learning vs. forgetting across runs (★ = Pareto front; dots = single seeds{bars})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- per-stage plots
def _plan_and_matrices(scores: pd.DataFrame, plan: Mapping):
    """(plan, {method: mean R}, {method: [R of each seed]})."""
    p = normalize_plan(plan)
    rows = range(len(p["sequence"]) + 1)
    mats = {m: r_matrix(scores, m).reindex(index=rows) for m in p["methods"]}
    seeds = sorted(scores["seed"].unique()) if "seed" in scores else []
    per_seed = {m: [r_matrix(scores, m, seed=s).reindex(index=rows) for s in seeds] if len(seeds) > 1 else []
                for m in p["methods"]}
    return p, mats, per_seed


def plot_heldout_per_stage(scores: pd.DataFrame, plan: Mapping, path: str | os.PathLike,
                           intervals: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> Path:
    """Held-out average score (%) after each stage, one line per method.

    x = base, stage 1..T; y = mean over the held-out benchmarks of the score at that
    checkpoint (nan-aware: missing benchmarks are skipped; a point is absent if all are
    missing).  The base model's value is drawn as a dashed horizontal line, the mean
    chance level of the held-out set (if known) as a dotted one.  Error bars: ``intervals``
    ({method: (HeldOut_i − lo, hi − HeldOut_i) for i = 1..T}), the paired 95 % interval of the
    change vs. the base drawn around the point (a bar that reaches the base's line: no change
    shown), where given; else ± the std over seeds.
    """
    p, mats, per_seed = _plan_and_matrices(scores, plan)
    seq, H, T = p["sequence"], p["held_out"], len(p["sequence"])
    colors = method_colors(p["methods"])
    fig = new_figure(max(7.5, 1.25 * (T + 1) + 3.5), 5.0)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.arange(T + 1)
    if not H:
        no_data(ax, "no held-out benchmarks in the plan")
    else:
        base_vals, all_vals = [], []
        for m, R in mats.items():
            sub = R.reindex(columns=H)
            vals = np.array([nanmean(sub.loc[i].to_numpy()) for i in range(T + 1)])
            base_vals.append(vals[0])
            all_vals += [v for v in vals if not np.isnan(v)]
            ax.plot(xs, vals, marker="o", lw=2, ms=6, color=colors[m], label=m, zorder=3)
            iv = (intervals or {}).get(m)
            if iv is not None and not np.all(np.isnan(np.asarray(iv, dtype=float))):
                lo_err, hi_err = (np.nan_to_num(np.asarray(e, dtype=float)) for e in iv)
                ax.errorbar(xs[1:], vals[1:], yerr=[np.maximum(lo_err, 0), np.maximum(hi_err, 0)], fmt="none",
                            ecolor=colors[m], elinewidth=1.2, capsize=3, zorder=2)
            elif per_seed[m]:  # std over seeds of each seed's held-out average
                curves = np.array([[nanmean(Rs.reindex(columns=H).loc[i].to_numpy()) for i in range(T + 1)]
                                   for Rs in per_seed[m]])
                ax.errorbar(xs, vals, yerr=[_seed_std(c) for c in curves.T], fmt="none", ecolor=colors[m],
                            elinewidth=1.2, capsize=3, zorder=2)
        base = nanmean(base_vals)
        if not np.isnan(base):
            ax.axhline(base, color="black", ls="--", lw=1.2, zorder=2, label=f"base model ({base:.1f}%)")
        ch = [p["chance"][h] for h in H if h in p["chance"]]
        if len(ch) == len(H) and all_vals:
            c = float(np.mean(ch))
            lo, hi = min(all_vals), max(all_vals)
            if c >= lo - 0.5 * max(hi - lo, 5.0):  # near the data: draw it
                ax.axhline(c, color="0.5", ls=":", lw=1.4, zorder=2, label=f"chance ({c:.1f}%)")
            else:  # far below: just say it, so the data keep the vertical resolution
                ax.plot([], [], " ", label=f"chance {c:.1f}% (below axis)")
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.set_xticks(xs)
    ax.set_xticklabels(["base"] + [f"{i}\n{t}" for i, t in enumerate(seq, start=1)], fontsize=9)
    ax.set_xlim(-0.3, T + 0.3)
    ax.margins(y=0.12)
    ax.set_xlabel("checkpoint (after stage i: task)")
    ax.set_ylabel("held-out average score [%]")
    htxt = ", ".join(H) if len(", ".join(H)) < 70 else f"{len(H)} benchmarks"
    bars = "; bars: paired 95 % interval of the change vs. base" if intervals else ""
    ax.set_title(f"Held-out performance after each stage\n(mean of {htxt}{bars})" if H else "Held-out performance")
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_target_per_stage(scores: pd.DataFrame, plan: Mapping, path: str | os.PathLike,
                          intervals: Mapping[str, pd.DataFrame] | None = None) -> Path:
    """Score (%) of each stage's target benchmark right after that stage, per method.

    Grouped bars: one group per stage i (bar height R[i][t_i], one bar per method),
    with the base model's score R[0][t_i] (black dashed segment) and the chance level
    (grey dotted segment) across each group.  Missing cells are labelled ``n/a``.  Error bars:
    the 95 % interval of R[i][t_i] from ``intervals`` ({method: its R_<method>_ci table}) where
    given, else ± the std over seeds.
    """
    p, mats, per_seed = _plan_and_matrices(scores, plan)
    seq, targets, T = p["sequence"], p["stage_targets"], len(p["sequence"])
    methods = p["methods"]
    colors = method_colors(methods)
    n = max(1, len(methods))
    fig = new_figure(max(7.5, (0.35 * n + 0.9) * T + 3.0), 5.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / n
    half = 0.45
    base_labelled = chance_labelled = False
    for gi, (task, tgt) in enumerate(zip(seq, targets)):
        stage = gi + 1
        for k, m in enumerate(methods):
            v = float(mats[m].at[stage, tgt]) if tgt in mats[m].columns else np.nan
            xk = gi - 0.4 + width * (k + 0.5)
            if np.isnan(v):
                ax.text(xk, 1, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="0.4")
                continue
            err = _cell_err(intervals, m, stage, tgt, v)
            if err is None:
                err = (_seed_std([float(Rs.at[stage, tgt]) for Rs in per_seed[m]])
                       if per_seed[m] and tgt in mats[m].columns else None)
            ax.bar(xk, v, width=width * 0.92, color=colors[m], edgecolor="black", lw=0.4, zorder=3,
                   yerr=err, ecolor="black", capsize=2, error_kw={"elinewidth": 0.8})
            if n * T <= 40:
                ax.text(xk, v + 0.8, f"{v:.0f}", ha="center", va="bottom", fontsize=7, zorder=4)
        base_v = nanmean(
            float(mats[m].at[0, tgt]) if tgt in mats[m].columns else np.nan for m in methods
        )
        if not np.isnan(base_v):
            ax.hlines(base_v, gi - half, gi + half, colors="black", linestyles="--", lw=1.6, zorder=5,
                      path_effects=HALO)
            base_labelled = True
        c = p["chance"].get(tgt)
        if c is not None and not np.isnan(c):
            ax.hlines(c, gi - half, gi + half, colors=CHANCE_STYLE["color"], linestyles=CHANCE_STYLE["ls"],
                      lw=CHANCE_STYLE["lw"], zorder=5, path_effects=HALO)
            chance_labelled = True
    ax.set_xticks(np.arange(T))
    ax.set_xticklabels(
        [f"{i}: {t}" + (f"\n({b})" if b != t else "") for i, (t, b) in enumerate(zip(seq, targets), start=1)],
        fontsize=9,
    )
    ax.set_xlim(-0.6, T - 0.4)
    ax.set_ylim(0, 109)
    ax.set_xlabel("stage i: task (target benchmark)")
    ax.set_ylabel("target score right after its stage [%]")
    ax.set_title("Target skill learned at each stage (score of t_i after stage i)"
                 + ("\nbars: 95 % interval" if intervals and any(
                     df["lo"].notna().any() for df in intervals.values()) else ""))
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    ax.legend(handles=_bar_legend(methods, colors, base_labelled, chance_labelled), loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    return save_figure(fig, path)


def _cell_err(intervals, m, stage, bench, v):
    """[[v − lo], [hi − v]] of R[stage][bench] from the R_<method>_ci table, or None."""
    df = (intervals or {}).get(m)
    if df is None:
        return None
    row = df[(df["stage"] == stage) & (df["benchmark"] == bench)]
    if row.empty or np.isnan(row["lo"].iloc[0]) or np.isnan(row["hi"].iloc[0]):
        return None
    return [[max(v - float(row["lo"].iloc[0]), 0.0)], [max(float(row["hi"].iloc[0]) - v, 0.0)]]


def _bar_legend(methods, colors, base: bool, chance: bool) -> list:
    """A patch per method, and the base / chance lines where they were drawn."""
    handles = [Patch(facecolor=colors[m], edgecolor="black", lw=0.4, label=m) for m in methods]
    if base:
        handles.append(Line2D([], [], color="black", ls="--", lw=1.6, label="base model (stage 0)"))
    if chance:
        handles.append(Line2D([], [], color=CHANCE_STYLE["color"], ls=CHANCE_STYLE["ls"],
                              lw=CHANCE_STYLE["lw"], label="chance level"))
    return handles


# --------------------------------------------------------------------------- R heatmap
def plot_r_heatmap(
    R: pd.DataFrame,
    path: str | os.PathLike,
    *,
    method: str,
    stage_labels: Sequence[str] | None = None,
    stage_targets: Sequence[str] = (),
    groups: Mapping[str, Sequence[str]] | None = None,
    title: str | None = None,
) -> Path:
    """Heatmap of one method's R matrix: rows stage 0..T, columns benchmarks, colour = score (0-100 %).

    Every cell is annotated with its value; a missing cell (NaN) is drawn light grey with a
    hatch and labelled ``n/a``.  The target cell of each stage (R[i][t_i]) is outlined in
    black; vertical lines separate the benchmark ``groups`` (e.g. target / held-out / extra).
    """
    import matplotlib

    vals = R.to_numpy(dtype=float) if R.size else np.full((1, 1), np.nan)
    n_rows, n_cols = vals.shape
    labels = [str(stage_labels[int(i)]) if stage_labels else str(i) for i in R.index] if R.size else [""]
    cols = [str(c) for c in R.columns] if R.size else [""]
    fig = new_figure(max(5.5, 0.95 * n_cols + 3.2), max(3.2, 0.5 * n_rows + 2.2))
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.9")
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    _annotate_cells(ax, vals)
    row_of = {int(i): k for k, i in enumerate(R.index)} if R.size else {}
    for i, t in enumerate(stage_targets, start=1):
        if i in row_of and t in cols:
            ax.add_patch(matplotlib.patches.Rectangle((cols.index(t) - 0.5, row_of[i] - 0.5), 1, 1,
                                                      fill=False, edgecolor="black", lw=2.0))
    if groups:
        _mark_groups(ax, groups, cols)
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(cols, rotation=35, ha="right", fontsize=9)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlabel("benchmark")
    ax.set_ylabel("checkpoint (stage i: task)")
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("score [%]")
    ax.set_title(title or f"R matrix — {method}\n(score after each stage; outlined = target of that stage; grey n/a = missing)",
                 fontsize=10, pad=20 if groups else 6)
    return save_figure(fig, path)


def _annotate_cells(ax, vals: np.ndarray) -> None:
    """Each cell's value; a missing one hatched and labelled n/a."""
    import matplotlib

    for r in range(vals.shape[0]):
        for c in range(vals.shape[1]):
            v = vals[r, c]
            if np.isnan(v):
                ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///",
                                                          edgecolor="0.6", lw=0))
                ax.text(c, r, "n/a", ha="center", va="center", fontsize=8, color="0.25")
            else:
                ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if v < 60 else "black")


def _mark_groups(ax, groups: Mapping[str, Sequence[str]], cols: list[str]) -> None:
    """Separate the benchmark groups (target / held-out / extra) with white lines, named on top."""
    edge = 0
    spans = []
    for role, bs in groups.items():
        k = sum(1 for b in bs if b in cols)
        if k:
            spans.append((role, edge, edge + k))
            edge += k
    for _, lo, hi in spans[:-1]:
        ax.axvline(hi - 0.5, color="white", lw=3)
    for role, lo, hi in spans:
        ax.annotate(role, xy=((lo + hi - 1) / 2, -0.5), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9, fontweight="bold", annotation_clip=False)
