"""Table rendering (Markdown / CSV) and atomic file writes for the report.

Markdown numbers are printed with one decimal; NaN is printed ``n/a``.
CSV files keep NaN as an empty field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..atomic import atomic_path, atomic_write_text
from .metrics import DEFINITIONS

__all__ = [
    "NA",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_csv",
    "fmt",
    "fmt_interval",
    "MARK",
    "markdown_table",
    "r_matrix_markdown",
    "summary_markdown",
    "latex_escape",
    "latex_table",
    "deltas_matrix",
    "deltas_markdown",
]

NA = "n/a"
#: after a number whose 95 % interval contains 0 (LaTeX: a superscript dagger)
MARK = "†"


# --------------------------------------------------------------------------- atomic writes
def atomic_write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs) -> Path:
    """``df.to_csv`` to ``path`` atomically (NaN -> empty field); returns the path."""
    kwargs.setdefault("na_rep", "")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


# --------------------------------------------------------------------------- formatting
def _is_missing(x) -> bool:
    if x is None or x is pd.NA:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x, decimals: int = 1, signed: bool = False) -> str:
    """Format a number with ``decimals`` decimals (``+`` sign if ``signed``); NaN -> ``n/a``.

    Non-numeric values are returned as ``str(x)``.
    """
    if _is_missing(x):
        return NA
    if isinstance(x, str):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if round(v, decimals) == 0:
        return f"{0.0:.{decimals}f}"  # no "-0.0" / "+0.0"
    return f"{v:+.{decimals}f}" if signed else f"{v:.{decimals}f}"


def fmt_interval(lo, hi, decimals: int = 1, signed: bool = True) -> str:
    """``[lo, hi]`` with ``decimals`` decimals (signed by default); ``n/a`` if either is missing."""
    if _is_missing(lo) or _is_missing(hi):
        return NA
    return f"[{fmt(lo, decimals, signed)}, {fmt(hi, decimals, signed)}]"


def _escape(s: str) -> str:
    return str(s).replace("|", "\\|")


def markdown_table(
    df: pd.DataFrame,
    *,
    index_label: str | None = None,
    decimals: int = 1,
    signed: bool = False,
    bold: set[tuple] | None = None,
    extra_rows: Sequence[Sequence[str]] = (),
    marks: set[tuple] | None = None,
) -> str:
    """Render ``df`` as a GitHub pipe table (index as first column).

    Numbers get ``decimals`` decimals, NaN -> ``n/a``; ``bold`` is a set of
    (index, column) cells to print in bold; ``marks`` a set of cells followed by :data:`MARK`
    (their 95 % interval contains 0); ``extra_rows`` are pre-formatted rows
    (first item = row label) appended at the bottom.
    """
    bold = bold or set()
    marks = marks or set()
    label = index_label if index_label is not None else (df.index.name or "")
    header = [label] + [str(c) for c in df.columns]
    # numbers right-aligned, text left-aligned
    align = [":---"] + ["---:" if pd.api.types.is_numeric_dtype(df[c]) else ":---" for c in df.columns]
    lines = [
        "| " + " | ".join(_escape(h) for h in header) + " |",
        "|" + "|".join(align) + "|",
    ]
    for idx, row in df.iterrows():
        cells = [_escape(str(idx))]
        for col in df.columns:
            s = fmt(row[col], decimals=decimals, signed=signed)
            if (idx, col) in bold and s != NA:
                s = f"**{s}**"
            if (idx, col) in marks and s != NA:
                s = f"{s} {MARK}"
            cells.append(_escape(s))
        lines.append("| " + " | ".join(cells) + " |")
    for extra in extra_rows:
        lines.append("| " + " | ".join(_escape(str(c)) for c in extra) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report tables
def _bench_list(names: Sequence[str], chance: Mapping[str, float] | None = None) -> str:
    if not names:
        return "(none)"
    if chance is None:
        return ", ".join(f"`{b}`" for b in names)
    return ", ".join(f"`{b}` (chance {fmt(chance.get(b))})" for b in names)


def r_matrix_markdown(
    R: pd.DataFrame,
    *,
    method: str,
    experiment: str,
    stage_labels: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    stage_targets: Sequence[str],
    chance: Mapping[str, float],
) -> str:
    """Markdown for one method's R matrix.

    ``R``: index stage 0..T, columns benchmarks (already in group order).
    ``stage_labels[i]``: row label of stage i.  ``groups``: role -> benchmarks
    (e.g. target / held-out / extra), listed in the header.  Cell R[i][t_i] (target
    of stage i right after stage i) is printed in bold.  A ``chance`` row closes the table.
    """
    chance_row = ["chance"] + [fmt(chance.get(b)) for b in R.columns]
    head = [
        f"# R matrix — method `{method}` (experiment `{experiment}`)",
        "",
        "Score (%, primary metric, 0-100) of each checkpoint (rows: stage 0 = base model, "
        "stage i = after training on the i-th task) on each benchmark (columns). "
        "**Bold** = target benchmark of that row's stage, measured right after that stage. "
        f"`{NA}` = evaluation missing. Last row: chance level.",
        "",
        _groups_line(groups),
        "",
    ]
    return "\n".join(head) + "\n" + markdown_table(
        _with_stage_labels(R, stage_labels), index_label="stage",
        bold=target_cells(stage_labels, stage_targets, R.columns), extra_rows=[chance_row]
    )


def target_cells(stage_labels: Sequence[str], stage_targets: Sequence[str], columns) -> set:
    """(row label, benchmark) of every cell R[i][t_i], printed in bold."""
    return {(stage_labels[i], t) for i, t in enumerate(stage_targets, start=1)
            if t in columns and i < len(stage_labels)}


def _with_stage_labels(M: pd.DataFrame, stage_labels: Sequence[str]) -> pd.DataFrame:
    shown = M.copy()
    shown.index = [stage_labels[int(i)] for i in M.index]
    return shown


def _groups_line(groups: Mapping[str, Sequence[str]]) -> str:
    return "Columns — " + "; ".join(f"{role}: {_bench_list(list(bs))}" for role, bs in groups.items() if bs) + "."


def summary_markdown(
    summary_df: pd.DataFrame,
    *,
    experiment: str,
    sequence: Sequence[str],
    stage_targets: Sequence[str],
    held_out: Sequence[str],
    chance: Mapping[str, float],
    metric_names: Mapping[str, str] | None = None,
    n_missing: int = 0,
    n_total: int | None = None,
    std_df: pd.DataFrame | None = None,
    seeds: Sequence[int] = (0,),
    paper: Mapping[str, Mapping[str, float]] | None = None,
    paper_source: str | None = None,
    marks: set[tuple] | None = None,
    sections: Sequence[str] = (),
    bounds: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> str:
    """Markdown of the learning/forgetting table with its header block (and, with ``paper``, the
    study's headline numbers beside this experiment's Learning and HeldOut_mean).

    The header names every definition (``DEFINITIONS``), the target benchmark of each
    stage (with its metric and chance level), and the held-out set. With several ``seeds``,
    ``summary_df`` is the mean over them and each cell reads ``mean ± std`` (``std_df``).
    ``marks``: (method, column) cells followed by :data:`MARK` (their 95 % interval contains 0);
    ``sections``: Markdown appended after the results table (the intervals); ``bounds``: (lo, hi),
    method × metric, the 95 % intervals shown beside this experiment's numbers in the study section.
    """
    metric_names = metric_names or {}
    lines = [
        f"# Learning and forgetting — experiment `{experiment}`",
        "",
        "R[i][b] = score (%, primary metric, 0-100) of the checkpoint after stage i on benchmark b; "
        "stage 0 = base model. t_i = target benchmark of stage i, H = held-out set, T = "
        f"{len(sequence)} stages. All metrics are in percentage points (pp); `{NA}` = not computable "
        "(missing evaluation). Means over stages/benchmarks skip missing terms.",
        "",
        "## Definitions",
        "",
    ]
    lines += [f"- {d}" for d in DEFINITIONS.values()]
    lines += ["", "## Stages", ""]
    stage_df = pd.DataFrame(
        {
            "task": list(sequence),
            "target t_i": [f"`{t}`" for t in stage_targets],
            "metric": [metric_names.get(t) or NA for t in stage_targets],
            "chance (%)": [chance.get(t, float("nan")) for t in stage_targets],
        },
        index=pd.Index(range(1, len(sequence) + 1), name="stage i"),
    )
    lines.append(markdown_table(stage_df))
    lines.append(f"Held-out set H: {_bench_list(list(held_out), chance)}.")
    lines.append("")
    if n_missing:
        of = f" of {n_total}" if n_total is not None else ""
        lines += [f"Missing evaluations: {n_missing}{of} (see scores.csv, metric = `missing`).", ""]
    if len(seeds) > 1:
        lines += [f"## Results (pp, mean ± std over {len(seeds)} seeds: {', '.join(map(str, seeds))})", ""]
        lines.append(markdown_table(mean_pm_std(summary_df, std_df), index_label="method", marks=marks))
    else:
        lines += [f"## Results (pp, seed {seeds[0]})", ""]
        lines.append(markdown_table(summary_df, index_label="method", signed=True, marks=marks))
    lines += list(sections)
    if paper:
        lines += ["", paper_markdown(summary_df, paper, paper_source, std_df if len(seeds) > 1 else None, bounds)]
    return "\n".join(lines)


def paper_markdown(summary_df: pd.DataFrame, paper: Mapping[str, Mapping[str, float]], source: str | None,
                   std_df: pd.DataFrame | None = None,
                   bounds: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> str:
    """This experiment's Learning and HeldOut_mean (± std over seeds, and the 95 % interval of
    ``bounds`` = (lo, hi) where given) beside the study's headline Δ learning and Δ held-out."""
    rows = {}
    for m, ref in paper.items():
        if m not in summary_df.index:
            continue
        ours = summary_df.loc[m]

        def spread(c, m=m):
            text = f" ± {fmt(std_df.loc[m, c])}" if std_df is not None else ""
            if bounds is not None and m in bounds[0].index and c in bounds[0].columns:
                iv = fmt_interval(bounds[0].at[m, c], bounds[1].at[m, c])
                text += f" {iv}" if iv != NA else ""
            return text
        rows[m] = {"Learning": fmt(ours["Learning"], signed=True) + spread("Learning"),
                   "study Δ learning": fmt(ref["learning"], signed=True),
                   "HeldOut_mean": fmt(ours["HeldOut_mean"], signed=True) + spread("HeldOut_mean"),
                   "study Δ held-out": fmt(ref["heldout"], signed=True)}
    df = pd.DataFrame.from_dict(rows, orient="index")
    return "\n".join([
        "## Beside the study's headline numbers",
        "",
        f"The study's Δ learning / Δ held-out forgetting of the same recipes ({source or 'the study'}), signed "
        "deltas vs its base model in pp; its averaging over stages is not stated there, so compare with "
        "Learning and HeldOut_mean here and with the per-stage columns above.",
        "",
        markdown_table(df, index_label="method"),
    ])


