"""Loading and saving checkpoints, and the stage manifest that points at them.

Every stage (and the base) is a folder holding `manifest.json` and, for models we trained, a
`model/` folder: the base's written by `save_pretrained`, a stage's a delta on its parent
(`lmmcl.models.delta`) unless `checkpoints.format` is `full`. The manifest is the workflow's
real output: it is written last and atomically, so a folder without one is never mistaken for a
finished stage.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_dir
from ..layout import MANIFEST


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    with open(path) as f:
        return json.load(f)


def checkpoint_of(manifest_path: str | Path) -> str:
    """The loadable checkpoint a manifest points to: a local folder (absolute) or a hub id."""
    manifest_path = Path(manifest_path)
    m = read_manifest(manifest_path)
    ckpt = m["checkpoint"]
    if m.get("checkpoint_is_local", True):
        local = (manifest_path.parent / ckpt).resolve()
        if not (local / "config.json").is_file():
            raise FileNotFoundError(f"{manifest_path}: checkpoint folder {local} has no config.json")
        return str(local)
    return f"{ckpt}@{m['revision']}" if m.get("revision") else ckpt


def split_revision(checkpoint: str) -> tuple[str, str | None]:
    """("owner/name", revision) of a hub checkpoint written "owner/name@revision" (a pinned
    `model.revision`); local folders and plain hub ids come back with None."""
    if "@" in checkpoint and not Path(checkpoint).exists():
        name, _, revision = checkpoint.rpartition("@")
        if name.count("/") == 1 and revision:
            return name, revision
    return checkpoint, None


def resolve_checkpoint(arg: str) -> str:
    """A loadable checkpoint (absolute folder or hub id) from a stage/base manifest, a stage
    folder, a checkpoint folder or a hub id (`lmmcl evaluate`, `lmmcl export`, the probes).
    Raises FileNotFoundError for a local path that is none of them."""
    p = Path(arg)
    if p.is_file() and p.name.endswith(".json"):
        return checkpoint_of(p)
    if p.is_dir():
        if (p / "config.json").is_file():
            return str(p.resolve())
        if (p / MANIFEST).is_file():
            return checkpoint_of(p / MANIFEST)
        raise FileNotFoundError(f"{p} holds neither config.json (a checkpoint) nor {MANIFEST} (a stage)")
    if str(arg).endswith(".json"):  # not a hub id: `nope/manifest.json` would otherwise be tried on the hub
        raise FileNotFoundError(f"manifest not found: {arg}; allowed: an existing manifest.json, a stage or "
                                f"checkpoint folder, or a hub id ('owner/name')")
    if p.exists() or str(arg).startswith((".", "/")) or str(arg).count("/") != 1:
        raise FileNotFoundError(f"checkpoint {arg!r}: not a manifest.json, a checkpoint folder or a hub id "
                                f"('owner/name')")
    return str(arg)


def _torch_dtype(dtype):
    import torch

    if dtype is None or dtype == "auto" or not isinstance(dtype, str):
        return dtype
    allowed = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in allowed:
        raise ValueError(f"dtype {dtype!r}: allowed {sorted(allowed)} or 'auto'")
    return allowed[dtype]


def load_weights(checkpoint: str, dtype="float32", **from_pretrained_kwargs):
    """The model of a checkpoint with the native transformers class. A delta checkpoint (see
    `lmmcl.models.delta`) is composed: its chain's root is loaded, then the deltas applied."""
    from transformers import AutoModelForImageTextToText

    from . import delta
    from .integrity import verify

    root, deltas = delta.chain(checkpoint)
    for folder in ([Path(root)] if Path(root).is_dir() else []) + deltas:
        verify(folder)  # damaged files named before a library fails on them (integrity.py)
    from ..hubcache import require_model

    require_model(root)  # an offline job: a hub checkpoint missing from the cache is named, with the fix
    root, revision = split_revision(root)
    if revision:
        from_pretrained_kwargs["revision"] = revision
    model = AutoModelForImageTextToText.from_pretrained(root, dtype=_torch_dtype(dtype), **from_pretrained_kwargs)
    model = attach_method_layers(model, root)
    for folder in deltas:
        delta.apply(model, folder)
    from ..numerics import prepare_model

    return prepare_model(model)  # portable numerics: eager attention, patch embeddings as products


