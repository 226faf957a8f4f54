"""Same config + seed -> identical data, identical weights, identical CPU scores.

Runs the tiny pipeline's steps twice, each run in fresh processes with a different
PYTHONHASHSEED (so set/dict-order or hash-seeded randomness would show) and its own HF_HOME:

1. data: every synthetic split of the smoke config (`lmmcl.data.synthetic.write_skill`, seed S)
   -> sha256 of each parquet, run A vs run B; a third run with seed S+1 must differ;
2. base: `lmmcl build-base` (tiny LLaVA built from its seed, pre-trained `--steps` steps on
   syn_color, 1 thread; 120 steps so that its scores are not all 0)
   -> max |delta| over every tensor of model.safetensors, and the file's sha256;
3. stage (with --stage): `lmmcl train-stage` (`--stage-steps`) from each base, same comparison;
4. scores: `lmmcl evaluate` of each base (and stage) on the smoke benchmarks
   -> every score and every generated answer.

    python benchmarks/determinism.py [--steps 120] [--stage] [--stage-steps 20] [--keep DIR]

Prints one row per check and exits 1 if any differs. `run()` is what tests/test_determinism.py calls.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SKILLS = {"syn_color": ("train", "test"), "syn_count": ("train", "test"), "syn_birds": ("test",)}
BENCHMARKS = ["syn_color", "syn_count", "syn_birds"]
TINY = {"family": "tiny_llava",
        "tiny": {"hidden_size": 32, "intermediate_size": 64, "vision_hidden_size": 32, "vision_intermediate_size": 64}}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _env(run_dir: Path, hashseed: str) -> dict:
    env = dict(os.environ)
    env.update(PATH=f"{BIN}:{env.get('PATH', '')}", PYTHONHASHSEED=hashseed, HF_HOME=str(run_dir / "hf_home"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _run(cmd: list[str], env: dict, cwd: Path) -> str:
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def make_data(data: Path, seed: int, env: dict, n_train: int, n_test: int) -> dict[str, str]:
    """Every split in one fresh process; returns {skill/split: sha256}."""
    jobs = [(s, sp, n_train if sp == "train" else n_test) for s, splits in SKILLS.items() for sp in splits]
    code = ("import sys, json\nfrom lmmcl.data.synthetic import write_skill\n"
            f"for skill, split, n in {jobs!r}:\n"
            f"    write_skill(skill, split, n, {seed}, sys.argv[1] + f'/{{skill}}/{{split}}.parquet')\n")
    _run([sys.executable, "-c", code, str(data)], env, data.parent)
    return {f"{s}/{sp}": sha256(data / s / f"{sp}.parquet") for s, sp, _ in jobs}


def build_base(run_dir: Path, env: dict, steps: int, seed: int) -> Path:
    out = run_dir / "base" / "manifest.json"
    _run([str(BIN / "lmmcl"), "build-base", "--experiment", "det", "--model", json.dumps(TINY),
          "--hparams", json.dumps({"lr": 5e-3, "steps": steps, "batch_size": 8}),
          "--data", str(run_dir / "data/syn_color/train.parquet"), "--seed", str(seed), "--threads", "1",
          "--out", str(out)], env, run_dir)
    return out


def train_stage(run_dir: Path, env: dict, steps: int) -> Path:
    out = run_dir / "full" / "stage1_syn_count" / "manifest.json"
    _run([str(BIN / "lmmcl"), "train-stage", "--parent", str(run_dir / "base/manifest.json"),
          "--data", str(run_dir / "data/syn_count/train.parquet"), "--method", "full", "--recipe", "full",
          "--hparams", json.dumps({"lr": 1e-3, "steps": steps, "batch_size": 8}), "--stage", "1",
          "--task", "syn_count", "--threads", "1", "--checkpoint-format", "full", "--out", str(out)], env, run_dir)
    return out


def evaluate(run_dir: Path, manifest: Path, env: dict, limit: int) -> dict:
    """{benchmark: {"score": ..., "responses": [...]}} of one `lmmcl evaluate` run."""
    out = manifest.parent / "evals"
    _run([str(BIN / "lmmcl"), "evaluate", "--manifest", str(manifest), "--benchmarks", *BENCHMARKS,
          "--data-root", str(run_dir / "data"), "--out-dir", str(out), "--limit", str(limit), "--threads", "1"],
         env, run_dir)
    res = {}
    for b in BENCHMARKS:
        rec = json.loads((out / f"{b}.json").read_text())
        rows = [json.loads(line) for line in (out / f"{b}.samples.jsonl").read_text().splitlines()]
        res[b] = {"score": rec["score"], "scores": rec["scores"], "n": rec["n"],
                  "responses": [r.get("response") for r in rows]}
    return res


def weights(manifest: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted((manifest.parent / "model").glob("*.safetensors"))
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def max_abs_diff(a: dict, b: dict) -> float:
    if set(a) != set(b):
        return float("inf")
    worst = 0.0
    for k in a:
        if a[k].shape != b[k].shape:
            return float("inf")
        if a[k].numel():
            worst = max(worst, (a[k].double() - b[k].double()).abs().max().item())
    return worst


def run(workdir: Path, *, steps: int = 120, seed: int = 0, n_train: int = 64, n_test: int = 8, limit: int = 8,
        stage: bool = False, stage_steps: int = 20) -> dict:
    """Both runs (and the other-seed data) under `workdir`; returns every comparison."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    dirs = {name: workdir / name for name in ("A", "B", "other_seed")}
    envs = {"A": _env(dirs["A"], "1"), "B": _env(dirs["B"], "4242"), "other_seed": _env(dirs["other_seed"], "1")}
    for d in dirs.values():
        (d / "data").mkdir(parents=True, exist_ok=True)
    data = {k: make_data(dirs[k] / "data", seed + (k == "other_seed"), envs[k], n_train, n_test) for k in dirs}
    t_data = time.perf_counter()
    res: dict = {
        "data_files": len(data["A"]),
        "data_identical": [k for k in data["A"] if data["A"][k] == data["B"][k]],
        "data_differ_other_seed": [k for k in data["A"] if data["A"][k] != data["other_seed"][k]],
        "data_sha256": data["A"],
    }
    bases = {k: build_base(dirs[k], envs[k], steps, seed) for k in ("A", "B")}
    t_base = time.perf_counter()
    wa, wb = weights(bases["A"]), weights(bases["B"])
    res["base_tensors"] = len(wa)
    res["base_max_abs_diff"] = max_abs_diff(wa, wb)
    res["base_safetensors_identical"] = all(
        sha256(f) == sha256(bases["B"].parent / "model" / f.name)
        for f in sorted((bases["A"].parent / "model").glob("*.safetensors")))
    targets = {"base": bases}
    if stage:
        stages = {k: train_stage(dirs[k], envs[k], stage_steps) for k in ("A", "B")}
        res["stage_max_abs_diff"] = max_abs_diff(weights(stages["A"]), weights(stages["B"]))
        targets["stage1"] = stages
    t_train = time.perf_counter()
    for name, pair in targets.items():
        ea, eb = (evaluate(dirs[k], pair[k], envs[k], limit) for k in ("A", "B"))
        res[f"{name}_scores"] = {b: ea[b]["score"] for b in BENCHMARKS}
        res[f"{name}_scores_identical"] = all(ea[b]["scores"] == eb[b]["scores"] for b in BENCHMARKS)
        res[f"{name}_responses_identical"] = all(ea[b]["responses"] == eb[b]["responses"] for b in BENCHMARKS)
        res[f"{name}_answers"] = sum(ea[b]["n"] for b in BENCHMARKS)
        res[f"{name}_distinct_answers"] = len({r for b in BENCHMARKS for r in ea[b]["responses"]})
    t_eval = time.perf_counter()
    res["seconds"] = {"data": round(t_data - t0, 1), "base": round(t_base - t_data, 1),
                      "stage" if stage else "compare": round(t_train - t_base, 1),
                      "evaluate": round(t_eval - t_train, 1), "total": round(t_eval - t0, 1)}
    return res


