"""Markdown and LaTeX of the 95 % intervals (:mod:`lmmcl.report.intervals`): the sections added to
learning_forgetting, R_<method> and deltas_<method>, the markers on numbers whose interval contains
0, and the recipe-vs-recipe table (comparisons.md / .tex)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .intervals import COMPARED, Intervals
from .tables import MARK, NA, fmt_interval, latex_table, markdown_table

__all__ = ["describe", "items_line", "summary_marks", "summary_section", "summary_tex", "cell_section",
           "cell_tex", "delta_marks", "comparisons_markdown", "comparisons_tex", "reading"]


def describe(ci: Intervals) -> str:
    """How the intervals of these tables were computed, in one paragraph."""
    if not ci.available:
        return f"95 % intervals: n/a ({ci.note or 'no per-item scores'})."
    text = (f"95 % intervals over the test items: paired bootstrap, {ci.resamples} resamples (seeded). Each "
            "resample draws every benchmark's items with replacement and gives the same items to every "
            "checkpoint; each number is recomputed from the resampled scores (so HeldOut_mean weights each "
            "held-out benchmark's items as the metric does), and the interval is the 2.5th-97.5th percentile. "
            "A score R[i][b] of 0/1 items gets the Wilson score interval instead.")
    if len(ci.seeds) > 1:
        text += (f" With {len(ci.seeds)} seeds the interval of the mean accounts for items and seeds together: "
                 "mean ± t_ν · √(SE_items² + s²/S), SE_items the bootstrap standard error of the seed mean, "
                 "s the std over the S seeds, ν the Welch-Satterthwaite degrees of freedom; the ± after a mean "
                 "is the seed std. The items-only interval is in the CSV (items_lo, items_hi).")
    return text + f" {MARK} = the interval contains 0 (no change shown at this test-set size)."


def items_line(ci: Intervals) -> str:
    """What tables/items.csv says, in one line ('' when every evaluation is fully paired)."""
    st = ci.items
    if st is None or not len(st):
        return ""
    bad = int((st["status"] != "ok").sum())
    unpaired = int(((st["only_here"] > 0) | (st["only_in_base"] > 0)).sum())
    if not bad and not unpaired:
        return ""
    parts = []
    if bad:
        parts.append(f"{bad} of {len(st)} evaluations give no usable per-item scores")
    if unpaired:
        parts.append(f"{unpaired} have items their base lacks or lack items of their base")
    return "Items: " + "; ".join(parts) + " (tables/items.csv)."


def _true(value) -> bool:
    """A `contains_zero` entry that is True (entries: True, False or None / NaN: no interval)."""
    return value is not None and value == value and bool(value)


def _marks(df: pd.DataFrame, index: str, column: str) -> set[tuple]:
    return {(r[index], r[column]) for _, r in df.iterrows() if _true(r["contains_zero"])}


def summary_marks(ci: Intervals) -> set[tuple]:
    """(method, metric) of every learning_forgetting number whose interval contains 0."""
    return _marks(ci.summary, "method", "metric")


def _interval_frame(long: pd.DataFrame, index: str, columns: str, row_order, col_order, signed: bool) -> pd.DataFrame:
    cells = {(r[index], r[columns]): fmt_interval(r["lo"], r["hi"], signed=signed) for _, r in long.iterrows()}
    return pd.DataFrame([[cells.get((i, c), NA) for c in col_order] for i in row_order],
                        index=list(row_order), columns=list(col_order), dtype=object)


def summary_section(ci: Intervals, methods: Sequence[str], columns: Sequence[str]) -> str:
    """The '95 % intervals' section of learning_forgetting.md."""
    lines = ["", "## 95 % intervals (pp)", "", describe(ci)]
    extra = items_line(ci)
    if extra:
        lines += ["", extra]
    if ci.available:
        lines += ["", "Per seed: `learning_forgetting_seeds_ci.csv`; the same as numbers: `learning_forgetting_ci.csv`; "
                  "recipe against recipe: `comparisons.md`.", "",
                  markdown_table(_interval_frame(ci.summary, "method", "metric", methods, columns, True),
                                 index_label="method")]
    return "\n".join(lines) + "\n"


def summary_tex(ci: Intervals, methods: Sequence[str], columns: Sequence[str], experiment: str) -> str:
    """learning_forgetting.tex's second table: the intervals ('' when there are none)."""
    if not ci.available:
        return ""
    return latex_table(_tex(_interval_frame(ci.summary, "method", "metric", methods, columns, True)),
                       index_label="method", caption=f"95 % intervals (pp) of the learning and forgetting of "
                       f"experiment {experiment}.", label=f"tab:learning_forgetting_ci_{experiment}",
                       notes=[describe(ci)])


def _tex(df: pd.DataFrame) -> pd.DataFrame:
    """Interval strings with a typographic minus (latex_escape makes it $-$)."""
    return df.map(lambda s: s.replace("-", "−") if isinstance(s, str) and s != NA else s)


def cell_section(ci: Intervals, method: str, stage_labels: Sequence[str], benchmarks: Sequence[str],
                 deltas: bool = False) -> str:
    """The '95 % intervals' section of R_<method>.md (``deltas``: of deltas_<method>.md); '' when
    there are none (learning_forgetting.md says why)."""
    if not ci.available:
        return ""
    lines = ["", "## 95 % intervals" + (" (pp)" if deltas else " (%)"), "", describe(ci)]
    extra = items_line(ci)
    if extra:
        lines += ["", extra]
    long = _labelled(ci.deltas[method] if deltas else ci.cells[method], stage_labels)
    rows = stage_labels[1:] if deltas else stage_labels
    lines += ["", markdown_table(_interval_frame(long, "label", "benchmark", rows, benchmarks, signed=deltas),
                                 index_label="stage")]
    return "\n".join(lines) + "\n"


