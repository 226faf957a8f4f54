"""Training methods: plain SFT and the study's mitigation baselines, each a small hook.

A config method (`methods.<name>`) names its kind with `method:` and may set that kind's own
keys (below, with their defaults). This module is light (no torch): `lmmcl.config.Plan`
validates the keys with it before any job runs; `get_hook` imports the heavy part lazily.

    kind     keys (defaults)                                         hook
    sft      -                                                       none (the recipe trains)
    lora     r 256, lora_alpha 32, lora_dropout 0.05, targets mlp    methods/lora.py
    lwf      lambda 1.0, temperature 2.0                             methods/lwf.py
    wise_ft  alpha 0.1 (weight of the previous model)                methods/wise_ft.py (merge job)
    moe      experts 1, expert_per_task false, top_k 1               methods/moe.py

The hook points of the single training entry point (`train.stage.train_stage` /
`train.trainer.fit`): `prepare` (after the recipe, before training: wrap/convert the model,
load a teacher), `compute_loss` (replace the loss), `finalize` (after training, before saving:
return the plain model to save). WiSE-FT trains like SFT; its merge is its own workflow job.
"""
from __future__ import annotations

from importlib import import_module

NO_RECIPE = "none"   # recipe value of methods whose hook decides what trains (lora, moe)
DEFAULT_METHOD = "sft"  # the kind of a config method without `method:`

# LoRA target presets (methods/lora.py): a built-in recipe of registry/recipes.yaml, or recipe-style
# patterns, whose matches read as module names are the nn.Linear modules that get adapters
LORA_PRESETS = {"mlp": "mlp", "attention": "sa_proj", "all_linear": [r"{llm_layers}\.\d+\."]}

METHOD_DEFAULTS: dict[str, dict] = {
    "sft": {},
    "lora": {"r": 256, "lora_alpha": 32, "lora_dropout": 0.05, "targets": "mlp"},
    "lwf": {"lambda": 1.0, "temperature": 2.0},
    "wise_ft": {"alpha": 0.1},
    "moe": {"experts": 1, "expert_per_task": False, "top_k": 1},
}
# Kinds whose recipe is optional: without one only the hook's parameters train (adapters,
# experts and routers); with one, the recipe's parameters train in full as well.
RECIPE_OPTIONAL = {"lora", "moe"}
# Kinds followed by a merge job (workflow/rules/train.smk `merge_stage`).
MERGE_KINDS = {"wise_ft"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key -> (check, what is allowed)
_CHECKS = {
    ("lora", "r"): (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("lora", "lora_alpha"): (lambda v: _is_num(v) and v > 0, "a number > 0"),
    ("lora", "lora_dropout"): (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("lora", "targets"): (lambda v: v in LORA_PRESETS or (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)),
                          f"one of {list(LORA_PRESETS)} or a non-empty list of regexes over module names"),
    ("lwf", "lambda"): (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    ("lwf", "temperature"): (lambda v: _is_num(v) and v > 0, "a number > 0"),
    ("wise_ft", "alpha"): (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("moe", "experts"): (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("moe", "expert_per_task"): (lambda v: isinstance(v, bool), "true or false"),
    ("moe", "top_k"): (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
}


def method_keys(kind: str) -> set[str]:
    return set(METHOD_DEFAULTS.get(kind, {}))


def method_spec(kind: str, given: dict, where: str = "method") -> dict:
    """`{"method": kind, **defaults, **given kind keys}`; ValueError naming a bad key or value.

    `given` may hold other keys (recipe, hyperparameters): only `kind`'s keys are taken. A
    default without its check (a method key added to METHOD_DEFAULTS but not to _CHECKS, or one
    that fails it) is an error here, at planning, whatever the config sets."""
    if kind not in METHOD_DEFAULTS:
        raise ValueError(f"{where}.method: unknown method {kind!r}; allowed: {sorted(METHOD_DEFAULTS)}")
    check_defaults(kind)
    spec = {"method": kind, **METHOD_DEFAULTS[kind]}
    for key in METHOD_DEFAULTS[kind]:
        if key in given:
            check, allowed = _CHECKS[(kind, key)]
            if not check(given[key]):
                raise ValueError(f"{where}.{key}: {given[key]!r} is not allowed for method {kind}; expected {allowed}")
            spec[key] = given[key]
    if kind == "moe" and spec["top_k"] > 1 + spec["experts"] and not spec["expert_per_task"]:
        raise ValueError(f"{where}.top_k: {spec['top_k']} exceeds the {1 + spec['experts']} experts "
                         "(the frozen original plus `experts` trainable ones)")
    return spec


def check_defaults(kind: str) -> None:
    """Every default of method `kind` has its check in _CHECKS and passes it; ValueError naming the key."""
    for key, value in METHOD_DEFAULTS[kind].items():
        if (kind, key) not in _CHECKS:
            raise ValueError(f"method {kind}: key {key!r} has a default ({value!r}) in METHOD_DEFAULTS but no check in "
                             f"lmmcl.train.methods._CHECKS, so a config's value for it would not be validated; add one")
        check, allowed = _CHECKS[(kind, key)]
        if not check(value):
            raise ValueError(f"method {kind}: the default {key}: {value!r} fails its own check (expected {allowed})")


class MethodHook:
    """Plain SFT: the recipe's parameters train with the answer-only cross-entropy."""

    has_loss = False

    def __init__(self, spec: dict, *, parent_manifest=None, stage: int | None = None, task: str | None = None):
        self.spec = dict(spec)
        self.parent_manifest = parent_manifest
        self.stage = stage
        self.task = task

    def prepare(self, model):
        """Called after the recipe froze/unfroze parameters; returns the model to train."""
        return model

    def compute_loss(self, default_loss, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Only called when `has_loss`; `default_loss()` gives `(loss, outputs)` of plain SFT."""
        raise NotImplementedError

    def finalize(self, model):
        """Called after training; returns the plain model to save (what the next stage loads)."""
        return model

    def report(self) -> dict:
        """Method facts for the stage manifest (`method_report`)."""
        return {}


_HOOKS = {"lora": "lora:LoraHook", "lwf": "lwf:LwfHook", "moe": "moe:MoeHook"}


def get_hook(spec: dict | None, **context) -> MethodHook:
    """The hook of a method spec (`None` = plain SFT); `context`: parent_manifest, stage, task."""
    spec = method_spec((spec or {}).get("method", DEFAULT_METHOD), spec or {})
    target = _HOOKS.get(spec["method"])
    if target is None:   # sft, wise_ft (its merge is a separate job)
        return MethodHook(spec, **context)
    mod, cls = target.split(":")
    return getattr(import_module(f"{__name__}.{mod}"), cls)(spec, **context)


def freeze_all(model) -> dict:
    """Recipe `none`: nothing trains until the method's hook unfreezes its own parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    return {"recipe": NO_RECIPE, "include": [], "exclude": []}


def unwrap(model):
    """The transformers model inside a wrapper (a PEFT model), else the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trainable_report(model, recipe_report: dict) -> dict:
    """Trainable-parameter report after the hook (same fields as `recipes.report`)."""
    from ...recipes import trainable_counts

    counts = trainable_counts(unwrap(model))
    if not counts["trainable_tensors"]:
        raise ValueError(f"nothing to train: recipe {recipe_report.get('recipe')!r} and the method hook "
                         "left every parameter frozen")
    return {**recipe_report, **counts}