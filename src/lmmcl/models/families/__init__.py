"""Model families: the native transformers class of each and where its roles live.

One module per family (`tiny_llava`, `llava_onevision`, `llava_next`, `qwen2_5_vl`), each
registering a `Family`. Roles are regexes over in-memory `named_parameters()` names
(transformers 5 layout: no `vision_model.` level; on-disk keys differ, so never match those).
Recipes refer to roles as `{role}` placeholders, so the same recipe data selects the right
tensors in every family.

Roles every family defines (a role may match nothing, e.g. `newline` on plain LLaVA):
`vision_tower`, `projector`, `llm` (everything of the language model incl. lm_head and the
image newline), `llm_layers` (prefix of the decoder layers, followed by `.N.`), `embeddings`,
`lm_head`, `llm_norm` (final norm of the LLM), `newline` (LLaVA-NeXT/OV `image_newline`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

ROLES = ("vision_tower", "projector", "llm", "llm_layers", "embeddings", "lm_head", "llm_norm", "newline")

# Names under `model.` of the LLaVA classes (LLaVA, LLaVA-NeXT, LLaVA-OneVision share them).
LLAVA_ROLES = {
    "vision_tower": r"^model\.vision_tower\.",
    "projector": r"^model\.multi_modal_projector\.",
    "llm": r"^(model\.language_model\.|lm_head\.|model\.image_newline$)",
    "llm_layers": r"^model\.language_model\.layers",
    "embeddings": r"^model\.language_model\.embed_tokens\.",
    "lm_head": r"^lm_head\.",
    "llm_norm": r"^model\.language_model\.norm\.",
    "newline": r"^model\.image_newline$",
}


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


FAMILY_MODULES = ("tiny_llava", "llava_onevision", "llava_next", "qwen2_5_vl")
FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def _load_all():
    for mod in FAMILY_MODULES:
        import_module(f"{__name__}.{mod}")


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
