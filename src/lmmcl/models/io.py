"""Loading and saving checkpoints, and the stage manifest that points at them.

Every stage (and the base) is a folder holding `manifest.json` and, for models we trained, a
`model/` folder written by `save_pretrained`. The manifest is the workflow's real output: it is
written last and atomically, so a folder without one is never mistaken for a finished stage.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..atomic import atomic_write_json, atomic_write_text  # noqa: F401  (re-exported)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


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
    return ckpt


def load_model(checkpoint: str, dtype: str = "float32", device: str = "cpu"):
    """Load (model, processor) with the native transformers classes."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from . import processors  # noqa: F401  registers the image-only processors (no torchvision)

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch_dtype)
    model = attach_method_layers(model, checkpoint)
    processor = AutoProcessor.from_pretrained(checkpoint)
    return model.to(device), processor


def attach_method_layers(model, checkpoint: str):
    """Rebuild layers a training method added to the native class (the MoE baseline's experts
    and routers, recorded in `config.lmmcl_moe`); plain checkpoints are returned unchanged."""
    if getattr(model.config, "lmmcl_moe", None):
        from ..train.methods.moe import attach_if_present

        model = attach_if_present(model, checkpoint)
    return model


def save_model_atomic(model, processor, out_dir: str | Path) -> Path:
    """save_pretrained into a temp sibling folder, then swap it into place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def file_hashes(folder: str | Path, suffixes=(".safetensors", ".json")) -> dict:
    folder = Path(folder)
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.suffix in suffixes}
