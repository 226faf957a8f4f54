"""95 % intervals of every learning/forgetting number: test-item sampling noise, paired, and seeds.

Every checkpoint of a run answers the same test items: each evaluation's
``<benchmark>.samples.jsonl`` holds one row per item with its score (0-1, or the scorer's partial
credit) and a stable ``item`` id (:func:`lmmcl.evaluation.normalize.item_id`). So a change of score
between two checkpoints is judged on the items' *paired* outcomes, which is far tighter than two
independent intervals. How each interval is computed (:data:`METHODS`, repeated in the tables):

* **Paired bootstrap over items** (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*,
  ch. 6 and 13; the percentile interval). Each resample draws, for every benchmark separately, n_b
  item indices with replacement and applies *the same indices to every checkpoint* of that
  benchmark (every method, stage and seed); every number of the tables is recomputed from the
  resampled benchmark means with the formulas of :mod:`lmmcl.report.metrics`. So a difference is
  paired, all numbers of one resample are consistent (also across methods: the recipe-vs-recipe
  table), and HeldOut_mean weights the items of each held-out benchmark as the metric does (each
  benchmark 1/|H|, its items 1/n_h: a stratified bootstrap). The interval is the 2.5th and 97.5th
  percentile of the resampled values (``numpy.quantile``, linear interpolation). Identical answers
  give a zero-width interval of a difference. tests/test_intervals.py checks it against a normal
  interval on fixed paired data and its coverage (≈ 95 %) on 1 000 simulated paired data sets.
* **R cells** (a score, not a difference) of 0/1 items: the Wilson score interval (Wilson 1927,
  JASA 22:209), which unlike the bootstrap stays sensible at 0 % and 100 %; partial credit: the
  bootstrap percentile interval.
* **Several seeds**: the tables' number is the mean over seeds. Beside the seed spread (std, as
  before) its interval accounts for items and seeds together: mean ± t_ν,0.975 · √(SE_items² +
  s²/S), with SE_items the bootstrap standard error of the seed mean (items resampled, the same
  draw for every seed, which all answer the same items), s the std over the S seeds and ν the
  Welch-Satterthwaite degrees of freedom (Satterthwaite 1946, Biometrics Bulletin 2:110) with the
  item part's taken as infinite: ν = (SE_items² + s²/S)² (S − 1) / (s²/S)². s also contains the
  item noise that differs between seeds, so the interval errs on the wide side; it is cut to what
  the quantity can be (0-100 % for a score, ±100 pp for a change). The items-only interval of the
  seed mean is in the CSV (``items_lo``, ``items_hi``).

Guard: an interval is given only where the per-item scores reproduce the table's number (the
items' mean equals each evaluation JSON's score, and the metric recomputed from the items equals
the table's); elsewhere it is n/a and ``tables/items.csv`` says why (no samples file, no per-item
scores, duplicate item ids, a mean that differs from the score: a benchmark whose score is no mean
over items, such as mmstar's macro average). Items present on one side only of a pair are counted
there (``only_here``, ``only_in_base``), never silently dropped: a cell's mean always uses all of its
items, the pairing the shared ones.

Reproducible: each benchmark's resamples come from its own ``numpy.random.Generator`` (PCG64) seeded
by :data:`RNG_SEED` and the benchmark's name, drawn in fixed chunks; item scores are quantised to
1e-6 so that every resampled sum is an integer sum, exact in float64 whatever the BLAS and CPU.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from ..layout import Layout
from .metrics import summary_columns
from .plan import BASE_TASK, DEFAULT_RESAMPLES, normalize_plan
from .scores import MISSING_METRIC

__all__ = ["LEVEL", "DEFAULT_RESAMPLES", "RNG_SEED", "METHODS", "Items", "Intervals", "collect_items",
           "compute_intervals", "bootstrap_means", "percentile_interval", "wilson_interval",
           "t_quantile", "metric_arrays", "COMPARED"]

log = logging.getLogger(__name__)

LEVEL = 0.95
#: seed of every benchmark's resampling stream (with the benchmark's name)
RNG_SEED = 20251008
#: item scores are stored as integers of 1e-6 (exact float64 sums; docstring above)
QUANT = 1_000_000
#: |items' value − table's value| (pp) above which the items do not reproduce the table
TOLERANCE = 1e-3
#: resamples drawn per call of the generator (fixed: the stream must not depend on the machine)
CHUNK = 250
#: the metrics of the recipe-vs-recipe table
COMPARED = ("Learning", "HeldOut_mean")

BOOTSTRAP = "paired bootstrap over items (percentile)"
BOOTSTRAP_CELL = "bootstrap over items (percentile)"
WILSON = "Wilson score"
COMBINED = "items + seeds (Welch-Satterthwaite t)"
#: what each method name in the `interval` columns means (table headers)
METHODS = {
    BOOTSTRAP: "every benchmark's items resampled with replacement, the same items for every "
               "checkpoint, the metric recomputed; 2.5th-97.5th percentile",
    WILSON: "R cells of 0/1 items: Wilson score interval of the proportion",
    BOOTSTRAP_CELL: "R cells with partial credit: percentile interval of the resampled mean",
    COMBINED: "several seeds: seed mean ± t_ν · √(SE_items² + s²/S), SE_items the bootstrap standard "
              "error of the seed mean, s the std over the S seeds, ν Welch-Satterthwaite",
}


# --------------------------------------------------------------------------- distributions
def _z(level: float = LEVEL) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Press et al.,
    Numerical Recipes, 3rd ed., §6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """Quantile p (0.5 < p < 1) of Student's t with `df` > 0 degrees of freedom (real-valued;
    ``inf``: the normal quantile), by bisection on the t tail P(T > t) = I_{df/(df+t²)}(df/2, 1/2) / 2."""
    if not 0.5 < p < 1.0:
        raise ValueError(f"t_quantile: p must be in (0.5, 1), got {p}")
    if not df > 0:
        raise ValueError(f"t_quantile: df must be > 0, got {df}")
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(p)
    tail = 1.0 - p

    def upper(t: float) -> float:
        return 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))

    lo, hi = 0.0, 2.0
    while upper(hi) > tail:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if upper(mid) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def wilson_interval(successes, n, level: float = LEVEL):
    """Wilson score interval (Wilson 1927) of the proportion successes/n, in pp; arrays broadcast.
    NaN where n is 0."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _z(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / n
        denom = 1.0 + z * z / n
        centre = (phat + z * z / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
        lo, hi = np.clip(centre - half, 0, 1) * 100, np.clip(centre + half, 0, 1) * 100
    bad = ~(n > 0)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


# --------------------------------------------------------------------------- resampling
def _rng(name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([RNG_SEED, *name.encode("utf-8")])))


