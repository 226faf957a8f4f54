"""Frozen parameters cost nothing extra: peak memory of an sa_proj stage vs a full stage.

Each recipe trains the same tiny LLaVA (a wider one than the default, so weights dominate the
process) for a few steps in its own process. Printed per recipe: trainable parameters, the
gradients and AdamW state the trainer held at its first optimizer step (lmmcl's trainer reports
them in the stage metrics), frozen tensors that got a gradient (must be 0), and the process's
peak RSS above its RSS after loading the model and data (ru_maxrss; CUDA peak with --device cuda).

    python benchmarks/frozen_memory.py [--recipes sa_proj full] [--hidden 512] [--steps 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(recipe: str, hidden: int, layers: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from lmmcl import recipes
    from lmmcl.data.synthetic import write_skill
    from lmmcl.models.tiny import TinySpec, build_tiny_llava
    from lmmcl.train.stage import load_training_data
    from lmmcl.train.trainer import fit

    model, processor = build_tiny_llava(TinySpec(hidden_size=hidden, intermediate_size=4 * hidden,
                                                 num_layers=layers), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        data = load_training_data([write_skill("syn_birds", "train", 16, 0, Path(tmp) / "d.parquet")])
        counts = recipes.apply(model, recipe)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        before = _rss_bytes()
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = fit(model, processor, data, {"lr": 1e-4, "steps": steps, "batch_size": 4,
                                                   "warmup_ratio": 0.0}, Path(tmp) / "trainer")
    return {"recipe": recipe, "trainable": counts["trainable_params"], "total": counts["total_params"],
            "weight_bytes": weights, "rss_before": before, "rss_peak": _rss_bytes(), **metrics["memory"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["sa_proj", "full"])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.hidden, a.layers, a.steps)))
        return 0
    rows = []
    for r in a.recipes:  # one process per recipe: ru_maxrss is a per-process high-water mark
        out = subprocess.run([sys.executable, __file__, "--child", r, "--hidden", str(a.hidden), "--layers",
                              str(a.layers), "--steps", str(a.steps)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    mib = 2**20
    print(f"tiny LLaVA hidden {a.hidden}, {a.layers} LLM layers, {rows[0]['total']:,} parameters "
          f"({rows[0]['weight_bytes'] / mib:.1f} MiB float32), {a.steps} steps, batch 4")
    print("| recipe | trainable params | grad tensors | grads MiB | AdamW state MiB | frozen with grad "
          "| peak RSS over loaded MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['recipe']} | {r['trainable']:,} | {r['grad_tensors']} | {r['grad_bytes'] / mib:.1f} | "
              f"{r['optimizer_state_bytes'] / mib:.1f} | {r['frozen_with_grad']} | "
              f"{(r['rss_peak'] - r['rss_before']) / mib:.1f} |")
    if len(rows) >= 2:
        a0, b0 = rows[0], rows[-1]
        print(f"\n{a0['recipe']} / {b0['recipe']}: trainable {a0['trainable'] / b0['trainable']:.3f}, "
              f"grads + optimizer state {(a0['grad_bytes'] + a0['optimizer_state_bytes']) / (b0['grad_bytes'] + b0['optimizer_state_bytes']):.3f}, "
              f"peak RSS over loaded {(a0['rss_peak'] - a0['rss_before']) / max(1, b0['rss_peak'] - b0['rss_before']):.3f}")
    return 0 if all(r["frozen_with_grad"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
