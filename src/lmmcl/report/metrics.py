"""Learning / forgetting metrics computed from a per-method score matrix R.

Notation
--------
``R`` is a DataFrame for one method: index = stage ``0..T`` (int; row 0 = the base
model, row ``i`` = the checkpoint right after training stage ``i``), columns =
benchmarks, values = primary metric on a 0-100 scale.  ``t_i`` is the target
benchmark of stage ``i`` (``targets[i - 1]``), ``H`` the held-out benchmarks.
All differences are in percentage points (pp).

Missing data
------------
A missing evaluation is NaN, never 0.  A quantity that needs a missing cell is
NaN.  Quantities that are *means over benchmarks or stages* (HeldOut_i, Learning,
HeldOut_mean, BWT, MaxForgetting) skip NaN terms (nan-aware mean) and are NaN only
when every term is NaN.  Consequence: such a mean may be computed over fewer terms
than nominal; the per-stage columns of the tables show which terms are ``n/a``.
Stages or benchmarks absent from R are treated as missing cells (NaN).

All functions are pure: they never modify ``R``.

Intervals
---------
The 95 % interval of every metric over the test items (and seeds) recomputes these formulas on
resampled R matrices: :func:`lmmcl.report.intervals.metric_arrays` (tested equal to
:func:`summary`), used by :mod:`lmmcl.report.intervals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DEFINITIONS",
    "SUMMARY_SCALARS",
    "learning_per_stage",
    "heldout_per_stage",
    "bwt_per_stage",
    "max_forgetting_per_stage",
    "bwt",
    "max_forgetting",
    "summary",
    "summary_columns",
    "nanmean",
]

#: One-line definition of every metric (used in table headers).
DEFINITIONS: dict[str, str] = {
    "Learning_i": "Learning_i = R[i][t_i] − R[0][t_i] (target gain right after stage i vs. the base model, pp)",
    "Learning": "Learning = mean over i=1..T of Learning_i (mean target gain, pp)",
    "HeldOut_i": "HeldOut_i = mean over h in H of (R[i][h] − R[0][h]) (held-out change after stage i, pp; negative = forgetting)",
    "HeldOut_final": "HeldOut_final = HeldOut_T (held-out change of the final checkpoint, pp)",
    "HeldOut_mean": "HeldOut_mean = mean over i=1..T of HeldOut_i (held-out change averaged over stages, pp)",
    "BWT": "BWT = mean over i<T of (R[T][t_i] − R[i][t_i]) (backward transfer on earlier targets, pp; negative = forgetting)",
    "MaxForgetting": (
        "MaxForgetting = mean over i<T of (max_{l=i..T−1} R[l][t_i] − R[T][t_i]) "
        "(Chaudhry et al. forgetting: drop from the best score reached after learning t_i and before the last stage, pp; positive = forgetting)"
    ),
}

#: Scalar (non per-stage) keys of :func:`summary`, in table order.
SUMMARY_SCALARS = ("Learning", "HeldOut_final", "HeldOut_mean", "BWT", "MaxForgetting")

_NAN = float("nan")


def nanmean(values: Iterable[float]) -> float:
    """Mean of the non-NaN values; NaN (without a warning) if there are none."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else _NAN


def _nanmax(values: Iterable[float]) -> float:
    arr = np.asarray(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.max()) if arr.size else _NAN


def _n_stages(R: pd.DataFrame) -> int:
    _check_index(R)
    return int(max(R.index)) if len(R.index) else 0


def _check_index(R: pd.DataFrame) -> None:
    for i in R.index:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"R must be indexed by integer stage 0..T, got index value {i!r}")


def _prep(R: pd.DataFrame, n_stages: int, columns: Iterable[str]) -> pd.DataFrame:
    """R restricted/extended to rows 0..n_stages and the given columns (absent -> NaN)."""
    _check_index(R)
    if len(R.index) and int(max(R.index)) > n_stages:
        raise ValueError(
            f"R has stage {int(max(R.index))} but only {n_stages} stage targets were given"
        )
    if not R.columns.is_unique:
        raise ValueError("R has duplicate benchmark columns")
    cols = list(dict.fromkeys(columns))
    return R.reindex(index=range(n_stages + 1), columns=cols).astype(float)


def _cell(R: pd.DataFrame, stage: int, bench: str) -> float:
    return float(R.at[stage, bench])


def learning_per_stage(R: pd.DataFrame, targets: Sequence[str]) -> pd.Series:
    """Learning_i = R[i][t_i] − R[0][t_i] for i = 1..T (``T = len(targets)``).

    NaN if either cell is missing.  Returns a Series indexed by stage 1..T.
    """
    T = len(targets)
    M = _prep(R, T, targets)
    vals = [_cell(M, i, t) - _cell(M, 0, t) for i, t in enumerate(targets, start=1)]
    return pd.Series(vals, index=pd.RangeIndex(1, T + 1, name="stage"), name="Learning", dtype=float)


