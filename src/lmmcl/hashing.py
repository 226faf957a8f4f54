"""Content hashes: of files (checkpoints, parquet splits, downloads) and of configurations."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def file_digests(path: str | os.PathLike, algorithms=("sha256",), chunk: int = 1 << 20) -> dict[str, str]:
    """{algorithm: hex digest} of a file for every hashlib algorithm named, reading it once."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            for h in hashes.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    return file_digests(path, ("sha256",), chunk)["sha256"]


def file_hashes(folder: str | os.PathLike, suffixes=(".safetensors", ".json")) -> dict:
    """{file name: sha256} of a folder's files with these suffixes (a checkpoint's weights and
    configs); `suffixes=None`: every file."""
    folder = Path(folder)
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())
            if p.is_file() and (suffixes is None or p.suffix in suffixes)}


def config_hash(obj) -> str:
    """Short, stable hash of a JSON-able configuration (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
