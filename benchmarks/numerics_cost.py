"""What portable numerics cost in speed, side by side with torch's CPU defaults, on this machine.

    .venv/bin/python benchmarks/numerics_cost.py [--steps 20] [--threads 1]

1. Matrix products of a training step of the tiny default (shapes of an `llm` stage on a
   syn_birds batch): oneMKL (torch's default) vs our kernel on every code path this CPU has.
2. Training steps of the tiny default model (`llm` recipe, syn_birds batches of 16): ms per step
   with `numerics: native` and `numerics: portable` (each in its own process, as the CLI runs).
Prints times and ratios; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SPEC = {"hidden_size": 128, "intermediate_size": 512, "num_layers": 4, "num_heads": 8, "num_kv_heads": 4,
        "vision_layers": 2, "image_size": 32, "patch_size": 8, "tokenizer": "word"}

STEPS = r"""
import json, sys, time
from lmmcl import numerics
numerics.configure(sys.argv[1], int(sys.argv[2]))
import torch
from lmmcl import recipes
from lmmcl.data.synthetic import generate
from lmmcl.models.tiny import TinySpec, build_tiny_llava
from lmmcl.train.collate import AnswerOnlyCollator
model, proc = build_tiny_llava(TinySpec.from_dict(json.loads(sys.argv[4])), seed=0)
numerics.prepare_model(model)
recipes.apply(model, "llm")
collate = AnswerOnlyCollator(proc, end_of_turn="</s>")
rows = generate("syn_birds", "train", 16 * (int(sys.argv[3]) + 3), seed=0)
batches = [collate(rows[i:i + 16]) for i in range(0, len(rows), 16)]
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, foreach=True)
def step(b):
    model(**b).loss.backward(); opt.step(); opt.zero_grad()
for b in batches[:3]:
    step(b)
t0 = time.perf_counter()
for b in batches[3:]:
    step(b)
print(json.dumps({"ms_per_step": 1000 * (time.perf_counter() - t0) / (len(batches) - 3), "numerics": numerics.record()}))
"""

# (T, M, K, N, layout): x @ W^T forward products ("w"), their input gradients ("n"), weight
# gradients dY^T @ X ("t"), attention Q @ K^T ("qk") and P @ V ("n") with 8 heads x 16 rows
SHAPES = [(1, 848, 128, 512, "w"), (1, 848, 512, 128, "w"), (1, 848, 128, 128, "w"), (1, 848, 128, 64, "w"),
          (1, 848, 128, 217, "w"), (1, 848, 512, 128, "n"), (1, 848, 128, 512, "n"), (1, 512, 848, 128, "t"),
          (1, 128, 848, 512, "t"), (1, 128, 848, 128, "t"), (128, 53, 16, 53, "qk"), (128, 53, 53, 16, "n")]


def operands(T, M, K, N, layout, torch):
    if layout == "w":
        return torch.randn(T, M, K), torch.randn(N, K).t().unsqueeze(0).expand(T, K, N)
    if layout == "t":
        return torch.randn(T, K, M).transpose(1, 2), torch.randn(T, K, N)
    if layout == "qk":
        return torch.randn(T, M, K), torch.randn(T, N, K).transpose(1, 2)
    return torch.randn(T, M, K), torch.randn(T, K, N)


def timed(fn, n=30) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return 1000 * (time.perf_counter() - t0) / n


def products(threads: int) -> None:
    import torch

    from lmmcl.numerics import kernel

    torch.set_num_threads(threads)
    paths = [p for p in ("avx2", "avx512") if kernel.ISAS[p] <= kernel.ISAS[kernel.best_isa_name()]]
    print(f"1. products of one training step, ms per call ({threads} thread(s)); oneMKL = torch's default")
    print(f"   {'T':>3} {'M':>4} {'K':>4} {'N':>4} {'kind':4} {'oneMKL':>7} " + " ".join(f"{p:>7}" for p in paths)
          + "   ratio (widest path / oneMKL)")
    tot = {"mkl": 0.0, **{p: 0.0 for p in paths}}
    for T, M, K, N, lay in SHAPES:
        a, b = operands(T, M, K, N, lay, torch)
        t = {"mkl": timed(lambda: torch.bmm(a, b))}
        for p in paths:
            t[p] = timed(lambda: kernel.bmm(a, b, threads=threads, path=p))
        for k in tot:
            tot[k] += t[k]
        print(f"   {T:3d} {M:4d} {K:4d} {N:4d} {lay:4} {t['mkl']:7.3f} " + " ".join(f"{t[p]:7.3f}" for p in paths)
              + f"   {t[paths[-1]] / t['mkl']:.2f}")
    print(f"   sum: oneMKL {tot['mkl']:.2f} ms, " + ", ".join(f"{p} {tot[p]:.2f} ms ({tot[p] / tot['mkl']:.2f}x)" for p in paths))


def steps(n: int, threads: int) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("LMMCL_NUMERICS", None)
    res = {}
    for mode in ("native", "portable"):
        p = subprocess.run([sys.executable, "-c", STEPS, mode, str(threads), str(n), json.dumps(SPEC)],
                           capture_output=True, text=True, env=env)
        if p.returncode:
            sys.exit(p.stderr[-3000:])
        res[mode] = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\n2. training steps of the tiny default (llm recipe, batches of 16 syn_birds examples, {threads} thread(s))")
    for mode, r in res.items():
        rec = r["numerics"]
        print(f"   {mode:9} {r['ms_per_step']:6.1f} ms/step  (products: {rec['gemm']}, ATen kernels: {rec['aten_capability']})")
    print(f"   portable / native: {res['portable']['ms_per_step'] / res['native']['ms_per_step']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    products(a.threads)
    steps(a.steps, a.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