def bootstrap_means(scores: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(resampled means, full-sample means) in pp of every column of ``scores``.

    ``scores``: (n items, columns) item scores in 0-1, NaN = the column lacks that item. Each
    resample draws n item indices with replacement (``rng.integers``, :data:`CHUNK` resamples per
    call) and applies them to every column; a column's mean is over its present items among the
    drawn ones (NaN if none was drawn). Returns arrays of shape (resamples, columns) and (columns,).
    """
    scores = np.asarray(scores, dtype=float)
    n, n_cols = scores.shape
    present = ~np.isnan(scores)
    quant = np.where(present, np.round(scores * QUANT), 0.0)  # integers: exact sums in float64
    pres = present.astype(float)

    def means(counts: np.ndarray) -> np.ndarray:
        total, count = counts @ quant, counts @ pres
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, (total / QUANT) * 100.0 / np.where(count > 0, count, 1.0), np.nan)

    point = means(np.ones((1, n)))[0]
    out = np.empty((int(resamples), n_cols))
    for start in range(0, int(resamples), CHUNK):
        r = min(CHUNK, int(resamples) - start)
        idx = rng.integers(0, n, size=(r, n)) if n else np.zeros((r, 0), dtype=np.int64)
        counts = np.bincount((np.arange(r)[:, None] * n + idx).ravel(), minlength=r * n).reshape(r, n)
        out[start:start + r] = means(counts.astype(float))
    return out, point


def percentile_interval(values: np.ndarray, level: float = LEVEL, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the (1−level)/2 and (1+level)/2 quantiles of ``values`` along ``axis``
    (NaN resamples skipped; NaN where every resample is NaN)."""
    v = np.asarray(values, dtype=float)
    q = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(invalid="ignore"), _quiet():
        lo, hi = (np.nanquantile if np.isnan(v).any() else np.quantile)(v, q, axis=axis)
    return lo, hi


class _quiet:
    """Silence numpy's 'All-NaN slice' / 'Degrees of freedom' RuntimeWarnings inside the block."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


# --------------------------------------------------------------------------- the metrics on arrays
def _nanmean(terms: list[np.ndarray], shape) -> np.ndarray:
    """Elementwise mean of the non-NaN terms (fixed order: the same bits on every machine);
    NaN where every term is NaN or there are none."""
    total, count = np.zeros(shape), np.zeros(shape)
    for t in terms:
        ok = ~np.isnan(t)
        total = total + np.where(ok, t, 0.0)
        count = count + ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def metric_arrays(A: np.ndarray, targets: Sequence[int], held_out: Sequence[int]) -> dict[str, np.ndarray]:
    """Every metric of :func:`lmmcl.report.metrics.summary` on a stack of R matrices.

    ``A[..., i, b]``: score of stage i (0..T) on benchmark index b; ``targets``: index of t_i for
    i = 1..T; ``held_out``: indices of H. Returns {column of summary_columns(T): array of shape
    A.shape[:-2]}, with the same nan-aware means as lmmcl.report.metrics.
    """
    T = len(targets)
    shape = A.shape[:-2]
    held_out = list(dict.fromkeys(held_out))
    learn = [A[..., i, t] - A[..., 0, t] for i, t in enumerate(targets, start=1)]
    held = [_nanmean([A[..., i, h] - A[..., 0, h] for h in held_out], shape) for i in range(1, T + 1)]
    bwt = [A[..., T, t] - A[..., i, t] for i, t in enumerate(targets[:-1], start=1)]
    maxf = []
    for i, t in enumerate(targets[:-1], start=1):
        best = A[..., i, t]
        for l in range(i + 1, T):
            best = np.fmax(best, A[..., l, t])
        maxf.append(best - A[..., T, t])
    out = {f"Learning_{i}": v for i, v in enumerate(learn, start=1)}
    out["Learning"] = _nanmean(learn, shape)
    out.update({f"HeldOut_{i}": v for i, v in enumerate(held, start=1)})
    out["HeldOut_final"] = held[-1]
    out["HeldOut_mean"] = _nanmean(held, shape)
    out["BWT"] = _nanmean(bwt, shape)
    out["MaxForgetting"] = _nanmean(maxf, shape)
    assert list(out) == summary_columns(T)
    return out


# --------------------------------------------------------------------------- per-item scores
@dataclass
class Items:
    """Per-item scores of one experiment. ``scores[b]``: (items, columns) in 0-1, NaN = absent;
    column :meth:`col` of (seed index, method index, stage) is the same for every benchmark;
    ``status``: one row per evaluation (tables/items.csv)."""

    seeds: list[int]
    methods: list[str]
    n_stages: int
    benchmarks: list[str]
    ids: dict[str, list[str]]
    scores: dict[str, np.ndarray]
    status: pd.DataFrame

    def col(self, s: int, m: int, k: int) -> int:
        per_seed = 1 + len(self.methods) * self.n_stages
        return s * per_seed if k == 0 else s * per_seed + 1 + m * self.n_stages + (k - 1)

    @property
    def n_cols(self) -> int:
        return len(self.seeds) * (1 + len(self.methods) * self.n_stages)

    def column_index(self) -> np.ndarray:
        """(S, M, T+1) array of columns: the base's column for stage 0 of every method."""
        S, M, T = len(self.seeds), len(self.methods), self.n_stages
        return np.array([[[self.col(s, m, k) for k in range(T + 1)] for m in range(M)] for s in range(S)],
                        dtype=int).reshape(S, M, T + 1)


ITEM_COLUMNS = ["seed", "method", "stage", "task", "benchmark", "status", "items", "unscored",
                "paired_with_base", "only_here", "only_in_base"]


def _read_rows(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e})") from None
    return rows