def heldout_per_stage(
    R: pd.DataFrame, held_out: Sequence[str], n_stages: int | None = None
) -> pd.Series:
    """HeldOut_i = mean over h in H of (R[i][h] − R[0][h]) for i = 1..T.

    The mean is nan-aware: a benchmark whose cell (at stage i or at the base) is
    missing is skipped; HeldOut_i is NaN only if no held-out difference exists
    (in particular when ``held_out`` is empty).  ``T`` defaults to the largest
    stage in ``R``'s index.
    """
    T = _n_stages(R) if n_stages is None else int(n_stages)
    M = _prep(R, T, held_out)
    hs = list(dict.fromkeys(held_out))
    vals = [nanmean(_cell(M, i, h) - _cell(M, 0, h) for h in hs) for i in range(1, T + 1)]
    return pd.Series(vals, index=pd.RangeIndex(1, T + 1, name="stage"), name="HeldOut", dtype=float)


def bwt_per_stage(R: pd.DataFrame, targets: Sequence[str]) -> pd.Series:
    """R[T][t_i] − R[i][t_i] for i = 1..T−1 (empty when T < 2); NaN if a cell is missing."""
    T = len(targets)
    M = _prep(R, T, targets)
    vals = [_cell(M, T, t) - _cell(M, i, t) for i, t in enumerate(targets[:-1], start=1)]
    return pd.Series(vals, index=pd.RangeIndex(1, max(T, 1), name="stage"), name="BWT", dtype=float)


def max_forgetting_per_stage(R: pd.DataFrame, targets: Sequence[str]) -> pd.Series:
    """f_i = max_{l=i..T−1} R[l][t_i] − R[T][t_i] for i = 1..T−1 (empty when T < 2).

    The max runs over the checkpoints *after* t_i was learned (row i) and *before*
    the last stage (row T−1), Chaudhry et al. (2018).  It skips missing rows and is
    NaN if all of them, or R[T][t_i], are missing.
    """
    T = len(targets)
    M = _prep(R, T, targets)
    vals = []
    for i, t in enumerate(targets[:-1], start=1):
        best = _nanmax(M.loc[i : T - 1, t].to_numpy())
        vals.append(best - _cell(M, T, t))
    return pd.Series(vals, index=pd.RangeIndex(1, max(T, 1), name="stage"), name="MaxForgetting", dtype=float)


def bwt(R: pd.DataFrame, targets: Sequence[str]) -> float:
    """BWT = mean over i<T of (R[T][t_i] − R[i][t_i]) (Lopez-Paz & Ranzato, 2017).

    Nan-aware mean over stages; NaN when T < 2 or every term is missing.
    Negative = the final model lost skill learned earlier.
    """
    return nanmean(bwt_per_stage(R, targets))


def max_forgetting(R: pd.DataFrame, targets: Sequence[str]) -> float:
    """MaxForgetting = mean over i<T of (max_{l=i..T−1} R[l][t_i] − R[T][t_i]).

    Chaudhry et al. (2018) forgetting; the max is over rows l = i..T−1 (after the
    skill was learned, before the last stage).  Unlike BWT it also counts a skill
    that *improved* after its own stage and then dropped.  Nan-aware mean over
    stages; NaN when T < 2 or every term is missing.  Positive = forgetting.
    """
    return nanmean(max_forgetting_per_stage(R, targets))


def summary_columns(n_stages: int) -> list[str]:
    """Column order of :func:`summary` / the learning-forgetting table."""
    T = int(n_stages)
    return (
        [f"Learning_{i}" for i in range(1, T + 1)]
        + ["Learning"]
        + [f"HeldOut_{i}" for i in range(1, T + 1)]
        + ["HeldOut_final", "HeldOut_mean", "BWT", "MaxForgetting"]
    )


def summary(R: pd.DataFrame, targets: Sequence[str], held_out: Sequence[str]) -> dict[str, float]:
    """All metrics of one method, keys in :func:`summary_columns` order.

    Learning_1..T, Learning (nan-aware mean of Learning_i), HeldOut_1..T,
    HeldOut_final (= HeldOut_T), HeldOut_mean (nan-aware mean of HeldOut_i), BWT,
    MaxForgetting.  ``T = len(targets)``.
    """
    T = len(targets)
    if T < 1:
        raise ValueError("summary needs at least one stage target")
    learn = learning_per_stage(R, targets)
    held = heldout_per_stage(R, held_out, n_stages=T)
    out: dict[str, float] = {}
    for i in range(1, T + 1):
        out[f"Learning_{i}"] = float(learn[i])
    out["Learning"] = nanmean(learn)
    for i in range(1, T + 1):
        out[f"HeldOut_{i}"] = float(held[i])
    out["HeldOut_final"] = float(held[T])
    out["HeldOut_mean"] = nanmean(held)
    out["BWT"] = bwt(R, targets)
    out["MaxForgetting"] = max_forgetting(R, targets)
    assert list(out) == summary_columns(T)
    return out
