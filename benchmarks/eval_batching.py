"""Samples/s of lmms-eval generation with the `lmmcl` wrapper: batch 1 vs batch N, side by side.

Builds the tiny LLaVA (seeded, no download) and a real-format benchmark parquet (default
cub200, our contract columns), evaluates it through `lmmcl.evaluation.run.evaluate` with
batch_size 1 and then N (same process, same data, warm), checks that the greedy answers are
identical, and prints generation samples/s (the wrapper's own timer) and whole-call samples/s.

    python benchmarks/eval_batching.py --n 64 --batch 16 [--device cuda] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="samples")
    p.add_argument("--batch", type=int, default=16, help="N of batch N")
    p.add_argument("--benchmark", default="cub200")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per batch size (best is kept)")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from fixtures.eval_formats import write_contract

    from lmmcl.evaluation.run import evaluate
    from lmmcl.models.tiny import TinySpec, save_tiny_llava

    with tempfile.TemporaryDirectory(prefix="eval_batching_") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("HF_HOME", str(tmp / "hf"))
        ckpt = save_tiny_llava(tmp / "ckpt", TinySpec(), seed=0)
        write_contract(tmp / "data", a.benchmark, n=a.n)

        def run(bs: int, tag: str):
            best = None
            for r in range(a.repeats):
                out = tmp / f"out_{tag}_{r}"
                t0 = time.perf_counter()
                (path,) = evaluate(str(ckpt), [a.benchmark], tmp / "data", out, device=a.device, batch_size=bs)
                wall = time.perf_counter() - t0
                rec = json.loads(path.read_text())
                answers = [json.loads(l)["response"] for l in (out / rec["samples"]).read_text().splitlines()]
                cur = {"gen_s": rec["seconds"], "wall_s": wall, "answers": answers, "score": rec["score"]}
                if best is None or cur["gen_s"] < best["gen_s"]:
                    best = cur
            return best

        run(1, "warmup")
        one, many = run(1, "b1"), run(a.batch, f"b{a.batch}")

    same = one["answers"] == many["answers"]
    print(f"tiny LLaVA, {a.benchmark}, n={a.n}, device={a.device}, threads={a.threads}")
    print(f"{'':10} {'gen s':>8} {'gen samples/s':>14} {'call s':>8} {'call samples/s':>15}")
    for name, r in (("batch 1", one), (f"batch {a.batch}", many)):
        print(f"{name:10} {r['gen_s']:8.3f} {a.n / r['gen_s']:14.1f} {r['wall_s']:8.3f} {a.n / r['wall_s']:15.1f}")
    print(f"speed-up (generation): {one['gen_s'] / many['gen_s']:.2f}x; "
          f"(whole call): {one['wall_s'] / many['wall_s']:.2f}x; identical greedy answers: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
