"""Is a checkpoint on disk still what was written? Checked against its stage manifest's sha256.

A stage's (or the base's) manifest records the sha256 of every weight and config file of its
`model/` folder when it is written (lmmcl.train.manifest). Quotas fill and network file systems
hiccup: a file truncated or altered afterwards would otherwise surface as a bare library error
(safetensors: "invalid header length") naming no file. Every local folder of a checkpoint's chain
(the root and each delta) is verified before its weights are read; a difference raises
`CheckpointDamaged`, naming the file, what is wrong, and the command that rebuilds it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..hashing import sha256_file
from ..layout import MANIFEST


class CheckpointDamaged(ValueError):
    pass


def rebuild_hint(manifest: Path) -> str:
    """The command that rebuilds a stage: Snakemake, from the folder that holds `results/`."""
    parts = manifest.resolve().parts
    if "results" in parts:
        i = len(parts) - 1 - parts[::-1].index("results")
        root, rel = Path(*parts[:i]), Path(*parts[i:])
        return (f"rebuild it (and what depends on it) from the workflow's folder: cd {root} && "
                f"snakemake --cores 1 --forcerun {rel}")
    return "rebuild it: rerun the `lmmcl` command that wrote it (the stage's manifest names its inputs)"


def verify(folder: str | Path) -> None:
    """Raise CheckpointDamaged when a file of this checkpoint folder is missing or differs from the
    sha256 its manifest (`<folder>/../manifest.json`) recorded; folders without one pass."""
    folder = Path(folder)
    manifest = folder.parent / MANIFEST
    if not manifest.is_file():
        return
    recorded = json.loads(manifest.read_text()).get("hashes") or {}
    problems = []
    for name, sha in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        actual = sha256_file(path)
        if actual != sha:
            problems.append(f"{path}: {path.stat().st_size} bytes whose sha256 ({actual[:16]}...) is not the one "
                            f"{manifest.name} recorded when it was written ({sha[:16]}...): the file was truncated "
                            f"or altered afterwards (a full disk, a copy cut short, another writer)")
    if problems:
        raise CheckpointDamaged(f"checkpoint {folder} is damaged:\n  " + "\n  ".join(problems)
                                + f"\n{rebuild_hint(manifest)}")


# ---- in-stage checkpoints (the Trainer's `<stage>/trainer/checkpoint-N/`) ----------------------------
SEAL = "lmmcl_seal.json"


def seal(folder: str | Path) -> dict:
    """Record the size and sha256 of every file of a just-written in-stage checkpoint (the Trainer's
    model, optimizer, scheduler, RNG and DeepSpeed files, every rank's) in `<folder>/lmmcl_seal.json`."""
    from ..atomic import atomic_write_json

    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != SEAL}
    atomic_write_json(folder / SEAL, {"files": files})
    return files


def verify_seal(folder: str | Path) -> bool:
    """Raise CheckpointDamaged when a file of an in-stage checkpoint is missing or differs from its
    seal; False for a checkpoint without a seal (a kill between the Trainer's save and the seal)."""
    folder = Path(folder)
    if not (folder / SEAL).is_file():
        return False
    problems = []
    for name, rec in json.loads((folder / SEAL).read_text())["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != rec["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, {rec['bytes']} when it was written: truncated "
                            f"or overwritten afterwards (a full disk, a copy cut short)")
        elif sha256_file(path) != rec["sha256"]:
            problems.append(f"{path}: its sha256 is not the one recorded when it was written: altered afterwards")
    if problems:
        raise CheckpointDamaged(
            f"in-stage checkpoint {folder} is damaged:\n  " + "\n  ".join(problems)
            + f"\ndelete it (rm -r {folder}) and rerun: the stage resumes from an earlier in-stage checkpoint "
              f"if one is left, else it restarts from its parent")
    return True
