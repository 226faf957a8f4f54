"""The report plan: what one experiment ran, as `lmmcl report` and `lmmcl gallery` read it.

The plan is a plain dict (written by :meth:`lmmcl.config.Plan.report_plan`, stored next to
scores.csv as ``report_plan.json`` and read back by :mod:`lmmcl.report.across`)::

    {"experiment": str, "seeds": [int], "methods": [str], "sequence": [task, ...],      # stage 1..T
     "stage_targets": {task: benchmark},   # default: the task name itself
     "target": [...], "held_out": [...], "extra": [...],                  # benchmark groups
     "chance": {benchmark: float},                                        # 0-100
     "sweep": {method: {grid key: value}}, "lr_rule": {"min_learning": pp} | None,   # optional
     "paper": {method: {"learning": pp, "heldout": pp}}, "paper_source": str,      # optional: the
                                                   # study's headline numbers (config compare_to_paper)
     "intervals": {"resamples": int}}   # optional: bootstrap resamples of the 95 % intervals
                                        # (config intervals.resamples; 0 = none; lmmcl.report.intervals)
"""
from __future__ import annotations

from collections.abc import Mapping

from ..layout import BASE

__all__ = ["BASE_TASK", "DEFAULT_RESAMPLES", "normalize_plan", "stage_labels"]

#: task of the stage-0 rows of scores.csv (the base), never a method name
BASE_TASK = BASE
#: bootstrap resamples of the intervals when the plan names none (config `intervals.resamples`)
DEFAULT_RESAMPLES = 2000


def _dedup(xs) -> list:
    return list(dict.fromkeys(xs))


def _check_names(plan: Mapping) -> tuple[str, list[str], list[str]]:
    """(experiment, methods, sequence) of a plan; ValueError naming what is wrong."""
    exp = plan.get("experiment")
    if not isinstance(exp, str) or not exp:
        raise ValueError("plan['experiment'] must be a non-empty string")
    methods = [str(m) for m in plan.get("methods") or []]
    if not methods:
        raise ValueError("plan['methods'] must list at least one method")
    if len(set(methods)) != len(methods):
        raise ValueError(f"duplicate methods in plan: {methods}")
    if BASE_TASK in methods:
        raise ValueError(f"'{BASE_TASK}' is reserved for the stage-0 evaluations, not a method name")
    seq = [str(t) for t in plan.get("sequence") or []]
    if not seq:
        raise ValueError("plan['sequence'] must list at least one task")
    return exp, methods, seq


def _stage_targets(plan: Mapping, seq: list[str]) -> list[str]:
    st = plan.get("stage_targets") or {}
    if isinstance(st, Mapping):
        return [str(st.get(t, t)) for t in seq]
    targets = [str(t) for t in st]  # already normalised (list aligned with the sequence)
    if len(targets) != len(seq):
        raise ValueError("plan['stage_targets'] as a list must have one entry per stage")
    return targets


def normalize_plan(plan: Mapping) -> dict:
    """Validated copy of ``plan`` with defaults filled in.

    Returns keys ``experiment, methods, sequence, stage_targets`` (list aligned with
    ``sequence``: t_1..t_T), ``target, held_out, extra, chance, benchmarks`` (all
    benchmarks in group order target → held-out → extra, deduplicated) and ``groups``.
    Stage-target benchmarks missing from ``target`` are appended to it.  Idempotent.
    """
    exp, methods, seq = _check_names(plan)
    stage_targets = _stage_targets(plan, seq)
    target = _dedup([str(b) for b in plan.get("target") or []] + stage_targets)
    held_out = _dedup(str(b) for b in plan.get("held_out") or [] if str(b) not in target)
    extra = _dedup(
        str(b) for b in plan.get("extra") or [] if str(b) not in target and str(b) not in held_out
    )
    chance = {str(k): float(v) for k, v in (plan.get("chance") or {}).items() if v is not None}
    seeds = [int(x) for x in plan.get("seeds") or [0]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds in plan: {seeds}")
    return {
        "experiment": exp,
        "seeds": seeds,
        "methods": methods,
        "sequence": seq,
        "stage_targets": stage_targets,
        "target": target,
        "held_out": held_out,
        "extra": extra,
        "chance": chance,
        "benchmarks": target + held_out + extra,
        "groups": {"target": target, "held-out": held_out, "extra": extra},
        "sweep": {str(m): dict(v) for m, v in (plan.get("sweep") or {}).items()},
        "lr_rule": dict(plan["lr_rule"]) if plan.get("lr_rule") else None,
        "paper": {str(m): {k: float(v) for k, v in ref.items()} for m, ref in (plan.get("paper") or {}).items()
                  if str(m) in methods},
        "paper_source": plan.get("paper_source"),
        "intervals": {"resamples": _resamples(plan)},
    }


def _resamples(plan: Mapping) -> int:
    value = (plan.get("intervals") or {}).get("resamples", DEFAULT_RESAMPLES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"plan['intervals']['resamples'] must be an integer >= 0, got {value!r}")
    return value


def stage_labels(plan: Mapping) -> list[str]:
    """Row labels of the R tables: ``["0 base", "1 <task_1>", ..., "T <task_T>"]``."""
    seq = normalize_plan(plan)["sequence"]
    return [f"0 {BASE_TASK}"] + [f"{i} {t}" for i, t in enumerate(seq, start=1)]
