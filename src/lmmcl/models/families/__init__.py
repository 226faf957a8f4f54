"""Model families: the native transformers class of each and where its roles live.

The architecture keys of every family (class, model_type, default checkpoint, end-of-turn token
and the role map) are data: `registry/families.yaml`. Each family also has a module here
(`tiny_llava`, `llava_onevision`, `llava_next`, `qwen2_5_vl`) with its chat template and
`build_tiny(seed)`, a tiny randomly initialised model of its class (the shared parts:
`families.tiny_parts`). Recipes refer to roles as `{role}` placeholders, so the same recipe data
selects the right tensors in every family.

Roles every family defines (a role may match nothing, e.g. `newline` on plain LLaVA):
`vision_tower`, `projector`, `llm` (everything of the language model incl. lm_head and the
image newline), `llm_layers` (prefix of the decoder layers, followed by `.N.`), `embeddings`,
`lm_head`, `llm_norm` (final norm of the LLM), `newline` (LLaVA-NeXT/OV `image_newline`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

from ... import registry

ROLES = ("vision_tower", "projector", "llm", "llm_layers", "embeddings", "lm_head", "llm_norm", "newline")


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str          # transformers class name
    model_type: str           # config.model_type of its checkpoints
    default_checkpoint: str | None
    roles: dict = field(default_factory=dict)
    end_of_turn: str | None = None       # token closing an assistant turn; labels stop after it
    hf_config: str | None = None         # registry/hf_configs/<file>: the default checkpoint's config.json
    build_tiny: Callable | None = None   # (seed) -> (model, processor): tiny random model of the class

    def __post_init__(self):
        missing = [r for r in ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"family {self.name}: roles {missing} are not mapped")


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def _load_all():
    """One Family per entry of registry/families.yaml, with its module's tiny builder."""
    for name, spec in registry.families().items():
        module = import_module(f"{__name__}.{name}")
        register(Family(name=name, **spec, build_tiny=getattr(module, "build_tiny", None)))


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


_load_all()
