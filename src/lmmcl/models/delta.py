"""Delta checkpoints: a stage stores only the tensors it changed, plus a pointer to its parent.

A delta folder holds `config.json` (so it reads as a checkpoint), `lmmcl_delta.json` (the parent
pointer, the stored tensor names, tied aliases and the parent manifest's file hashes) and
`delta.safetensors` (the changed tensors under their in-memory `state_dict` names). Loading walks
the chain up to a full checkpoint (the base: a folder written by `save_pretrained`, or a hub id),
loads that with transformers, then applies the deltas oldest first with `load_state_dict`.

What "changed" means is measured, not assumed: a fingerprint of every tensor is taken when the
parent is loaded, and the stage stores each tensor whose bytes differ at save time. So LoRA merges,
WiSE-FT interpolation and recipes all store exactly what moved. A stage whose tensor names or
config differ from its parent's (the MoE baseline adds experts) is written in full instead.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import atomic_dir
from ..layout import MANIFEST

DELTA_META = "lmmcl_delta.json"
DELTA_WEIGHTS = "delta.safetensors"
FORMAT = "lmmcl-delta/1"
FORMATS = ("delta", "full")
# config.json keys that do not change the weights' meaning (save_pretrained bookkeeping; the
# Trainer turns `use_cache` off while training), at any nesting level
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype", "use_cache"}


def _tensor_digest(t) -> str:
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    raw = t.contiguous().view(torch.uint8) if t.dtype != torch.uint8 else t.contiguous()
    h = hashlib.blake2b(raw.numpy().reshape(-1).data, digest_size=16)  # hashes the buffer, no copy
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    return h.hexdigest()


def _config_key(config) -> str:
    def strip(d):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in _CONFIG_NOISE}

    return json.dumps(strip(config.to_dict()), sort_keys=True, default=str)


class Snapshot:
    """Fingerprints of a freshly loaded parent model, to find what a stage changed."""

    def __init__(self, model):
        self.digests = {k: _tensor_digest(v) for k, v in model.state_dict().items()}
        self.config = _config_key(model.config)

    def changed(self, model, state_dict: dict | None = None) -> dict | None:
        """{name: tensor} of the tensors that differ from the parent, or None when the model's
        structure (tensor names or config) is not the parent's, so a delta cannot describe it.
        `state_dict`: the model's weights when the model itself does not hold them whole (ZeRO-3
        gathers them on rank 0; the model's own parameters are partitions there)."""
        sd = model.state_dict() if state_dict is None else state_dict
        if set(sd) != set(self.digests) or _config_key(model.config) != self.config:
            return None
        return {k: v for k, v in sd.items() if _tensor_digest(v) != self.digests[k]}


def is_delta(folder: str | Path) -> bool:
    return (Path(folder) / DELTA_META).is_file()


def _parent_manifest_hashes(parent_checkpoint: str, parent_is_local: bool) -> dict | None:
    """The `hashes` recorded by the manifest next to a local parent checkpoint (stage layout:
    `<stage>/model` + `<stage>/manifest.json`); None for hub ids or folders without one."""
    if not parent_is_local:
        return None
    manifest = Path(parent_checkpoint).parent / MANIFEST
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("hashes")


def save_delta(model, changed: dict, out_dir: str | Path, parent_checkpoint: str, parent_is_local: bool) -> Path:
    """Write the delta folder atomically (temp sibling, then rename into place)."""
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    # tied tensors (same storage) are stored once; the others are recorded as aliases
    stored: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    by_ptr: dict[tuple, str] = {}
    for name in sorted(changed):
        t = changed[name].detach()
        key = (t.data_ptr(), t.dtype, tuple(t.shape)) if t.numel() else None
        if key is not None and key in by_ptr:
            aliases[name] = by_ptr[key]
            continue
        if key is not None:
            by_ptr[key] = name
        stored[name] = t.to("cpu").contiguous().clone()
    parent_ref = os.path.relpath(parent_checkpoint, out_dir.resolve()) if parent_is_local else parent_checkpoint
    meta = {"format": FORMAT, "parent": parent_ref, "parent_is_local": bool(parent_is_local),
            "parent_hashes": _parent_manifest_hashes(parent_checkpoint, parent_is_local),
            "tensors": sorted(stored), "aliases": aliases,
            "bytes": sum(t.numel() * t.element_size() for t in stored.values())}
    with atomic_dir(out_dir) as tmp:
        model.config.save_pretrained(tmp)
        gen = getattr(model, "generation_config", None)
        if gen is not None:
            gen.save_pretrained(tmp)
        save_file(stored, str(tmp / DELTA_WEIGHTS), metadata={"format": "pt"})
        (tmp / DELTA_META).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    meta = json.loads((folder / DELTA_META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder / DELTA_META}: unknown delta format {meta.get('format')!r}; this lmmcl reads {FORMAT!r}")
    return meta


def parent_of(folder: str | Path) -> tuple[str, bool]:
    """(parent checkpoint, is_local) of a delta folder; local parents as absolute paths."""
    folder = Path(folder).resolve()
    meta = read_meta(folder)
    if meta["parent_is_local"]:
        return str((folder / meta["parent"]).resolve()), True
    return meta["parent"], False


def chain(checkpoint: str) -> tuple[str, list[Path]]:
    """(root, deltas oldest first) of a checkpoint; a full checkpoint or hub id is its own root.
    Raises when a parent is missing or was rewritten after the delta was made (its manifest's
    file hashes differ), since the delta would then apply to the wrong weights."""
    deltas: list[Path] = []
    current, local = checkpoint, True
    seen = set()
    while local and is_delta(current):
        folder = Path(current).resolve()
        if folder in seen:
            raise ValueError(f"delta checkpoint {folder}: its parent chain loops")
        seen.add(folder)
        deltas.append(folder)
        meta = read_meta(folder)
        current, local = parent_of(folder)
        if local and not (Path(current) / "config.json").is_file():
            raise FileNotFoundError(f"delta checkpoint {folder}: parent checkpoint {current} is missing; rerun the "
                                    f"stage that writes it (or export stages with `lmmcl export` before deleting)")
        if meta.get("parent_hashes") is not None:
            now = _parent_manifest_hashes(current, local)
            if now is not None and now != meta["parent_hashes"]:
                raise ValueError(f"delta checkpoint {folder}: parent {current} was rewritten after this stage was "
                                 f"trained (its manifest hashes differ); rerun this stage")
    deltas.reverse()
    return current, deltas


def apply(model, folder: str | Path):
    """Load one delta's tensors into `model` (in place); every stored name must exist in it."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_meta(folder)
    tensors = load_file(str(folder / DELTA_WEIGHTS))
    for alias, target in meta.get("aliases", {}).items():
        tensors[alias] = tensors[target]
    own = model.state_dict()
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise ValueError(f"delta checkpoint {folder}: tensors {unknown[:4]} are not in the "
                         f"{type(model).__name__} built from its chain (wrong parent or family?)")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"delta checkpoint {folder}: tensor {k} has shape {tuple(v.shape)}, "
                             f"the model's is {tuple(own[k].shape)}")
    model.load_state_dict(tensors, strict=False)
    return model


def folder_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