def _row_item(row: dict) -> str | None:
    """The row's item id: `item` (written since per-item pairing), else the doc's `id`, else its
    position `doc_id` (samples files written before `item` existed)."""
    for key in ("item", "id"):
        if row.get(key) is not None:
            return str(row[key])
    return None if row.get("doc_id") is None else f"doc_id:{row['doc_id']}"


def _row_score(row: dict) -> float | None:
    v = row.get("score")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        return None
    return float(v)


def _cell_items(path: Path, score: float) -> tuple[str, dict[str, float], int]:
    """(status, {item: score}, unscored rows) of one evaluation; status "ok" when usable."""
    rows = _read_rows(path)
    if rows is None:
        return "no samples file", {}, 0
    got, unscored, dup = {}, 0, False
    for row in rows:
        item, value = _row_item(row), _row_score(row)
        if item is None or value is None:
            unscored += 1
            continue
        if item in got:
            dup = True
        got[item] = value
    if dup:
        return "duplicate item ids", {}, unscored
    if not got:
        return "no per-item scores", {}, unscored
    if score != score:
        return "score is null", {}, unscored
    mean = 100.0 * float(np.mean(list(got.values())))
    if abs(mean - score) > TOLERANCE:
        return f"item mean {mean:.4f} != score {score:.4f}", {}, unscored
    return "ok", got, unscored