def mean_pm_std(mean: pd.DataFrame, std: pd.DataFrame | None, decimals: int = 1) -> pd.DataFrame:
    """Cells `+12.3 ± 4.5` (signed mean; `± std` left out where the std is NaN)."""
    out = pd.DataFrame(index=mean.index, columns=mean.columns, dtype=object)
    for col in mean.columns:
        for idx in mean.index:
            m = fmt(mean.at[idx, col], decimals, signed=True)
            sd = None if std is None else std.at[idx, col]
            out.at[idx, col] = m if m == NA or _is_missing(sd) else f"{m} ± {fmt(sd, decimals)}"
    return out


def pareto_markdown(pareto: pd.DataFrame, *, experiment: str, seeds: Sequence[int],
                    lr_rule: Mapping | None = None) -> str:
    """The Pareto table (lmmcl.report.summary.pareto_table) with its legend; with the columns
    ``Learning_lo`` … (lmmcl.report.intervals) the 95 % intervals where there are any."""
    ci_cols = [c for c in ("Learning_lo", "Learning_hi", "HeldOut_mean_lo", "HeldOut_mean_hi") if c in pareto]
    with_ci = bool(ci_cols) and pareto[ci_cols].notna().any().any()
    shown = pareto.drop(columns=ci_cols)
    shown["Learning"] = mean_pm_std(pareto[["Learning"]], pareto[["Learning_std"]].set_axis(["Learning"], axis=1))["Learning"]
    shown["HeldOut_mean"] = mean_pm_std(pareto[["HeldOut_mean"]],
                                        pareto[["HeldOut_mean_std"]].set_axis(["HeldOut_mean"], axis=1))["HeldOut_mean"]
    shown = shown.drop(columns=["Learning_std", "HeldOut_mean_std"])
    if with_ci:
        at = shown.columns.get_loc("HeldOut_mean") + 1
        for k, metric in enumerate(("Learning", "HeldOut_mean")):
            shown.insert(at + k, f"{metric} 95 % interval",
                         [fmt_interval(lo, hi) for lo, hi in zip(pareto[f"{metric}_lo"], pareto[f"{metric}_hi"])])
    shown["pareto"] = ["yes" if v else "" for v in pareto["pareto"]]
    shown["seeds"] = pareto["seeds"].astype(int).astype(str)
    from ..sweep import format_value  # grid values as in the method names: 3e-4, not 0.0

    for col in shown.columns.difference(["Learning", "HeldOut_mean", "pareto", "seeds", "lr_rule",
                                         "Learning 95 % interval", "HeldOut_mean 95 % interval"]):
        shown[col] = [format_value(v) if v is not None and not _is_missing(v) else "" for v in shown[col]]
    lines = [
        f"# Learning vs. forgetting across runs — experiment `{experiment}`",
        "",
        f"Learning and HeldOut_mean (pp; definitions in learning_forgetting.md) as mean ± std over "
        f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}). `pareto` = no other method learns at "
        "least as much and forgets at most as much (better on one)."
        + (" 95 % intervals: as in learning_forgetting.md (paired bootstrap over the test items; with several "
           "seeds, items and seeds together)." if with_ci else ""),
    ]
    if lr_rule and "reference" in lr_rule:
        lines += ["", f"`lr_rule` (one lr for every recipe, as in the study): the lr with which recipe "
                  f"`{lr_rule['reference']}` learns most (highest mean Learning) is `picked` for every recipe."]
    elif lr_rule:
        lines += ["", f"`lr_rule` (one lr per recipe): among the runs that differ only in lr, the smallest lr whose "
                  f"mean Learning reaches {fmt(lr_rule['min_learning'])} pp is `picked`; where none does, the lr "
                  "with the highest Learning (`picked (below bar)`)."]
    lines += ["", markdown_table(shown, index_label="method")]
    return "\n".join(lines)



