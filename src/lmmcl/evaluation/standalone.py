"""What `lmmcl evaluate` needs before lmms-eval is imported: which checkpoint an argument
means, where outputs go by default, and whether the run may reach the hub.

`lmmcl evaluate <checkpoint>` accepts a stage/base `manifest.json`, a stage folder holding one,
a checkpoint folder (`config.json`), or a hub id (e.g. `llava-hf/llava-onevision-qwen2-7b-ov-hf`).
Imports nothing heavy: huggingface_hub reads HF_HUB_OFFLINE at import time, so the hub switch
must be decided first.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def resolve_checkpoint(arg: str) -> str:
    """A loadable checkpoint (absolute folder or hub id) from a manifest, stage folder,
    checkpoint folder or hub id. Raises FileNotFoundError for a local path that is none of them."""
    from lmmcl.models.io import checkpoint_of

    p = Path(arg)
    if p.is_file() and p.name.endswith(".json"):
        return checkpoint_of(p)
    if p.is_dir():
        if (p / "config.json").is_file():
            return str(p.resolve())
        if (p / "manifest.json").is_file():
            return checkpoint_of(p / "manifest.json")
        raise FileNotFoundError(f"{p} holds neither config.json (a checkpoint) nor manifest.json (a stage)")
    if arg.endswith(".json"):  # not a hub id: `nope/manifest.json` would otherwise be tried on the hub
        raise FileNotFoundError(f"manifest not found: {arg}; allowed: an existing manifest.json, a stage or "
                                f"checkpoint folder, or a hub id ('owner/name')")
    if p.exists() or arg.startswith((".", "/")) or arg.count("/") != 1:
        raise FileNotFoundError(f"checkpoint {arg!r}: not a manifest.json, a checkpoint folder or a hub id "
                                f"('owner/name')")
    return arg


def default_out_dir(checkpoint: str, root: str = "results/standalone") -> Path:
    """`<root>/<last two path parts of the checkpoint, joined by '__'>` (lmms-eval's naming)."""
    parts = [x for x in re.split(r"[\\/]+", str(checkpoint)) if x][-2:]
    return Path(root) / "__".join(parts)


def parse_builtin_data(items: list[str] | None) -> dict[str, str]:
    """`["ai2d=/data/ai2d.parquet", ...]` -> {"ai2d": "/data/ai2d.parquet"}."""
    out = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--builtin-data {item!r}: expected BENCHMARK=PARQUET")
        out[name] = path
    return out


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
