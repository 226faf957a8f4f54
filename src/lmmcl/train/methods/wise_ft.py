"""WiSE-FT: after each stage, θ̄_t = α·θ̄_{t−1} + (1−α)·θ_t (α = weight of the previous model).

Stage t trains like SFT from θ̄_{t−1} into `<stage>/finetuned/`; the workflow's `merge_stage`
job (this module's `merge_stage`) writes θ̄_t as the stage's own `model/` + `manifest.json`,
which is what gets evaluated and what stage t+1 starts from. θ̄_0 is the base model. Every
tensor of the state dict is merged (frozen ones are equal in both, so they stay unchanged).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...layout import MODEL_DIR
from ...models.delta import Snapshot
from ...models.io import checkpoint_of, load_model, read_manifest, save_stage_checkpoint
from .. import manifest as manifests


def merge_state_dicts(previous: dict, finetuned: dict, alpha: float) -> dict:
    """{key: α·previous + (1−α)·finetuned}; both must have the same keys and shapes.

    Floating tensors are combined in float32 and cast back to the finetuned tensor's dtype;
    non-floating tensors (integer buffers) must be equal and are kept."""
    if set(previous) != set(finetuned):
        only_prev = sorted(set(previous) - set(finetuned))[:5]
        only_ft = sorted(set(finetuned) - set(previous))[:5]
        raise ValueError(f"wise_ft: checkpoints differ in keys (only previous: {only_prev}, only finetuned: {only_ft})")
    a = float(alpha)
    out = {}
    for k, ft in finetuned.items():
        prev = previous[k]
        if prev.shape != ft.shape:
            raise ValueError(f"wise_ft: {k} has shape {tuple(prev.shape)} vs {tuple(ft.shape)}")
        if ft.is_floating_point():
            merged = a * prev.to(device=ft.device, dtype=torch.float32) + (1.0 - a) * ft.to(torch.float32)
            out[k] = merged.to(ft.dtype)
        else:
            if not torch.equal(prev.to(ft.device), ft):
                raise ValueError(f"wise_ft: non-floating tensor {k} differs between the checkpoints")
            out[k] = ft
    return out


def merge_models(previous, finetuned, alpha: float) -> int:
    """Overwrite `finetuned`'s tensors with the merge, in place; return the number of tensors."""
    merged = merge_state_dicts(previous.state_dict(), finetuned.state_dict(), alpha)
    finetuned.load_state_dict(merged, strict=True)
    return len(merged)


def merge_stage(*, previous_manifest, finetuned_manifest, out_manifest, alpha: float,
                threads: int | None = None, checkpoint_format: str = "delta") -> dict:
    """The stage's merged checkpoint θ̄_t and its manifest (written last, atomically)."""
    if threads:
        torch.set_num_threads(int(threads))
    out_manifest = Path(out_manifest)
    ft_meta = read_manifest(finetuned_manifest)
    if Path(ft_meta.get("parent", "")).resolve() != Path(previous_manifest).resolve():
        raise ValueError(f"wise_ft: {finetuned_manifest} was trained from {ft_meta.get('parent')}, "
                         f"not from the previous model {previous_manifest}")
    previous, _ = load_model(checkpoint_of(previous_manifest))
    # the merged model differs from the previous one only where the stage trained: a delta of it
    snapshot = Snapshot(previous) if checkpoint_format == "delta" else None
    finetuned, processor = load_model(checkpoint_of(finetuned_manifest))
    n = merge_models(previous, finetuned, alpha)
    del previous
    storage = save_stage_checkpoint(finetuned, processor, out_manifest.parent / MODEL_DIR,
                                    parent_manifest=previous_manifest, snapshot=snapshot, fmt=checkpoint_format)
    return manifests.write(out_manifest, {
        **{k: v for k, v in ft_meta.items() if k not in ("hashes", "checkpoint", "created")},
        "kind": "stage",
        "parent": str(Path(previous_manifest)),
        **manifests.local_checkpoint(storage),
        "wise_ft": {"alpha_previous": float(alpha), "previous": str(Path(previous_manifest)),
                    "finetuned": str(Path(finetuned_manifest)), "merged_tensors": n,
                    "formula": "alpha*previous + (1-alpha)*finetuned"},
    })