# --------------------------------------------------------------------------- deltas
def deltas_matrix(R: pd.DataFrame) -> pd.DataFrame:
    """Per-benchmark change vs. the base: D[i][b] = R[i][b] − R[0][b] for stages i = 1..T (pp).

    ``R``: index stage 0..T (int), columns benchmarks.  A missing cell (or a missing base
    cell) gives NaN.  Without a row 0 every delta is NaN.
    """
    base = R.loc[0] if 0 in R.index else pd.Series(float("nan"), index=R.columns)
    D = R.drop(index=[0], errors="ignore").astype(float) - base.astype(float)
    D.index.name = "stage"
    return D


def deltas_markdown(
    D: pd.DataFrame,
    *,
    method: str,
    experiment: str,
    stage_labels: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    stage_targets: Sequence[str],
    marks: set[tuple] | None = None,
) -> str:
    """Markdown for one method's per-benchmark deltas (rows stage 1..T); ``marks``: (stage label,
    benchmark) cells whose paired 95 % interval contains 0, followed by :data:`MARK`."""
    head = [
        f"# Per-benchmark change vs. base — method `{method}` (experiment `{experiment}`)",
        "",
        "Delta[i][b] = R[i][b] − R[0][b]: change (pp) of the score on benchmark b after stage i "
        "relative to the base model (stage 0). Positive = better than base, negative on a "
        "held-out benchmark = forgetting. **Bold** = target of that row's stage. "
        f"`{NA}` = an evaluation is missing.",
        "",
        _groups_line(groups),
        "",
    ]
    return "\n".join(head) + "\n" + markdown_table(_with_stage_labels(D, stage_labels), index_label="stage",
                                                     signed=True, bold=target_cells(stage_labels, stage_targets, D.columns),
                                                     marks=marks)


