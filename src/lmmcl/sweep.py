"""Sweeps: a grid of method settings (recipe × lr × ...) expanded into ordinary methods, and the
written rule that picks one learning rate per recipe from a sweep's results.

Config (`sweep`, validated by the schema; every grid key is a method key, `recipe` and `method`
included, or a training hyperparameter)::

    sweep:
      grid: {recipe: [llm, sa_proj, mlp_gate_up], lr: [1.0e-4, 3.0e-4, 1.0e-3]}
      method: {}                        # keys every sweep method shares (e.g. method: lwf)
      lr_rule: {reference: llm}         # the lr rule reported in tables/pareto.md

Each grid point becomes the method `<recipe>_<key><value>...` (e.g. `sa_proj_lr3e-4`), so the
sweep runs through the same DAG, seeds and tables as hand-written methods, and the report adds
the Pareto table and plot (Learning vs HeldOut_mean) over every method and seed.

Two lr rules (`pick_lrs`), each the same for every recipe:

- `{reference: <recipe>}` -- **one lr for every recipe** (the study's protocol: every component
  recipe at the same lr): the lr with which the reference recipe (e.g. the whole LLM, the standard
  fine-tune) learns most, i.e. the highest mean Learning over seeds.
- `{min_learning: <pp>}` -- **one lr per recipe**: among the grid points that differ only in `lr`,
  the smallest lr whose mean Learning reaches the bar; where none does, the lr with the highest
  Learning, marked as below the bar. A recipe that learns slowly gets a larger lr, never a smaller bar.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

NAME_KEY_ORDER = ("recipe", "method")


def format_value(value) -> str:
    """Compact, path-safe rendering of a grid value: 3e-4, 300, 0.5, True."""
    if isinstance(value, float):
        text = np.format_float_scientific(value, trim="-", exp_digits=1).replace("+", "")
        plain = f"{value:g}"
        return plain if len(plain) <= len(text) else text
    return str(value)


def method_name(point: dict) -> str:
    """`<recipe>_<method>_<key><value>...`: recipe and method bare, other keys in grid order."""
    parts = [str(point[k]) for k in NAME_KEY_ORDER if k in point]
    parts += [f"{k}{format_value(v)}" for k, v in point.items() if k not in NAME_KEY_ORDER]
    return "_".join(parts)


def expand(sweep: dict) -> dict[str, dict]:
    """{method name: method spec} for every point of the grid (in grid order)."""
    grid = sweep.get("grid") or {}
    if not grid:
        raise ValueError("sweep.grid: give at least one key with a list of values, e.g. {lr: [1.0e-4, 3.0e-4]}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep.grid.{key}: expected a non-empty list of values, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"sweep.grid.{key}: repeated value in {values}")
    shared = dict(sweep.get("method") or {})
    clash = sorted(set(shared) & set(grid))
    if clash:
        raise ValueError(f"sweep: {clash} set both in sweep.method and sweep.grid; keep one")
    return {m: {**shared, **point} for m, point in grid_points(sweep).items()}


def grid_points(sweep: dict | None) -> dict[str, dict]:
    """{method name: its grid point} (what varies), in grid order; {} without a sweep."""
    if not sweep:
        return {}
    grid = sweep["grid"]
    points = (dict(zip(grid, values)) for values in itertools.product(*grid.values()))
    return {method_name(point): point for point in points}


def pick_lrs(points: dict[str, dict], learning: dict[str, float], rule: dict) -> dict[str, str]:
    """The lr rule (module docstring): {method: verdict} for every swept method, the verdict being
    "picked", "picked (below bar)" or "" (not picked).

    `points`: each method's grid point (must hold `lr`); `learning`: its mean Learning (pp).
    """
    for m, point in points.items():
        if "lr" not in point:
            raise ValueError(f"the lr rule needs `lr` in sweep.grid; method {m} has {sorted(point)}")
    if "reference" in rule:
        return _shared_lr(points, learning, str(rule["reference"]))
    return _lr_per_recipe(points, learning, float(rule["min_learning"]))


def _groups(points: dict[str, dict], varying: tuple[str, ...]) -> list[list[str]]:
    """The swept methods grouped by their grid point without the `varying` keys (in grid order)."""
    groups: dict[tuple, list[str]] = {}
    for m, point in points.items():
        key = tuple(sorted((k, repr(v)) for k, v in point.items() if k not in varying))
        groups.setdefault(key, []).append(m)
    return list(groups.values())


def _shared_lr(points, learning, reference: str) -> dict[str, str]:
    """Per group of grid points that differ only in recipe and lr: the lr of the reference recipe's
    highest Learning, picked for every recipe of the group."""
    verdict = {m: "" for m in points}
    for members in _groups(points, varying=("lr", "recipe")):
        ref = [m for m in members if points[m].get("recipe") == reference and not math.isnan(learning.get(m, math.nan))]
        if not ref:
            if not any(points[m].get("recipe") == reference for m in members):
                raise ValueError(f"lr_rule.reference: no method of the sweep has recipe {reference!r}; "
                                 f"allowed: {sorted({str(points[m].get('recipe')) for m in members})}")
            continue
        best = float(points[max(ref, key=lambda m: learning[m])]["lr"])
        for m in members:
            if float(points[m]["lr"]) == best:
                verdict[m] = "picked"
    return verdict


def _lr_per_recipe(points, learning, min_learning: float) -> dict[str, str]:
    verdict = {m: "" for m in points}
    for members in _groups(points, varying=("lr",)):
        members.sort(key=lambda m: float(points[m]["lr"]))
        finite = [m for m in members if not math.isnan(learning.get(m, math.nan))]
        if not finite:
            continue
        reached = [m for m in finite if learning[m] >= min_learning]
        if reached:
            verdict[reached[0]] = "picked"
        else:
            verdict[max(finite, key=lambda m: learning[m])] = "picked (below bar)"
    return verdict


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Methods not dominated in (Learning ↑, HeldOut_mean ↑): no other method is at least as good
    on both and better on one. NaN points are never on the front."""
    ok = {m: p for m, p in points.items() if not any(math.isnan(v) for v in p)}
    front = set()
    for m, (l, h) in ok.items():
        dominated = any((l2 >= l and h2 >= h) and (l2 > l or h2 > h) for n, (l2, h2) in ok.items() if n != m)
        if not dominated:
            front.add(m)
    return front
