"""Bytes of a stage checkpoint vs bytes of the tensors it trained, per recipe (delta vs full).

Measured on the tiny default model (config/config.yaml `model.tiny`): a base is built, then for
every built-in recipe one 2-step stage is trained twice from it, stored as a delta and in full;
the table prints the stage folder's bytes over the bytes of the tensors that changed.

Computed for LLaVA-OneVision-Qwen2-7B (no weights: the model on the meta device): the exact size
of the delta folder the same code would write (safetensors header + bf16 data + config files)
over the bf16 bytes of each recipe's trainable tensors, and the full checkpoint's size.

    python benchmarks/checkpoint_storage.py [--family llava_onevision] [--steps 2]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.2


def _tiny_rows(steps: int) -> list[dict]:
    import yaml

    from lmmcl import recipes, registry
    from lmmcl.data.synthetic import write_skill
    from lmmcl.models import delta
    from lmmcl.models.meta import build_meta
    from lmmcl.train.stage import build_base, train_stage

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    model_cfg = {"family": "tiny_llava", "tiny": cfg["model"]["tiny"]}
    hp = {"lr": 1e-3, "steps": steps, "batch_size": 4, "warmup_ratio": 0.0}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_skill("syn_birds", "train", 16, 0, tmp / "birds.parquet")
        build_base(model_cfg=model_cfg, experiment="bench", out_manifest=tmp / "base/manifest.json", data=[],
                   hparams={})
        for name in registry.recipes():
            try:  # e.g. last_n_layers larger than the tiny LLM
                recipes.apply(build_meta("tiny_llava"), name, family="tiny_llava")
            except ValueError as e:
                print(f"skip {name} on the tiny model: {e}", file=sys.stderr)
                continue
            sizes, ms = {}, {}
            for fmt in ("delta", "full"):
                with contextlib.redirect_stdout(io.StringIO()):  # the Trainer's per-step logs
                    ms[fmt] = train_stage(parent_manifest=tmp / "base/manifest.json", data=[data], method=name,
                                          out_manifest=tmp / f"{name}_{fmt}/manifest.json", recipe=name,
                                          hparams=hp, stage=1, task="syn_birds", checkpoint_format=fmt)
                sizes[fmt] = delta.folder_bytes(tmp / f"{name}_{fmt}/model")
            st = ms["delta"]["checkpoint_storage"]
            rows.append({"recipe": name, "trained_tensors": st["changed_tensors"],
                         "trained_bytes": st["changed_bytes"], "delta_bytes": sizes["delta"],
                         "full_bytes": sizes["full"]})
    return rows


def _safetensors_bytes(shapes: dict[str, tuple], dtype: str, itemsize: int) -> int:
    """Exact file size safetensors writes: 8-byte length + JSON header (padded to 8) + data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(shapes):
        n = itemsize
        for d in shapes[name]:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shapes[name]), "data_offsets": [offset, offset + n]}
        offset += n
    h = len(json.dumps(header, separators=(",", ":")).encode())
    return 8 + h + (-h % 8) + offset


def _computed_rows(family: str) -> list[dict]:
    from lmmcl import recipes, registry
    from lmmcl.models.meta import build_meta, hf_config_dict

    config_bytes = len(json.dumps(hf_config_dict(family), indent=2).encode()) + 200  # + generation_config
    model = build_meta(family)
    total = sum(p.numel() for p in model.parameters())
    rows = []
    for name in registry.recipes():
        try:
            recipes.apply(model, name, family=family)
        except ValueError:
            continue
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad) * 2
        meta = len(json.dumps({"tensors": sorted(shapes), "aliases": {}, "parent": "../../stage0/model",
                               "parent_hashes": {"model.safetensors": "0" * 64}}, indent=2).encode()) + 200
        rows.append({"recipe": name, "trained_tensors": len(shapes), "trained_bytes": trained,
                     "delta_bytes": _safetensors_bytes(shapes, "BF16", 2) + config_bytes + meta,
                     "full_bytes": total * 2})
    return rows


def _print(title: str, rows: list[dict], unit: float, unit_name: str) -> bool:
    print(f"\n{title}")
    print(f"| recipe | trained tensors | trained {unit_name} | delta stage {unit_name} | delta / trained "
          f"| full stage {unit_name} | delta / full |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for r in rows:
        ratio = r["delta_bytes"] / r["trained_bytes"]
        ok &= ratio <= GOAL
        print(f"| {r['recipe']} | {r['trained_tensors']} | {r['trained_bytes'] / unit:,.1f} | "
              f"{r['delta_bytes'] / unit:,.1f} | {ratio:.3f} | {r['full_bytes'] / unit:,.1f} | "
              f"{r['delta_bytes'] / r['full_bytes']:.3f} |")
    return ok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="llava_onevision", help="family computed on the meta device")
    p.add_argument("--steps", type=int, default=2, help="training steps of each tiny stage")
    a = p.parse_args(argv)
    ok_tiny = _print("Measured: tiny default model (float32), one stage per recipe, stage folder on disk",
                     _tiny_rows(a.steps), 2**10, "KiB")
    ok_big = _print(f"Computed: {a.family} default checkpoint (bf16), delta folder size the same code writes",
                    _computed_rows(a.family), 2**20, "MiB")
    print(f"\ngoal delta/trained <= {GOAL}: tiny {'met' if ok_tiny else 'NOT met'}, "
          f"{a.family} {'met' if ok_big else 'NOT met'}")
    return 0 if ok_tiny and ok_big else 1


if __name__ == "__main__":
    sys.exit(main())