# --------------------------------------------------------------------------- LaTeX (booktabs)
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "−": "$-$", "≤": r"$\le$", "∈": r"$\in$", "<": r"\textless{}", ">": r"\textgreater{}",
    "†": r"$^\dagger$", "±": r"$\pm$", "√": r"$\surd$", "·": r"$\cdot$", "²": r"$^2$", "ν": r"$\nu$",
}


def latex_escape(text) -> str:
    """Escape LaTeX special characters in ``text``."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_table(
    df: pd.DataFrame,
    *,
    caption: str,
    label: str,
    index_label: str | None = None,
    decimals: int = 1,
    signed: bool = False,
    bold: set[tuple] | None = None,
    extra_rows: Sequence[Sequence[str]] = (),
    notes: Sequence[str] = (),
    marks: set[tuple] | None = None,
) -> str:
    """A complete ``table`` environment with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``).

    Numbers get ``decimals`` decimals (``+`` sign if ``signed``), NaN is printed ``n/a``;
    ``bold`` cells are ``\\textbf``; ``extra_rows`` (pre-formatted, first item = label) go
    below a ``\\midrule``; ``notes`` are printed as small text under the table (e.g. metric
    definitions); ``marks`` cells get a dagger (their 95 % interval contains 0).  Everything
    textual is escaped.
    """
    bold = bold or set()
    marks = marks or set()
    label_txt = index_label if index_label is not None else (df.index.name or "")
    cols = ["l"] + ["r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns]
    lines = [
        "% generated by lmmcl.report; requires \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{''.join(cols)}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in [label_txt, *map(str, df.columns)]) + " \\\\",
        "\\midrule",
    ]
    for idx, row in df.iterrows():
        cells = [latex_escape(idx)]
        for col in df.columns:
            s = fmt(row[col], decimals=decimals, signed=signed)
            if s == NA or isinstance(row[col], str):
                s = latex_escape(s)
            elif s.startswith("-"):
                s = "$-$" + s[1:]
            if (idx, col) in bold and s != NA:
                s = f"\\textbf{{{s}}}"
            if (idx, col) in marks and s != NA:
                s += "$^\\dagger$"
            cells.append(s)
        lines.append(" & ".join(cells) + " \\\\")
    if extra_rows:
        lines.append("\\midrule")
        for extra in extra_rows:
            lines.append(" & ".join(latex_escape(c) for c in extra) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if notes:
        lines.append("\\par\\smallskip\\footnotesize")
        lines += [latex_escape(n) + "\\\\" for n in notes]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
