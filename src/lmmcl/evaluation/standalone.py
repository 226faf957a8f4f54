"""What `lmmcl evaluate` needs before lmms-eval is imported: which checkpoint an argument
means, where outputs go by default, and whether the run may reach the hub.

`lmmcl evaluate <checkpoint>` accepts a stage/base `manifest.json`, a stage folder holding one,
a checkpoint folder (`config.json`), or a hub id (e.g. `llava-hf/llava-onevision-qwen2-7b-ov-hf`):
`lmmcl.models.io.resolve_checkpoint`. Imports nothing heavy: huggingface_hub reads HF_HUB_OFFLINE at import time, so the hub switch
must be decided first.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def default_out_dir(checkpoint: str, root: str = "results/standalone") -> Path:
    """`<root>/<last two path parts of the checkpoint, joined by '__'>` (lmms-eval's naming)."""
    parts = [x for x in re.split(r"[\\/]+", str(checkpoint)) if x][-2:]
    return Path(root) / "__".join(parts)


def _pairs(items: list[str] | None, option: str, value: str) -> dict[str, str]:
    """`["NAME=VALUE", ...]` of a CLI option -> {NAME: VALUE}; ValueError naming a malformed item."""
    out = {}
    for item in items or []:
        name, sep, val = item.partition("=")
        if not sep or not name or not val:
            raise ValueError(f"{option} {item!r}: expected BENCHMARK={value}")
        out[name] = val
    return out


def parse_builtin_data(items: list[str] | None) -> dict[str, str]:
    """`["ai2d=/data/ai2d.parquet", ...]` -> {"ai2d": "/data/ai2d.parquet"}."""
    return _pairs(items, "--builtin-data", "PARQUET")


def parse_dataset_revisions(items: list[str] | None) -> dict[str, str]:
    """`["ai2d=<commit>", ...]` (--dataset-revisions) -> {"ai2d": "<commit>"}."""
    return _pairs(items, "--dataset-revisions", "REVISION")


def set_hub_env(checkpoint: str, benchmarks: list[str], builtin_data: dict | None = None) -> bool:
    """Allow the hub (HF_HUB_OFFLINE=0) only when the run needs it and the user has not set the
    variables; otherwise `lmmcl.evaluation.run` defaults them to offline. Returns needs-hub."""
    from lmmcl import registry

    reg = registry.benchmarks()
    hub = not Path(checkpoint).exists() or any(
        reg.get(b, {}).get("builtin") and b not in (builtin_data or {}) for b in benchmarks)
    if hub:
        os.environ.setdefault("HF_HUB_OFFLINE", "0")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "0")
    return hub
