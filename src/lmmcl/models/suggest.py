"""A proposed role map of a native transformers class, read from its module tree on the meta
device (`lmmcl families --suggest <class or checkpoint folder>`): the user checks it and pastes it
into registry/families.yaml, where tests/test_families.py then proves it.

How the tree is read (transformers 5 layout, no weights):
- the LLM is the module holding the input embeddings (`get_input_embeddings()`, e.g.
  `model.language_model.embed_tokens` -> `model.language_model`); its `ModuleList` child is
  `llm_layers`, its other child with parameters the final norm; `lm_head` is
  `get_output_embeddings()`;
- the LLM's parent is the multimodal base model (`model`); its other children are the vision
  tower, except those whose name says projector (`projector`, `connector`, `merger`, `adapter`,
  `aligner`, `resampler`), which are the projector. With no such child, the vision tower's own
  children so named are the projector (Qwen-VL's `merger`, Qwen3-VL's `deepstack_merger_list`);
- a parameter directly on the base model (LLaVA-NeXT's `image_newline`) is `newline`, part of `llm`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

PROJECTOR_WORDS = ("projector", "connector", "merger", "adapter", "aligner", "resampler")


def _e(name: str) -> str:
    return re.escape(name)


def _is_projector(name: str) -> bool:
    return any(w in name for w in PROJECTOR_WORDS)


def _has_params(module) -> bool:
    return any(True for _ in module.parameters())


def suggest_roles(model) -> dict:
    """{role: regex} for every role of lmmcl.models.families.ROLES, from `model`'s module tree."""
    import torch

    names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
    emb = names[model.get_input_embeddings()]
    head = model.get_output_embeddings()
    lm_head = names[head] if head is not None else "lm_head"
    text = emb.rpartition(".")[0]
    text_module = model.get_submodule(text)
    layers = [n for n, c in text_module.named_children() if isinstance(c, torch.nn.ModuleList)]
    if len(layers) != 1:
        raise ValueError(f"{type(model).__name__}: expected one ModuleList of decoder layers under {text}, found {layers}")
    norms = [n for n, c in text_module.named_children()
             if n not in (emb.rpartition(".")[2], layers[0]) and _has_params(c)]
    if len(norms) != 1:
        raise ValueError(f"{type(model).__name__}: expected one final norm under {text}, found {norms}")
    base = text.rpartition(".")[0]
    base_module = model.get_submodule(base) if base else model
    prefix = f"{base}." if base else ""
    others = [n for n, c in base_module.named_children()
              if f"{prefix}{n}" not in (text, lm_head) and _has_params(c)]
    direct = [n for n, _ in base_module.named_parameters(recurse=False)]
    projectors = [n for n in others if _is_projector(n)]
    vision = [n for n in others if not _is_projector(n)]
    if len(vision) != 1:
        raise ValueError(f"{type(model).__name__}: expected one vision tower beside {text}, found {vision}")
    v = _e(prefix + vision[0])
    if projectors:
        proj = projectors
        roles = {"vision_tower": f"^{v}\\.", "projector": _alternatives(_e(prefix), proj)}
    else:  # the projector inside the vision tower (Qwen-VL)
        inner = [n for n, c in model.get_submodule(prefix + vision[0]).named_children() if _is_projector(n) and _has_params(c)]
        if not inner:
            raise ValueError(f"{type(model).__name__}: no projector found beside or inside {prefix + vision[0]}")
        alt = inner[0] if len(inner) == 1 else "(" + "|".join(inner) + ")"
        roles = {"vision_tower": f"^{v}\\.(?!{alt}\\.)", "projector": f"^{v}\\.{alt}\\."}
    newline = "|".join(f"{_e(prefix + n)}$" for n in direct)
    llm_parts = [f"{_e(text)}\\.", f"{_e(lm_head)}\\."] + ([newline] if newline else [])
    roles.update({
        "llm": "^(" + "|".join(llm_parts) + ")",
        "llm_layers": f"^{_e(text)}\\.{_e(layers[0])}",
        "embeddings": f"^{_e(emb)}\\.",
        "lm_head": f"^{_e(lm_head)}\\.",
        "llm_norm": f"^{_e(text)}\\.{_e(norms[0])}\\.",
        "newline": f"^{newline}" if newline else "^$",
    })
    return roles


def _alternatives(prefix: str, names: list[str]) -> str:
    return f"^{prefix}{_e(names[0])}\\." if len(names) == 1 else f"^{prefix}(" + "|".join(map(_e, names)) + ")\\."


def meta_model(target: str):
    """(model on the meta device, model_type) of a transformers class name (its config class's
    defaults) or a checkpoint folder (its config.json; the class from `architectures`)."""
    import torch
    import transformers

    folder = Path(target)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{target}: a checkpoint folder needs config.json")
        cfg = json.loads((folder / "config.json").read_text())
        config = transformers.AutoConfig.for_model(**cfg)
        archs = cfg.get("architectures") or []
        cls = getattr(transformers, archs[0], None) if archs else None
        if cls is None:
            from transformers import AutoModelForImageTextToText

            cls = AutoModelForImageTextToText._model_mapping[type(config)]
    else:
        cls = getattr(transformers, target, None)
        if cls is None or not hasattr(cls, "config_class"):
            raise ValueError(f"{target!r} is neither a checkpoint folder nor a transformers model class "
                             f"(e.g. Qwen3VLForConditionalGeneration)")
        config = cls.config_class()
    with torch.device("meta"):
        model = cls._from_config(config)
    return model, config.model_type


def suggest_entry(target: str, name: str | None = None) -> str:
    """A families.yaml entry (YAML text) for `target`, with the suggested roles."""
    from .families import ROLES

    model, model_type = meta_model(target)
    roles = suggest_roles(model)
    lines = [f"{name or model_type}:   # suggested by `lmmcl families --suggest {target}`: check, then paste",
             f"  model_class: {type(model).__name__}",
             f"  model_type: {model_type}",
             "  default_checkpoint: null   # the hub id you fine-tune",
             "  hf_config: null            # its config.json, copied to registry/hf_configs/",
             "  end_of_turn: null          # the token closing an assistant turn",
             "  roles:"]
    lines += [f"    {r}: '{roles[r]}'" for r in ROLES]
    return "\n".join(lines)