def collect_items(results_dir: str | os.PathLike, plan: Mapping, scores: pd.DataFrame) -> Items:
    """Per-item scores of every evaluation of the plan (the samples files next to the JSONs that
    ``scores``, :func:`lmmcl.report.scores.collect_scores`, was read from)."""
    p = normalize_plan(plan)
    layout = Layout(p["experiment"], root=results_dir)
    seeds, methods, seq = p["seeds"], p["methods"], p["sequence"]
    T = len(seq)
    official = {(int(r.seed), r.method, int(r.stage), r.benchmark): (r.metric, float(r.score))
                for r in scores[["seed", "method", "stage", "benchmark", "metric", "score"]].itertuples()}
    cells = []  # (seed index, method index or None, stage, task)
    for s in range(len(seeds)):
        cells.append((s, None, 0, BASE_TASK))
        cells += [(s, mi, k, task) for mi in range(len(methods)) for k, task in enumerate(seq, start=1)]
    holder = Items(seeds, methods, T, p["benchmarks"], {}, {}, pd.DataFrame(columns=ITEM_COLUMNS))
    status_rows = []
    for b in p["benchmarks"]:
        order: dict[str, int] = {}
        got_cols: dict[int, dict[str, float]] = {}
        base_items: dict[int, set] = {}
        for s, mi, k, task in cells:
            seed, m = seeds[s], methods[mi] if mi is not None else methods[0]
            metric, score = official.get((seed, m, k, b), ("missing", float("nan")))
            if metric == MISSING_METRIC:
                status, got, unscored = "missing evaluation", {}, 0
            else:
                status, got, unscored = _cell_items(Path(layout.eval_samples(seed, m, k, task, b)), score)
            col = holder.col(s, mi or 0, k)
            got_cols[col] = got
            for item in got:
                order.setdefault(item, len(order))
            ids = set(got)
            if k == 0:
                base_items[s] = ids
            base = base_items.get(s, set())
            status_rows.append({
                "seed": seed, "method": BASE_TASK if k == 0 else m, "stage": k, "task": task, "benchmark": b,
                "status": status, "items": len(ids), "unscored": unscored,
                "paired_with_base": len(ids & base), "only_here": len(ids - base) if k else 0,
                "only_in_base": len(base - ids) if k and ids else 0,
            })
        X = np.full((len(order), holder.n_cols), np.nan)
        for col, got in got_cols.items():
            for item, value in got.items():
                X[order[item], col] = value
        holder.ids[b], holder.scores[b] = list(order), X
    holder.status = pd.DataFrame(status_rows, columns=ITEM_COLUMNS)
    bad = holder.status[holder.status["status"] != "ok"]
    unpaired = holder.status[(holder.status["only_here"] > 0) | (holder.status["only_in_base"] > 0)]
    if len(bad):
        log.warning("%d of %d evaluations give no per-item scores for the intervals, e.g. %s",
                    len(bad), len(holder.status), bad.iloc[0].to_dict())
    if len(unpaired):
        log.warning("%d evaluations have items their base lacks or lack items of their base (tables/items.csv)",
                    len(unpaired))
    return holder


