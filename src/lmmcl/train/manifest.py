"""The manifest of a stage (or the base): what its checkpoint is and how it was made.

It sits next to the checkpoint folder `model/` (lmmcl.layout) and is the workflow's real output:
written last and atomically, so a folder without one is never mistaken for a finished stage.
Every writer (the base, a trained stage, a WiSE-FT merge) builds its fields and calls `write`,
which adds the checkpoint's file hashes and the creation time.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

from .. import __version__
from ..atomic import atomic_write_json
from ..hashing import file_hashes, sha256_file
from ..layout import BASE, MODEL_DIR


def versions() -> dict:
    import torch
    import transformers

    return {"lmmcl": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def data_record(paths) -> list[dict]:
    """The training data of a stage: each parquet with its sha256."""
    return [{"path": str(p), "sha256": sha256_file(p)} for p in paths]


def base_fields(*, experiment: str, family: str) -> dict:
    """What every base manifest starts with (stage 0, no method)."""
    return {"kind": "base", "experiment": experiment, "method": None, "stage": 0, "task": BASE,
            "family": family, "versions": versions()}


def local_checkpoint(storage: dict | None = None) -> dict:
    """The manifest's pointer to its own `model/` folder (+ how it is stored, for a stage)."""
    return {"checkpoint": MODEL_DIR, "checkpoint_is_local": True,
            **({"checkpoint_storage": storage} if storage is not None else {})}


def write(out_manifest: str | Path, fields: dict) -> dict:
    """Complete the manifest (sha256 of a local checkpoint's files, creation time) and write it
    atomically; returns it. Call it last: the manifest marks the stage as finished."""
    manifest = dict(fields)
    if manifest.get("checkpoint_is_local"):
        manifest["hashes"] = file_hashes(Path(out_manifest).parent / manifest["checkpoint"])
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(out_manifest, manifest)
    return manifest