def problems(res: dict) -> list[str]:
    bad = []
    if len(res["data_identical"]) != res["data_files"]:
        bad.append("data differs between runs with the same seed")
    if len(res["data_differ_other_seed"]) != res["data_files"]:
        bad.append("data with another seed is identical for some split")
    for key in ("base_max_abs_diff", "stage_max_abs_diff"):
        if key in res and res[key] != 0.0:
            bad.append(f"{key} = {res[key]}")
    for key, v in res.items():
        if key.endswith("_identical") and v is False:
            bad.append(f"{key} is False")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=120, help="training steps of the base")
    ap.add_argument("--stage", action="store_true", help="also train (and evaluate) one stage from each base")
    ap.add_argument("--stage-steps", type=int, default=20, help="training steps of that stage")
    ap.add_argument("--keep", help="work in this folder (kept) instead of a temporary one")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lmmcl_det_") as tmp:
        res = run(Path(a.keep or tmp), steps=a.steps, stage=a.stage, stage_steps=a.stage_steps)
    rows = [
        ("data: parquet sha256, same seed", f"{len(res['data_identical'])}/{res['data_files']} identical"),
        ("data: parquet sha256, seed+1", f"{len(res['data_differ_other_seed'])}/{res['data_files']} differ"),
        (f"base weights ({res['base_tensors']} tensors, {a.steps} steps)", f"max |delta| = {res['base_max_abs_diff']:g}"),
        ("base model.safetensors sha256", "identical" if res["base_safetensors_identical"] else "DIFFERENT"),
    ]
    if "stage_max_abs_diff" in res:
        rows.append((f"stage-1 weights ({a.stage_steps} steps)", f"max |delta| = {res['stage_max_abs_diff']:g}"))
    for name in ("base", "stage1"):
        if f"{name}_scores" in res:
            scores = ", ".join(f"{b} {v:.1f}" for b, v in res[f"{name}_scores"].items())
            same = res[f"{name}_scores_identical"] and res[f"{name}_responses_identical"]
            rows.append((f"{name} CPU scores + {res[f'{name}_answers']} answers "
                         f"({res[f'{name}_distinct_answers']} distinct)",
                         ("identical" if same else "DIFFERENT") + f" ({scores})"))
    width = max(len(r[0]) for r in rows)
    print(f"{'check':<{width}}  result")
    for left, right in rows:
        print(f"{left:<{width}}  {right}")
    print(f"time: {res['seconds']}")
    bad = problems(res)
    for b in bad:
        print(f"NOT DETERMINISTIC: {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
