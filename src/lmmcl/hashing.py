"""Content hashes: of files (checkpoints, parquet splits, downloads) and of configurations."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(folder: str | os.PathLike, suffixes=(".safetensors", ".json")) -> dict:
    """{file name: sha256} of a folder's files with these suffixes (a checkpoint's weights and configs)."""
    folder = Path(folder)
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.suffix in suffixes}


def config_hash(obj) -> str:
    """Short, stable hash of a JSON-able configuration (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