def cell_tex(ci: Intervals, method: str, stage_labels: Sequence[str], benchmarks: Sequence[str], experiment: str,
             deltas: bool = False) -> str:
    if not ci.available:
        return ""
    long = _labelled(ci.deltas[method] if deltas else ci.cells[method], stage_labels)
    rows = stage_labels[1:] if deltas else stage_labels
    what = "per-benchmark change vs. base (pp)" if deltas else "R matrix (%)"
    return latex_table(_tex(_interval_frame(long, "label", "benchmark", rows, benchmarks, signed=deltas)),
                       index_label="stage", caption=f"95 % intervals of the {what} of method {method} "
                       f"(experiment {experiment}).",
                       label=f"tab:{'deltas' if deltas else 'R'}_ci_{experiment}_{method}", notes=[describe(ci)])


def _labelled(long: pd.DataFrame, stage_labels: Sequence[str]) -> pd.DataFrame:
    out = long.copy()
    out["label"] = [stage_labels[int(k)] for k in out["stage"]]
    return out


def delta_marks(ci: Intervals, method: str, stage_labels: Sequence[str]) -> set[tuple]:
    """(stage label, benchmark) of every per-benchmark change whose interval contains 0."""
    if not ci.available:
        return set()
    return _marks(_labelled(ci.deltas[method], stage_labels), "label", "benchmark")


# --------------------------------------------------------------------------- recipe vs recipe
def _known(value) -> bool:
    return value is not None and value == value


def reading(row_learning, row_heldout) -> str:
    """What a pair's two intervals show, in words ('no difference shown' when both contain 0)."""
    a, b = row_learning["method_a"], row_learning["method_b"]
    said = []
    for row, more, less in ((row_learning, "learns more", "learns less"),
                            (row_heldout, "forgets less", "forgets more")):
        if row is None or not _known(row["contains_zero"]):
            continue
        if row["lo"] > 0:
            said.append(more)
        elif row["hi"] < 0:
            said.append(less)
    if all(r is None or not _known(r["contains_zero"]) for r in (row_learning, row_heldout)):
        return NA
    return f"{a} " + " and ".join(said) + f" than {b}" if said else "no difference shown"


def _comparison_frame(ci: Intervals, tex: bool = False) -> tuple[pd.DataFrame, set[tuple]]:
    comp = ci.comparisons
    rows, marks = {}, set()
    pairs = list(dict.fromkeys(zip(comp["method_a"], comp["method_b"])))
    for a, b in pairs:
        sub = comp[(comp["method_a"] == a) & (comp["method_b"] == b)].set_index("metric")
        label = f"{a} − {b}"
        row = {}
        for metric in COMPARED:
            r = sub.loc[metric]
            row[f"{metric} a − b"] = r["difference"]
            row[f"{metric} 95 % interval"] = fmt_interval(r["lo"], r["hi"])
            if _true(r["contains_zero"]):
                marks.add((label, f"{metric} a − b"))
        row["reading"] = reading(sub.loc[COMPARED[0]].to_dict(), sub.loc[COMPARED[1]].to_dict())
        rows[label] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    if len(df):
        for metric in COMPARED:
            df[f"{metric} a − b"] = df[f"{metric} a − b"].astype(float)
    if tex:
        df = df.assign(**{c: _tex(df[[c]])[c] for c in df.columns if c.endswith("interval")})
    return df, marks


def comparisons_markdown(ci: Intervals, experiment: str, seeds: Sequence[int]) -> str:
    """comparisons.md: for each pair of methods, the difference of Learning and of HeldOut_mean
    with its paired 95 % interval."""
    head = [
        f"# Recipe against recipe — experiment `{experiment}`",
        "",
        "For each pair of methods a, b: the difference a − b (pp) of Learning (mean target gain) and of "
        "HeldOut_mean (mean held-out change; definitions in learning_forgetting.md), "
        + (f"means over {len(seeds)} seeds, " if len(seeds) > 1 else "")
        + "with its 95 % interval. Positive Learning difference: a learns more; positive HeldOut_mean "
        "difference: a forgets less. Both methods answer the same test items (and, per seed, start from "
        "the same base), so the difference is judged on paired outcomes.",
        "",
        describe(ci),
        "",
    ]
    extra = items_line(ci)
    if extra:
        head += [extra, ""]
    if len(ci.comparisons) == 0:
        return "\n".join(head + ["One method: nothing to compare."]) + "\n"
    df, marks = _comparison_frame(ci)
    return "\n".join(head) + "\n" + markdown_table(df, index_label="a − b", signed=True, marks=marks)


def comparisons_tex(ci: Intervals, experiment: str) -> str:
    if len(ci.comparisons) == 0:
        df, marks = pd.DataFrame({"reading": ["one method: nothing to compare"]}, index=["-"]), set()
    else:
        df, marks = _comparison_frame(ci, tex=True)
    return latex_table(df, index_label="a − b", signed=True, marks=marks,
                       caption=f"Recipe against recipe (experiment {experiment}): difference a − b (pp) of "
                               "Learning and HeldOut_mean with its paired 95 % interval; positive = a learns "
                               "more / forgets less.", label=f"tab:comparisons_{experiment}",
                       notes=[describe(ci)])