# --------------------------------------------------------------------------- the intervals
@dataclass
class Intervals:
    """Every interval of one experiment (long tables; see :func:`compute_intervals`)."""

    summary: pd.DataFrame             # learning_forgetting_ci.csv
    per_seed: pd.DataFrame            # learning_forgetting_seeds_ci.csv
    cells: dict[str, pd.DataFrame]    # R_<method>_ci.csv
    deltas: dict[str, pd.DataFrame]   # deltas_<method>_ci.csv
    comparisons: pd.DataFrame         # comparisons.csv
    items: pd.DataFrame               # items.csv
    resamples: int
    note: str = ""                    # why there are none, when there are none
    seeds: list[int] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return bool(self.summary["lo"].notna().any()) if len(self.summary) else False

    def wide(self, col: str) -> pd.DataFrame:
        """learning_forgetting_ci.csv as method × metric for one of its columns (lo, hi, ...)."""
        return self.summary.pivot(index="method", columns="metric", values=col)


SUMMARY_CI_COLUMNS = ["method", "metric", "estimate", "lo", "hi", "contains_zero", "items_lo", "items_hi",
                      "seed_std", "seeds", "interval"]
SEEDS_CI_COLUMNS = ["method", "seed", "metric", "estimate", "lo", "hi", "contains_zero", "interval"]
CELL_CI_COLUMNS = ["stage", "task", "benchmark", "score", "lo", "hi", "items", "interval"]
DELTA_CI_COLUMNS = ["stage", "task", "benchmark", "delta", "lo", "hi", "contains_zero", "paired_items", "interval"]
COMPARISON_COLUMNS = ["method_a", "method_b", "metric", "a", "b", "difference", "lo", "hi", "contains_zero",
                      "interval"]


def _contains_zero(lo, hi) -> pd.Series:
    """Per entry: True / False whether [lo, hi] contains 0, None without an interval (an object
    column: Python bools and None)."""
    values = [None if (np.isnan(a) or np.isnan(b)) else bool(a <= 0 <= b)
              for a, b in zip(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))]
    return pd.Series(values, index=getattr(lo, "index", None), dtype=object)


def _combine(V: np.ndarray, O: np.ndarray, level: float = LEVEL,
             limits: tuple[float, float] = (-100.0, 100.0)) -> dict[str, np.ndarray]:
    """Intervals of a quantity from its resamples ``V`` (R, S, *shape) and its per-seed table values
    ``O`` (S, *shape). Returns per-seed lo/hi (S, *shape) and, for the seed mean (the table's
    value, nan-aware as pandas' mean): est, lo, hi (combined with several seeds, cut to the
    quantity's possible range ``limits``: pp of a change, % of a score), items_lo/hi, seed_std,
    seeds (number of non-NaN seeds)."""
    S = O.shape[0]
    shape = O.shape[1:]
    seed_lo, seed_hi = percentile_interval(V, level, axis=0)
    est = _nanmean([O[s] for s in range(S)], shape)
    n_ok = np.sum(~np.isnan(O), axis=0)
    vbar = _nanmean([V[:, s] for s in range(S)], V.shape[:1] + shape)
    items_lo, items_hi = percentile_interval(vbar, level, axis=0)
    with _quiet():
        seed_std = np.nanstd(O, axis=0, ddof=1) if S > 1 else np.full(shape, np.nan)
        se_items2 = np.nanvar(vbar, axis=0, ddof=1)
    seed_std = np.where(n_ok > 1, seed_std, np.nan)
    lo, hi = items_lo.copy(), items_hi.copy()
    multi = n_ok > 1
    if np.any(multi):
        b = np.where(multi, seed_std ** 2 / np.maximum(n_ok, 1), np.nan)
        total = se_items2 + b
        half = np.full(shape, np.nan)
        for idx in zip(*np.nonzero(multi)):
            if np.isnan(total[idx]) or np.isnan(items_lo[idx]):
                continue
            nu = math.inf if b[idx] == 0 else total[idx] ** 2 * (n_ok[idx] - 1) / b[idx] ** 2
            half[idx] = t_quantile(0.5 + level / 2, float(nu)) * math.sqrt(total[idx])
        lo = np.where(multi, np.maximum(est - half, limits[0]), lo)
        hi = np.where(multi, np.minimum(est + half, limits[1]), hi)
    return {"seed_lo": seed_lo, "seed_hi": seed_hi, "est": est, "lo": lo, "hi": hi, "items_lo": items_lo,
            "items_hi": items_hi, "seed_std": seed_std, "seeds": n_ok}


