"""Model families: the native transformers class of each and where its roles live.

Roles are regexes over in-memory `named_parameters()` names (transformers 5 layout: no
`vision_model.` level; on-disk keys differ, so never match those). Recipes refer to roles as
`{role}` placeholders, so the same recipe data selects the right tensors in every family.
"""
from __future__ import annotations

from dataclasses import dataclass, field

_LLAVA_ROLES = {
    "vision_tower": r"^model\.vision_tower\.",
    "projector": r"^model\.multi_modal_projector\.",
    "llm": r"^(model\.language_model\.|lm_head\.|model\.image_newline$)",
    "llm_layers": r"^model\.language_model\.layers",
    "embeddings": r"^model\.language_model\.embed_tokens\.",
    "lm_head": r"^lm_head\.",
}


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str          # transformers class name
    model_type: str           # config.model_type of its checkpoints
    default_checkpoint: str | None
    roles: dict = field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("tiny_llava", "LlavaForConditionalGeneration", "llava", None, _LLAVA_ROLES),
        Family("llava_onevision", "LlavaOnevisionForConditionalGeneration", "llava_onevision",
               "llava-hf/llava-onevision-qwen2-7b-ov-hf", _LLAVA_ROLES),
        Family("llava_next", "LlavaNextForConditionalGeneration", "llava_next",
               "llava-hf/llama3-llava-next-8b-hf", _LLAVA_ROLES),
        Family("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl",
               "Qwen/Qwen2.5-VL-7B-Instruct", {
                   # the merger sits inside `visual` but plays the projector's role
                   "vision_tower": r"^model\.visual\.(?!merger\.)",
                   "projector": r"^model\.visual\.merger\.",
                   "llm": r"^(model\.language_model\.|lm_head\.)",
                   "llm_layers": r"^model\.language_model\.layers",
                   "embeddings": r"^model\.language_model\.embed_tokens\.",
                   "lm_head": r"^lm_head\.",
               }),
    ]
}


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
