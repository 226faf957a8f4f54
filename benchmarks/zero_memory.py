"""Per-process memory and time of one stage under DDP, DeepSpeed ZeRO-2 and ZeRO-3, 2 processes each.

One tiny LLaVA, wider than the default so that weights and optimizer state show in a process's
memory, is trained by the same `torchrun --nproc_per_node=2 -m lmmcl.cli train-stage` command three
times, side by side in one run: plain DDP (gloo), then `--deepspeed config/deepspeed/zero2.json`
and `zero3.json` on DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu, gloo). Printed per mode and
rank, from the stage manifest (lmmcl's trainer gathers every rank's report): the AdamW state the
rank's optimizer held at its first step, the rank's peak RSS (ru_maxrss, the whole process: Python,
torch, the model, the LwF-free SFT stage), its training time, and the wall time of the command.
ZeRO-2 and ZeRO-3 partition the optimizer state: each rank should hold about half of DDP's.

    python benchmarks/zero_memory.py [--hidden 512] [--layers 4] [--steps 4] [--recipe full]

CPU only says what DeepSpeed partitions, not what a GPU saves: there the gradients, the weights
(ZeRO-3) and the fp32 master copy of bf16 training are GPU memory (`cuda_peak_bytes` in the same
manifest report), here everything is one process's RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODES = {"ddp": None, "zero2": ROOT / "config/deepspeed/zero2.json", "zero3": ROOT / "config/deepspeed/zero3.json"}
MiB = 2 ** 20


def prepare(tmp: Path, hidden: int, layers: int) -> Path:
    from lmmcl.data.synthetic import write_skill
    from lmmcl.train.stage import build_base

    write_skill("syn_birds", "train", 64, 0, tmp / "data/syn_birds/train.parquet")
    tiny = {"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_layers": layers,
            "vision_hidden_size": hidden, "vision_intermediate_size": 4 * hidden}
    build_base(model_cfg={"family": "tiny_llava", "tiny": tiny}, experiment="bench",
               out_manifest=tmp / "base/manifest.json", data=[], hparams={}, tracking={"report_to": []})
    return tmp / "base/manifest.json"


def run(tmp: Path, base: Path, mode: str, recipe: str, steps: int) -> dict:
    out = tmp / mode / "manifest.json"
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "lmmcl.cli", "train-stage",
           "--parent", str(base), "--data", str(tmp / "data/syn_birds/train.parquet"), "--method", mode,
           "--recipe", recipe, "--hparams", json.dumps({"lr": 1e-4, "steps": steps, "batch_size": 4,
                                                       "warmup_ratio": 0.0, "role_lr": {}}),
           "--threads", "1", "--tracking", '{"report_to": []}', "--out", str(out)]
    if MODES[mode]:
        cmd += ["--deepspeed", str(MODES[mode])]
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1",
               PATH=f"{BIN}:{os.environ['PATH']}")
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{p.stderr[-3000:]}")
    m = json.loads(out.read_text())
    return {"mode": mode, "wall": wall, "trainable": m["trainable"]["trainable_params"],
            "changed_bytes": m["checkpoint_storage"]["changed_bytes"], "ranks": m["metrics"]["memory"]["per_rank"],
            "distributed": m["metrics"]["distributed"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--recipe", default="full")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = prepare(tmp, a.hidden, a.layers)
        results = [run(tmp, base, mode, a.recipe, a.steps) for mode in MODES]
    n = results[0]["trainable"]
    print(f"recipe {a.recipe}: {n:,} trained parameters ({n * 4 / MiB:.1f} MiB fp32), 2 processes, "
          f"{a.steps} steps of batch 4 per process, torch AdamW (2 fp32 states per weight)")
    print("| mode | rank | optimizer state (MiB) | / DDP's | peak RSS (MiB) | train (s) | command wall (s) |")
    print("|---|---|---|---|---|---|---|")
    ddp = {i: r["optimizer_state_bytes"] for i, r in enumerate(results[0]["ranks"])}
    for res in results:
        for i, r in enumerate(res["ranks"]):
            print(f"| {res['mode']} | {i} | {r['optimizer_state_bytes'] / MiB:.1f} | "
                  f"{r['optimizer_state_bytes'] / ddp[i]:.2f} | {r['peak_rss_bytes'] / MiB:.0f} | "
                  f"{r['train_seconds']:.1f} | {res['wall']:.1f} |")
    for res in results[1:]:
        assert res["changed_bytes"] == results[0]["changed_bytes"], "the stages wrote deltas of other sizes"
    print("every mode wrote a delta of the same bytes; DeepSpeed ran with "
          + ", ".join(f"{r['mode']}: {r['distributed']['deepspeed']}" for r in results[1:]))


if __name__ == "__main__":
    main()