def _guard(V: np.ndarray, point: np.ndarray, O: np.ndarray) -> np.ndarray:
    """V with NaN wherever the items' full-sample value (``point``, S × shape) does not reproduce
    the table's per-seed value ``O`` (a seed's NaN on one side only counts as a mismatch; both NaN
    is fine: not computable either way). A quantity with any such seed is NaN for every seed."""
    same = (np.isnan(point) & np.isnan(O)) | (np.abs(point - O) <= TOLERANCE)
    good = np.all(same, axis=0)
    return np.where(good[None, None], V, np.nan)


def compute_intervals(scores: pd.DataFrame | None, per_seed: pd.DataFrame | None, plan: Mapping,
                      items: Items | None, resamples: int | None = None, level: float = LEVEL,
                      note: str = "") -> Intervals:
    """Every interval of the report from the per-item scores.

    ``scores``: the long score table (:func:`lmmcl.report.scores.collect_scores`); ``per_seed``: its
    :func:`lmmcl.report.summary.summary_per_seed`; ``items``: :func:`collect_items`. Returns
    :class:`Intervals` whose tables hold the table's number (``estimate``/``score``/``delta``/
    ``difference``), ``lo``, ``hi`` and the method (``interval``, or ``n/a: why``)."""
    p = normalize_plan(plan)
    resamples = int(p["intervals"]["resamples"] if resamples is None else resamples)
    seeds, methods, seq = p["seeds"], p["methods"], p["sequence"]
    S, M, T = len(seeds), len(methods), len(seq)
    benches = p["benchmarks"]
    bidx = {b: j for j, b in enumerate(benches)}
    targets = [bidx[t] for t in p["stage_targets"]]
    held = [bidx[h] for h in p["held_out"]]
    cols = summary_columns(T)
    R = max(resamples, 1)
    usable = items is not None and resamples > 0 and scores is not None
    if usable and not (items.status["status"] == "ok").any():
        usable, note = False, note or "no evaluation has usable per-item scores (tables/items.csv)"
    if not usable and not note:
        note = "intervals off: intervals.resamples is 0" if resamples <= 0 else "no per-item scores"

    # official per-seed numbers: R cells (S, M, T+1, B) and metrics (S, M) per column
    O_R = np.full((S, M, T + 1, len(benches)), np.nan)
    if scores is not None:
        sub = scores[scores["seed"].isin(seeds) & scores["method"].isin(methods) & scores["benchmark"].isin(benches)]
        sidx, midx = {s: i for i, s in enumerate(seeds)}, {m: i for i, m in enumerate(methods)}
        O_R[sub["seed"].map(sidx).to_numpy(), sub["method"].map(midx).to_numpy(), sub["stage"].to_numpy(),
            sub["benchmark"].map(bidx).to_numpy()] = sub["score"].to_numpy(dtype=float)
    O_M = {c: np.full((S, M), np.nan) for c in cols}
    if per_seed is not None:
        for mi, m in enumerate(methods):
            for si, s in enumerate(seeds):
                if (m, s) in per_seed.index:
                    for c in cols:
                        O_M[c][si, mi] = float(per_seed.at[(m, s), c])

    # resampled and full-sample R stacks: (R, S, M, T+1, B) and (S, M, T+1, B)
    A = np.full((R, S, M, T + 1, len(benches)), np.nan)
    A0 = np.full((S, M, T + 1, len(benches)), np.nan)
    binary = np.zeros((S, M, T + 1, len(benches)), dtype=bool)
    succ = np.zeros((S, M, T + 1, len(benches)))
    n_items = np.zeros((S, M, T + 1, len(benches)))
    paired = np.zeros((S, M, T + 1, len(benches)))
    if usable:
        colidx = items.column_index()
        for b in benches:
            X = items.scores[b]
            j = bidx[b]
            if X.shape[0] == 0:
                continue
            V, point = bootstrap_means(X, resamples, _rng(b))
            A[..., j] = V[:, colidx]
            A0[..., j] = point[colidx]
            pres = ~np.isnan(X)
            bin_col = np.all(np.where(pres, (X == 0) | (X == 1), True), axis=0)
            binary[..., j] = bin_col[colidx]
            succ[..., j] = np.nansum(np.where(pres, X, 0), axis=0)[colidx]
            n_items[..., j] = pres.sum(axis=0)[colidx]
            base_cols = colidx[:, :, :1].repeat(T + 1, axis=2)
            paired[..., j] = (pres[:, colidx] & pres[:, base_cols]).sum(axis=0)

    # A cell the table has but the items cannot give is +inf in the items' full-sample stack: every
    # number that uses it then differs from the table's, and the guard drops its interval (a
    # nan-aware mean would otherwise quietly skip it, giving the interval of another number).
    A0 = np.where(np.isnan(A0) & ~np.isnan(O_R), np.inf, A0)

    # metrics: resampled (R, S, M) and from the items (S, M), guarded against the table's values
    with np.errstate(invalid="ignore"):
        VM = metric_arrays(A, targets, held)
        PM = metric_arrays(A0, targets, held)
    summary_rows, seed_rows = [], []
    results = {}
    for c in cols:
        V = _guard(VM[c], PM[c], O_M[c])
        res = _combine(V, O_M[c], level)
        results[c] = (V, res)
        for mi, m in enumerate(methods):
            ok = not np.isnan(res["lo"][mi])
            how = (COMBINED if res["seeds"][mi] > 1 else BOOTSTRAP) if ok else _why(note, res["est"][mi], usable)
            summary_rows.append({
                "method": m, "metric": c, "estimate": res["est"][mi], "lo": res["lo"][mi], "hi": res["hi"][mi],
                "items_lo": res["items_lo"][mi], "items_hi": res["items_hi"][mi],
                "seed_std": res["seed_std"][mi], "seeds": int(res["seeds"][mi]), "interval": how,
            })
            for si, s in enumerate(seeds):
                lo_s, hi_s = res["seed_lo"][si, mi], res["seed_hi"][si, mi]
                seed_rows.append({"method": m, "seed": s, "metric": c, "estimate": O_M[c][si, mi], "lo": lo_s,
                                  "hi": hi_s, "interval": BOOTSTRAP if not np.isnan(lo_s)
                                  else _why(note, O_M[c][si, mi], usable)})
    summary = pd.DataFrame(summary_rows)
    summary["contains_zero"] = _contains_zero(summary["lo"], summary["hi"])
    per_seed_ci = pd.DataFrame(seed_rows)
    per_seed_ci["contains_zero"] = _contains_zero(per_seed_ci["lo"], per_seed_ci["hi"])

    # R cells and per-benchmark deltas
    labels = [BASE_TASK] + seq
    VR = _guard(A, A0, O_R)
    cell_res = _combine(VR, O_R, level, limits=(0.0, 100.0))
    wl, wh = wilson_interval(succ, n_items, level)
    single = cell_res["seeds"] <= 1
    # one seed of 0/1 items: Wilson; the seed whose value it is (the only non-NaN one)
    s_of = np.argmax(~np.isnan(O_R), axis=0)
    take = lambda arr: np.take_along_axis(arr, s_of[None], axis=0)[0]  # noqa: E731
    use_wilson = single & take(binary) & ~np.isnan(cell_res["lo"])
    c_lo = np.where(use_wilson, take(wl), cell_res["lo"])
    c_hi = np.where(use_wilson, take(wh), cell_res["hi"])
    D = VR[..., 1:, :] - VR[..., :1, :]
    OD = O_R[:, :, 1:, :] - O_R[:, :, :1, :]
    d_res = _combine(D, OD, level)
    cells, deltas = {}, {}
    for mi, m in enumerate(methods):
        rows = []
        for k in range(T + 1):
            for j, b in enumerate(benches):
                ok = not np.isnan(c_lo[mi, k, j])
                how = (COMBINED if cell_res["seeds"][mi, k, j] > 1 else WILSON if use_wilson[mi, k, j]
                       else BOOTSTRAP_CELL) if ok else _why(note, cell_res["est"][mi, k, j], usable)
                rows.append({"stage": k, "task": labels[k], "benchmark": b, "score": cell_res["est"][mi, k, j],
                             "lo": c_lo[mi, k, j], "hi": c_hi[mi, k, j], "items": int(take(n_items)[mi, k, j]),
                             "interval": how})
        cells[m] = pd.DataFrame(rows, columns=CELL_CI_COLUMNS)
        rows = []
        for k in range(1, T + 1):
            for j, b in enumerate(benches):
                lo, hi = d_res["lo"][mi, k - 1, j], d_res["hi"][mi, k - 1, j]
                ok = not np.isnan(lo)
                how = (COMBINED if d_res["seeds"][mi, k - 1, j] > 1 else BOOTSTRAP) if ok else _why(
                    note, d_res["est"][mi, k - 1, j], usable)
                rows.append({"stage": k, "task": labels[k], "benchmark": b, "delta": d_res["est"][mi, k - 1, j],
                             "lo": lo, "hi": hi, "paired_items": int(take(paired)[mi, k, j]), "interval": how})
        df = pd.DataFrame(rows)
        df["contains_zero"] = _contains_zero(df["lo"], df["hi"])
        deltas[m] = df[DELTA_CI_COLUMNS]

    # recipe vs recipe: paired over items (and seeds: each seed's two methods share its base)
    comp_rows = []
    for c in COMPARED:
        V, _ = results[c]
        for a in range(M):
            for b in range(a + 1, M):
                Vd = V[:, :, a] - V[:, :, b]
                Od = O_M[c][:, a] - O_M[c][:, b]
                r = _combine(Vd[..., None], Od[..., None], level, limits=(-200.0, 200.0))
                lo, hi, est = r["lo"][0], r["hi"][0], r["est"][0]
                ok = not np.isnan(lo)
                how = (COMBINED if r["seeds"][0] > 1 else BOOTSTRAP) if ok else _why(note, est, usable)
                comp_rows.append({"method_a": methods[a], "method_b": methods[b], "metric": c,
                                  "a": float(_nanmean([O_M[c][s, a] for s in range(S)], ())),
                                  "b": float(_nanmean([O_M[c][s, b] for s in range(S)], ())),
                                  "difference": est, "lo": lo, "hi": hi, "interval": how})
    comparisons = pd.DataFrame(comp_rows, columns=[c for c in COMPARISON_COLUMNS if c != "contains_zero"])
    comparisons["contains_zero"] = _contains_zero(comparisons["lo"], comparisons["hi"])
    status = items.status if items is not None else pd.DataFrame(columns=ITEM_COLUMNS)
    return Intervals(summary=summary[SUMMARY_CI_COLUMNS], per_seed=per_seed_ci[SEEDS_CI_COLUMNS], cells=cells,
                     deltas=deltas, comparisons=comparisons[COMPARISON_COLUMNS], items=status,
                     resamples=resamples, note=note, seeds=list(seeds))


def _why(note: str, value, usable: bool) -> str:
    """The `interval` entry of a quantity without one."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or (
            isinstance(value, np.floating) and np.isnan(value)):
        return "n/a: not computable"
    if not usable:
        return f"n/a: {note}"
    return "n/a: per-item scores do not reproduce this number (tables/items.csv)"