def load_processor(checkpoint: str, **kwargs):
    """The processor of a checkpoint (a delta checkpoint's is its chain root's). A published
    checkpoint's native Gemma 3 or SmolVLM processor gets the class of our subclass that takes a
    batch's images as one flat list (`processors.FLAT_IMAGES`: behaviour only, no state)."""
    from transformers import AutoProcessor

    from . import delta
    from . import processors  # registers the image-only processors (no torchvision)

    root, _ = delta.chain(checkpoint)
    root, revision = split_revision(root)
    if revision:
        kwargs["revision"] = revision
    processor = AutoProcessor.from_pretrained(root, **kwargs)
    flat = processors.FLAT_IMAGES.get(type(processor))
    if flat is not None:
        processor.__class__ = flat
    return processor


def load_model(checkpoint: str, dtype: str = "float32", device: str = "cpu"):
    """Load (model, processor) with the native transformers classes."""
    model = load_weights(checkpoint, dtype=dtype)
    return model.to(device), load_processor(checkpoint)


def attach_method_layers(model, checkpoint: str):
    """Rebuild layers a training method added to the native class (the MoE baseline's experts
    and routers, recorded in `config.lmmcl_moe`); plain checkpoints are returned unchanged."""
    if getattr(model.config, "lmmcl_moe", None):
        from .moe import attach_if_present

        model = attach_if_present(model, checkpoint)
    return model


def save_model_atomic(model, processor, out_dir: str | Path, state_dict: dict | None = None) -> Path:
    """save_pretrained into a temp sibling folder, then swap it into place (`state_dict`: the
    weights to write instead of the model's own, e.g. gathered from ZeRO-3 partitions)."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        processor.save_pretrained(tmp)
    return Path(out_dir)


def save_stage_checkpoint(model, processor, out_dir: str | Path, *, parent_manifest: str | Path,
                          snapshot, fmt: str = "delta", state_dict: dict | None = None) -> dict:
    """A stage's checkpoint: only the tensors that differ from the parent (`fmt="delta"`, when
    the structure is the parent's) or a standalone `save_pretrained` folder (`fmt="full"`).
    `state_dict`: the trained weights when the model does not hold them whole (ZeRO-3: gathered
    on rank 0). Returns {"format", "changed_tensors", "changed_bytes"} for the manifest."""
    from . import delta

    if fmt not in delta.FORMATS:
        raise ValueError(f"checkpoint format {fmt!r}: allowed {list(delta.FORMATS)}")
    changed = snapshot.changed(model, state_dict) if snapshot is not None else None
    info = {"format": "full", "changed_tensors": None, "changed_bytes": None}
    if changed is not None:
        info.update(changed_tensors=len(changed),
                    changed_bytes=sum(t.numel() * t.element_size() for t in changed.values()))
    if fmt == "delta" and changed is not None:
        parent = read_manifest(parent_manifest)
        local = parent.get("checkpoint_is_local", True)
        delta.save_delta(model, changed, out_dir, checkpoint_of(parent_manifest), local)
        info["format"] = "delta"
    else:
        save_model_atomic(model, processor, out_dir, state_dict=state_dict)
    return info


def export_checkpoint(checkpoint: str, out_dir: str | Path, dtype: str = "float32") -> Path:
    """A standalone checkpoint (base + every delta of the chain applied) for plain transformers."""
    model = load_weights(checkpoint, dtype=dtype)
    return save_model_atomic(model, load_processor(checkpoint), out_dir)

