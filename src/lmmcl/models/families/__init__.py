"""Model families: the native transformers class of each and where its roles live.

The architecture keys of every family (class, model_type, default checkpoint, end-of-turn token,
the role map and the published parameter count) are data: `registry/families.yaml`. A family
may also have a module here (`tiny_llava`, `llava_onevision`, `llava_next`, `qwen2_5_vl`,
`qwen3_vl`, `internvl`, `gemma3`, `smolvlm`) with its chat template and `build_tiny(seed)`, a tiny
randomly initialised model of its class (the shared parts: `families.tiny_parts`). A family
without a module is built from its YAML entry alone (`families.generic`: the class's config
with shrunk sizes, its native processor, the entry's `tiny` tokens and template). Recipes refer
to roles as `{role}` placeholders, so the same recipe data selects the right tensors in every
family; `check_roles` proves a role map on a model's parameter names (tests/test_families.py runs
it on every family) and `lmmcl families --suggest` proposes one from a module tree
(`lmmcl.models.suggest`).

Roles every family defines (a role may match nothing, e.g. `newline` on plain LLaVA):
`vision_tower`, `projector`, `llm` (everything of the language model incl. lm_head and the
image newline), `llm_layers` (prefix of the decoder layers, followed by `.N.`), `embeddings`,
`lm_head`, `llm_norm` (final norm of the LLM), `newline` (LLaVA-NeXT/OV `image_newline`).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

from ... import registry

ROLES = ("vision_tower", "projector", "llm", "llm_layers", "embeddings", "lm_head", "llm_norm", "newline")
TOP_ROLES = ("vision_tower", "projector", "llm")          # every parameter has exactly one of these
LLM_ROLES = ("llm_layers", "embeddings", "lm_head", "llm_norm", "newline")   # parts of `llm`, disjoint


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str          # transformers class name
    model_type: str           # config.model_type of its checkpoints
    default_checkpoint: str | None
    roles: dict = field(default_factory=dict)
    end_of_turn: str | None = None       # token closing an assistant turn; labels stop after it
    hf_config: str | None = None         # registry/hf_configs/<file>: the default checkpoint's config.json
    published_params: float | None = None   # the default checkpoint's published parameter count
    published_source: str | None = None     # where that count is published
    tiny: dict = field(default_factory=dict)  # settings of the generic tiny builder (families.generic)
    build_tiny: Callable | None = None   # (seed) -> (model, processor): tiny random model of the class

    def __post_init__(self):
        missing = [r for r in ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"family {self.name}: roles {missing} are not mapped")
        if self.published_params is not None and (isinstance(self.published_params, bool)
                                                  or not isinstance(self.published_params, (int, float))):
            raise ValueError(f"family {self.name}: published_params must be a number (YAML: 8.77e+9 or "
                             f"8770000000), got {self.published_params!r}")
        for role, pattern in self.roles.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"family {self.name}: role {role} is not a regex ({e}): {pattern!r}") from None


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def from_spec(name: str, spec: dict) -> Family:
    """The Family of one families.yaml entry: the tiny builder of its module
    `lmmcl.models.families.<name>` when there is one, else the generic builder (families.generic)."""
    allowed = {f.name for f in dataclasses.fields(Family)} - {"name", "build_tiny"}
    if set(spec) - allowed:
        raise ValueError(f"family {name}: unknown key(s) {sorted(set(spec) - allowed)}; allowed: {sorted(allowed)}")
    try:
        module = import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        module = None
    family = Family(name=name, **spec)
    if module is not None:
        return dataclasses.replace(family, build_tiny=getattr(module, "build_tiny", None))

    def build_tiny(seed: int = 0):
        from .generic import build_tiny as generic

        return generic(family, seed)

    return dataclasses.replace(family, build_tiny=build_tiny)


def _load_all():
    """One Family per entry of registry/families.yaml."""
    for name, spec in registry.families().items():
        register(from_spec(name, spec))


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; allowed: {sorted(FAMILIES)}") from None


def family_of_model(model) -> Family:
    """The family of a loaded model, from its class (tiny_llava for plain LLaVA)."""
    cls = type(model).__name__
    for fam in FAMILIES.values():
        if fam.model_class == cls:
            return fam
    raise ValueError(f"model class {cls} belongs to no family; known: "
                     f"{sorted(f.model_class for f in FAMILIES.values())}")


def check_roles(names: list[str], family: Family) -> list[str]:
    """What is wrong with `family`'s role map on a model's parameter names (give them with
    `named_parameters(remove_duplicate=False)`, so a tied lm_head is named); [] when nothing.
    The rules: every parameter has exactly one of TOP_ROLES; LLM_ROLES lie inside `llm` and are
    pairwise disjoint; every role but `newline` matches a parameter; every `llm_layers`
    parameter continues with `.N.` (the layer index recipes append)."""
    pats = {r: re.compile(family.roles[r]) for r in ROLES}
    of = {r: {n for n in names if pats[r].search(n)} for r in ROLES}
    problems = []
    for n in names:
        top = [r for r in TOP_ROLES if n in of[r]]
        if len(top) != 1:
            problems.append(f"{n}: in {top or 'none'} of {list(TOP_ROLES)} (exactly one expected)")
    for r in LLM_ROLES:
        if of[r] - of["llm"]:
            problems.append(f"{r} outside llm: {sorted(of[r] - of['llm'])[:3]}")
    for i, a in enumerate(LLM_ROLES):
        for b in LLM_ROLES[i + 1:]:
            if of[a] & of[b]:
                problems.append(f"{a} and {b} overlap: {sorted(of[a] & of[b])[:3]}")
    problems += [f"role {r} matches no parameter" for r in ROLES if r != "newline" and not of[r]]
    layer = re.compile("(?:" + family.roles["llm_layers"] + r")\.\d+\.")
    problems += [f"llm_layers parameter {n} has no .N. layer index" for n in sorted(of["llm_layers"])
                 if not layer.search(n)][:3]
    return problems


_load_all()
