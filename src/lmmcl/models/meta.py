"""Full-size models of each family on the meta device: shapes and names, no weights, no hub.

`build_meta(family)` reads the shipped `config.json` of the family's default checkpoint
(registry/hf_configs/) and instantiates the native class under `torch.device("meta")`, so
recipes can be resolved and counted on the real 7B/8B parameter names in a second.
"""
from __future__ import annotations

from .. import registry
from .families import get_family


def hf_config_dict(family: str) -> dict:
    fam = get_family(family)
    if not fam.hf_config:
        raise ValueError(f"family {family!r} ships no checkpoint config (it has no default checkpoint)")
    return registry.hf_config(fam.hf_config)


def build_meta(family: str):
    """The family's default-checkpoint model with every tensor on the meta device."""
    import torch
    import transformers

    fam = get_family(family)
    if not fam.hf_config:  # tiny_llava: its own tiny model, on the meta device as well
        with torch.device("meta"):
            model, _ = fam.build_tiny(0)
        return model
    cfg = hf_config_dict(family)
    config = transformers.AutoConfig.for_model(**cfg)
    cls = getattr(transformers, fam.model_class)
    with torch.device("meta"):
        return cls._from_config(config)
