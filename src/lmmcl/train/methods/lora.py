"""LoRA (PEFT): adapters on LLM linear layers, merged into the model at the end of every stage.

Targets are resolved here to explicit module names, anchored on the family's `llm_layers`
role, so the vision tower is never hit (PEFT's plain suffix names `q_proj` would also match
CLIP/SigLIP attention). Presets (`methods.LORA_PRESETS`, the recipes' own patterns): `mlp` (the
study: gate/up/down of every LLM layer, recipe `mlp`), `attention` (q/k/v/o, recipe `sa_proj`),
`all_linear` (every nn.Linear of the LLM layers); or a list of regexes searched in module names
(every match must lie inside the LLM). The stage's recipe (optional)
names parameters trained in full alongside the adapters, e.g. `projector` as in the study's
script (where LLaVA re-enables the projector's gradients). At the end, `merge_and_unload()`
folds the adapters into the weights: the stage saves a plain checkpoint of the family's class.
"""
from __future__ import annotations

import re

from ...models.families import family_of_model
from ...recipes import get_recipe, resolve_patterns
from . import LORA_PRESETS, MethodHook, unwrap


def target_modules(model, targets) -> list[str]:
    """Names of the nn.Linear modules LoRA wraps; ValueError if none or one outside the LLM."""
    import torch.nn as nn

    fam = family_of_model(model)
    if isinstance(targets, str):  # a preset: patterns over parameter names, so a module name + "."
        preset = LORA_PRESETS[targets]
        patterns = resolve_patterns(get_recipe(preset)["include"] if isinstance(preset, str) else preset, fam)
        suffix = "."
    else:
        patterns, suffix = [re.compile(p) for p in targets], ""
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(p.search(n + suffix) for p in patterns)]
    if not names:
        raise ValueError(f"lora.targets {targets!r} matches no nn.Linear module of family {fam.name}")
    outside = [n for n in names if not re.search(fam.roles["llm"], n + ".")]
    if outside:
        raise ValueError(f"lora.targets {targets!r} matches modules outside the language model "
                         f"(e.g. {outside[:3]}); anchor the regexes on the LLM layers")
    return names


class LoraHook(MethodHook):
    def prepare(self, model):
        from peft import LoraConfig, get_peft_model

        names = target_modules(model, self.spec["targets"])
        in_full = [n for n, p in model.named_parameters() if p.requires_grad]
        clash = [n for n in in_full if n.rsplit(".", 1)[0] in set(names)]
        if clash:
            raise ValueError(f"the recipe trains weights of LoRA target modules (e.g. {clash[:3]}); "
                             "use a recipe outside the LoRA targets (e.g. projector) or none")
        cfg = LoraConfig(r=int(self.spec["r"]), lora_alpha=self.spec["lora_alpha"],
                         lora_dropout=float(self.spec["lora_dropout"]), target_modules=names, bias="none")
        peft_model = get_peft_model(model, cfg)
        params = dict(unwrap(peft_model).named_parameters())
        for n in in_full:          # get_peft_model froze everything but the adapters
            params[n].requires_grad_(True)
        self.targets = names
        return peft_model

    def finalize(self, model):
        return model.merge_and_unload()

    def report(self) -> dict:
        return {"lora_modules": len(self.targets), "lora_targets": self.targets, "merged": True}
