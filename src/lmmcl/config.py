"""What a validated config means: the plan of stages, their hyperparameters, the benchmarks.

The JSON schema (workflow/schemas/config.schema.yaml) checks shapes and types; `Plan` checks
what a schema cannot (names that must exist in a registry, stage overrides for tasks that are
not in the sequence, duplicate tasks) and raises `ConfigError` naming the bad value and what
is allowed, before any job runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from . import recipes as recipe_registry
from .train.hparams import DEFAULT_HPARAMS

METHOD_KEYS = {"recipe", "method", "stages"}
METHODS = {"sft"}   # training methods with a hook in lmmcl.train (baselines add theirs)


class ConfigError(ValueError):
    pass


@lru_cache(maxsize=1)
def benchmark_registry() -> dict:
    return yaml.safe_load(resources.files("lmmcl").joinpath("registry/benchmarks.yaml").read_text())


@dataclass(frozen=True)
class Stage:
    method: str
    k: int
    task: str

    @property
    def name(self) -> str:
        return f"stage{self.k}_{self.task}"


class Plan:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.experiment = cfg["experiment"]
        self.sequence: list[str] = list(cfg["sequence"])
        self.methods: dict = cfg["methods"]
        self.stage_cfg: dict = cfg.get("stages") or {}
        self.extra_recipes: dict = cfg.get("recipes") or {}
        b = cfg.get("benchmarks") or {}
        self.target = list(b.get("target") or self.sequence)
        self.held_out = list(b.get("held_out") or [])
        self.extra = list(b.get("extra") or [])
        self.check()

    # ---- checks ---------------------------------------------------------------------------
    def check(self):
        seen = set()
        for t in self.sequence:
            if t in seen:
                raise ConfigError(f"sequence: task {t!r} appears twice; each task is one stage")
            seen.add(t)
        registry = benchmark_registry()
        for group, names in (("target", self.target), ("held_out", self.held_out), ("extra", self.extra)):
            for n in names:
                if n not in registry:
                    raise ConfigError(f"benchmarks.{group}: unknown benchmark {n!r}; allowed: {sorted(registry)}")
        for t in self.sequence:
            if t not in registry:
                raise ConfigError(f"sequence: unknown task {t!r}; allowed: {sorted(registry)}")
        dup = set(self.target) & set(self.held_out) | set(self.target) & set(self.extra) | set(self.held_out) & set(self.extra)
        if dup:
            raise ConfigError(f"benchmarks: {sorted(dup)} listed in more than one group")
        known = recipe_registry.all_recipes(self.extra_recipes)
        if not self.methods:
            raise ConfigError("methods: at least one method is needed")
        for m, spec in self.methods.items():
            unknown = set(spec) - METHOD_KEYS - set(DEFAULT_HPARAMS)
            if unknown:
                raise ConfigError(f"methods.{m}: unknown key(s) {sorted(unknown)}; allowed: "
                                  f"{sorted(METHOD_KEYS | set(DEFAULT_HPARAMS))}")
            if spec.get("recipe") not in known:
                raise ConfigError(f"methods.{m}.recipe: unknown recipe {spec.get('recipe')!r}; allowed: {sorted(known)}")
            if spec.get("method", "sft") not in METHODS:
                raise ConfigError(f"methods.{m}.method: unknown method {spec['method']!r}; allowed: {sorted(METHODS)}")
            self._check_stage_keys(spec.get("stages") or {}, f"methods.{m}.stages")
        self._check_stage_keys({k: v for k, v in self.stage_cfg.items() if k != "defaults"}, "stages")
        for where, hp in self._all_hparam_blocks():
            unknown = set(hp) - set(DEFAULT_HPARAMS)
            if unknown:
                raise ConfigError(f"{where}: unknown hyperparameter(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_HPARAMS)}")

    def _check_stage_keys(self, overrides: dict, where: str):
        for task in overrides:
            if task not in self.sequence:
                raise ConfigError(f"{where}: {task!r} is not a task of the sequence {self.sequence}")

    def _all_hparam_blocks(self):
        yield "stages.defaults", self.stage_cfg.get("defaults") or {}
        for t, hp in self.stage_cfg.items():
            if t != "defaults":
                yield f"stages.{t}", hp or {}
        for m, spec in self.methods.items():
            for t, hp in (spec.get("stages") or {}).items():
                yield f"methods.{m}.stages.{t}", hp or {}

    # ---- derived values --------------------------------------------------------------------
    @property
    def benchmarks(self) -> list[str]:
        return self.target + self.held_out + self.extra

    def stages(self, method: str) -> list[Stage]:
        return [Stage(method, k, t) for k, t in enumerate(self.sequence, start=1)]

    def stage(self, method: str, k: int, task: str) -> Stage:
        if method not in self.methods:
            raise ConfigError(f"unknown method {method!r}; configured: {sorted(self.methods)}")
        if not 1 <= k <= len(self.sequence) or self.sequence[k - 1] != task:
            raise ConfigError(f"stage{k}_{task} is not in the sequence {self.sequence}")
        return Stage(method, k, task)

    def hparams(self, method: str, task: str) -> dict:
        """defaults < method < stages[task] < methods[m].stages[task] (later wins)."""
        spec = self.methods[method]
        hp = dict(DEFAULT_HPARAMS)
        hp.update(self.stage_cfg.get("defaults") or {})
        hp.update({k: v for k, v in spec.items() if k in DEFAULT_HPARAMS})
        hp.update(self.stage_cfg.get(task) or {})
        hp.update((spec.get("stages") or {}).get(task) or {})
        return hp

    def recipe(self, method: str) -> str:
        return self.methods[method]["recipe"]

    def report_plan(self) -> dict:
        reg = benchmark_registry()
        return {
            "experiment": self.experiment,
            "methods": list(self.methods),
            "sequence": self.sequence,
            "stage_targets": {t: t for t in self.sequence},
            "target": self.target,
            "held_out": self.held_out,
            "extra": self.extra,
            "chance": {b: reg[b].get("chance") for b in self.benchmarks},
        }


def dumps(obj) -> str:
    """Stable JSON for rule params (the params rerun trigger compares these strings)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
