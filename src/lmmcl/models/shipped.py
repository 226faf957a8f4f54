"""A pretrained tiny base shipped with the repository, used as a hub checkpoint is used.

The study fine-tunes a published checkpoint; the tiny default does the same with
`pretrained/tiny_default/`: `model/` (a `save_pretrained` folder: weights, config, tokenizer and
processor files) and the `manifest.json` of the pre-training run that wrote it (its data, hyperparameters,
seed and the sha256 of every file of `model/`). `config/pretrain_tiny.yaml` rebuilds it through the
workflow (`make pretrain`), and `ship` copies a finished base there. A config names it with
`model.checkpoint`; the experiment's base manifest then points at it (as at a hub checkpoint) and
records its sha256, and every load checks the files against the shipped manifest
(lmmcl.models.integrity.verify).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..hashing import file_hashes
from ..layout import MANIFEST, MODEL_DIR

# the checkout (src/lmmcl/models/shipped.py -> the repository root); the workflow runs lmmcl from
# an editable install of it, so a relative model.checkpoint also resolves from another --directory
REPO_ROOT = Path(__file__).resolve().parents[3]


def resolve(checkpoint: str, cwd: Path | None = None) -> Path:
    """The folder a tiny family's `model.checkpoint` names: as given (absolute, or relative to the
    working directory), else relative to the repository root. FileNotFoundError naming both."""
    given = Path(checkpoint).expanduser()
    tried = [given if given.is_absolute() else (cwd or Path.cwd()) / given]
    if not given.is_absolute():
        tried.append(REPO_ROOT / given)
    for folder in tried:
        if (folder / "config.json").is_file():
            return folder.resolve()
    raise FileNotFoundError(
        f"model.checkpoint: {checkpoint!r} is not a checkpoint folder (no config.json in "
        f"{' nor '.join(str(t) for t in tried)}); allowed: a save_pretrained folder of the tiny family, "
        f"e.g. pretrained/tiny_default/model (rebuilt by `make pretrain`), or null to pre-train the "
        f"base in the workflow (model.base_training)")


def tiny_spec(folder: Path) -> dict | None:
    """The TinySpec a tiny checkpoint was built with (config.json `lmmcl_tiny_spec`), or None."""
    return json.loads((Path(folder) / "config.json").read_text()).get("lmmcl_tiny_spec")


def record(folder: Path) -> dict:
    """What an experiment's base manifest records of a shipped base: the sha256 of each file and
    the pre-training that wrote it (from the shipped manifest, when there is one)."""
    folder = Path(folder)
    shipped = folder.parent / MANIFEST
    built = json.loads(shipped.read_text()) if shipped.is_file() else {}
    return {"hashes": file_hashes(folder, suffixes=None),
            "built_by": {k: built.get(k) for k in ("experiment", "seed", "hyperparameters", "data", "config_hash",
                                                   "n_train_examples", "numerics")} if built else None}


def ship(base_manifest: str | Path, out: str | Path) -> Path:
    """Copy a finished tiny base (its `model/` and manifest) to `out` (`<out>/model`,
    `<out>/manifest.json`), replacing what was there only once the copy is complete."""
    from ..atomic import atomic_dir
    from .integrity import verify

    base_manifest = Path(base_manifest)
    m = json.loads(base_manifest.read_text())
    if m.get("family") != "tiny_llava" or not m.get("checkpoint_is_local"):
        raise ValueError(f"{base_manifest}: not a pre-trained tiny base (family {m.get('family')!r}, "
                         f"checkpoint {m.get('checkpoint')!r}); allowed: the base manifest of a tiny run with "
                         f"model.checkpoint: null, e.g. results/pretrain_tiny/seed0/base/manifest.json")
    src = base_manifest.parent / m["checkpoint"]
    verify(src)  # copy only what is intact
    with atomic_dir(out) as tmp:
        shutil.copytree(src, tmp / MODEL_DIR)
        shutil.copy2(base_manifest, tmp / MANIFEST)
    return Path(out)
