"""MoE layers of the MoE baseline (lmmcl.train.methods.moe): every LLM MLP becomes {frozen original
expert, trainable expert(s), token router}. The model's structure lives here, so loading a
checkpoint (lmmcl.models.io) rebuilds it without importing the training code.

`MoEMLP` keeps the original MLP's child modules under their own names (so the original expert's
tensors keep their checkpoint keys: `...layers.N.mlp.gate_proj.weight`) and adds
`moe_experts.{i}` (copies of the original at creation) and `moe_router` (Linear(hidden, E),
weights N(0, 0.02), bias 0, on the post-attention-norm hidden state = the MLP's input).
Expert 0 is the original. Training mode: softmax mix of all E experts. Eval mode: top-k
experts (k = `top_k`, default 1) with their softmax weights renormalised (k = 1: weight 1.0).

Checkpoints: `save_pretrained` writes every tensor (the `moe_*` ones included) and
`config.lmmcl_moe` records the structure. Plain transformers loading gives the family's class
with the original MLPs (it warns about the unexpected `moe_*` keys); `attach_if_present`
(called by `lmmcl.models.io.load_weights`, so by every loader and the lmms-eval wrapper) rebuilds
the MoE layers from the config and loads their tensors from the checkpoint's safetensors files.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import torch
import torch.nn as nn

from .families import family_of_model

CONFIG_KEY = "lmmcl_moe"
ROUTER_STD = 0.02
_DISK_KEY = re.compile(r"layers\.(\d+)\.mlp\.(moe_.+)$")


def _hidden_size(mlp: nn.Module) -> int:
    for m in mlp.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    raise ValueError(f"MoE: MLP {type(mlp).__name__} has no nn.Linear to infer the hidden size from")


class MoEMLP(nn.Module):
    def __init__(self, original: nn.Module, n_new: int, top_k: int = 1):
        super().__init__()
        object.__setattr__(self, "_original", original)   # its forward, not a second registration
        for name, child in original.named_children():
            self.add_module(name, child)                  # same tensors, same checkpoint keys
        for name, p in original.named_parameters(recurse=False):
            self.register_parameter(name, p)
        self.top_k = int(top_k)
        self.moe_experts = nn.ModuleList()
        ref = next(original.parameters())
        self.moe_router = nn.Linear(_hidden_size(original), 1, bias=True, device=ref.device, dtype=ref.dtype)
        self._init_router_rows(0)
        self.add_experts(n_new)

    @property
    def num_experts(self) -> int:
        return 1 + len(self.moe_experts)

    def _init_router_rows(self, start: int):
        with torch.no_grad():
            self.moe_router.weight[start:].normal_(0.0, ROUTER_STD)
            self.moe_router.bias[start:].zero_()

    def add_experts(self, n: int):
        """Append n experts (copies of the original expert) and n router rows."""
        if n <= 0:
            return
        ref = next(self._original.parameters())
        for _ in range(n):
            expert = copy.deepcopy(self._original)
            expert.train(self.training)
            self.moe_experts.append(expert)
        old = self.moe_router
        new = nn.Linear(old.in_features, self.num_experts, bias=True, device=ref.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight[: old.out_features] = old.weight
            new.bias[: old.out_features] = old.bias
        self.moe_router = new
        self._init_router_rows(old.out_features)
        self.moe_router.train(self.training)

    def mix_weights(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.moe_router(x).float()
        if self.training:
            return logits.softmax(-1)
        k = min(self.top_k, self.num_experts)
        top = logits.topk(k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, top.indices, top.values.softmax(-1))

    def forward(self, x):
        w = self.mix_weights(x).to(x.dtype)
        out = w[..., 0:1] * self._original(x)
        for i, expert in enumerate(self.moe_experts, start=1):
            wi = w[..., i:i + 1]
            if self.training or bool((wi != 0).any()):
                out = out + wi * expert(x)
        return out


def mlp_names(model) -> list[str]:
    """Module names of the LLM decoder layers' MLPs (family role `llm_layers` + `.N.mlp`)."""
    fam = family_of_model(model)
    pat = re.compile(fam.roles["llm_layers"] + r"\.\d+\.mlp$")
    names = [n for n, _ in model.named_modules() if pat.search(n)]
    if not names:
        raise ValueError(f"MoE: no LLM MLP module found in family {fam.name}")
    return names


def moe_layers(model) -> list[MoEMLP]:
    return [m for m in model.modules() if isinstance(m, MoEMLP)]


def convert(model, experts: int, top_k: int = 1, expert_per_task: bool = False):
    """Replace every LLM MLP with a MoEMLP of `experts` new experts; record it in the config."""
    if moe_layers(model):
        raise ValueError("MoE: the model is already converted")
    for name in mlp_names(model):
        parent_name, child = name.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        original = getattr(parent, child)
        moe = MoEMLP(original, experts, top_k)
        moe.train(original.training)
        setattr(parent, child, moe)
    setattr(model.config, CONFIG_KEY, {"experts": int(experts), "top_k": int(top_k),
                                        "expert_per_task": bool(expert_per_task)})
    return model


def add_experts(model, n: int):
    for m in moe_layers(model):
        m.add_experts(n)
    cfg = dict(getattr(model.config, CONFIG_KEY))
    cfg["experts"] += int(n)
    setattr(model.config, CONFIG_KEY, cfg)


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    return sorted(folder.glob("*.safetensors"))


def attach_if_present(model, checkpoint):
    """Rebuild the MoE layers of a checkpoint saved by this module (no-op for plain ones)."""
    cfg = getattr(model.config, CONFIG_KEY, None)
    if not cfg or moe_layers(model):
        return model
    from safetensors import safe_open

    folder = Path(checkpoint)
    if not folder.is_dir():
        raise ValueError(f"MoE checkpoint {checkpoint} must be a local folder")
    convert(model, cfg["experts"], cfg.get("top_k", 1), cfg.get("expert_per_task", False))
    layers = {int(re.search(r"\.(\d+)\.mlp$", n).group(1)): model.get_submodule(n) for n in mlp_names(model)}
    loaded = {i: {} for i in layers}
    for f in _safetensors_files(folder):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                m = _DISK_KEY.search(key)
                if m and int(m.group(1)) in layers:
                    loaded[int(m.group(1))][m.group(2)] = st.get_tensor(key)
    for i, moe in layers.items():
        own = {k: v for k, v in moe.state_dict().items() if k.startswith("moe_")}
        missing = sorted(set(own) - set(loaded[i]))
        if missing:
            raise ValueError(f"MoE checkpoint {checkpoint}: layer {i} lacks tensors {missing[:4]}")
        ref = own[next(iter(own))]
        moe.load_state_dict({k: v.to(device=ref.device, dtype=ref.dtype) for k, v in loaded[i].items()},
                            strict=False)
    return model
