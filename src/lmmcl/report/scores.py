"""The long score table of an experiment and the R matrices built from it.

Input layout (``results_dir`` is the results *root*, the experiment is a sub-folder;
:mod:`lmmcl.layout`), for every run seed s::

    <results_dir>/<experiment>/seed<s>/evals/base/<benchmark>.json                   # stage 0, every method
    <results_dir>/<experiment>/seed<s>/evals/<method>/stage<k>_<task>/<benchmark>.json  # k = 1..T
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..layout import Layout
from .plan import BASE_TASK, normalize_plan

__all__ = ["SCORE_COLUMNS", "MISSING_METRIC", "collect_scores", "r_matrix", "seeds_in", "n_eval_files",
           "metric_names"]

log = logging.getLogger(__name__)

#: Columns of the long score table (scores.csv), in order.
SCORE_COLUMNS = ["seed", "method", "stage", "task", "benchmark", "metric", "score"]
#: ``metric`` value of a row whose evaluation JSON does not exist (its score is NaN).
MISSING_METRIC = "missing"


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
    layout = Layout(p["experiment"], root=results_dir)
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
    values are floats, NaN = missing.  Use :func:`lmmcl.report.plan.stage_labels` for the row names.
    """
    sub = scores[scores["method"] == method]
    if seed is not None and "seed" in sub:
        sub = sub[sub["seed"] == seed]
    if sub.empty:
        raise KeyError(f"no scores for method {method!r}" + (f" and seed {seed}" if seed is not None else ""))
    order = list(dict.fromkeys(sub["benchmark"]))
    R = sub.pivot_table(index="stage", columns="benchmark", values="score", aggfunc="mean", dropna=False)
    R = R.reindex(columns=order).sort_index().astype(float)
    R.index = R.index.astype(int)
    R.index.name = "stage"
    R.columns.name = None
    return R


def seeds_in(scores: pd.DataFrame, plan: Mapping) -> list[int]:
    """The run seeds of ``scores`` (a table without a seed column: the plan's first seed)."""
    return sorted(scores["seed"].unique().tolist()) if "seed" in scores else [normalize_plan(plan)["seeds"][0]]


def n_eval_files(scores: pd.DataFrame) -> int:
    """Number of distinct evaluation files behind ``scores`` (a seed's base rows are shared by
    its methods: one file per seed and benchmark)."""
    base = scores.loc[scores["stage"] == 0, [c for c in ("seed", "benchmark") if c in scores]]
    return int((scores["stage"] > 0).sum() + len(base.drop_duplicates()))


def metric_names(scores: pd.DataFrame) -> dict[str, str]:
    """{benchmark: its primary metric} from the rows that have one."""
    ok = scores[(scores["metric"] != MISSING_METRIC) & (scores["metric"] != "")]
    return ok.groupby("benchmark", sort=False)["metric"].first().to_dict()
