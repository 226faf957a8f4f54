"""How long Snakemake takes to plan: each paper config (all recipes x 5 stages x every benchmark)
from scratch, and the default experiment once it has finished ("Nothing to be done").

Each case runs `snakemake -n` (dry run, nothing executed) `--repeats` times in a fresh process and
keeps the best wall time; printed next to its budget (15 s paper, 3 s finished default) as a ratio.
The finished-default case needs a completed `make run` in this checkout; without one it is
reported as skipped (with the number of jobs still to run).

    python benchmarks/planning.py [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"paper": 15.0, "finished": 3.0}


def _snakemake() -> str:
    local = Path(sys.executable).with_name("snakemake")
    return str(local) if local.exists() else "snakemake"


def plan(args: list[str], repeats: int) -> tuple[float, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    best, out = float("inf"), ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run([_snakemake(), "-n", "--cores", "2", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        out = p.stdout + p.stderr
        if p.returncode != 0:
            raise SystemExit(f"snakemake -n {' '.join(args)} failed ({p.returncode}):\n{out[-3000:]}")
        best = min(best, dt)
    return best, out


def startup(repeats: int) -> float:
    """Seconds to start Snakemake at all (import + plugin registry): paid by every call. Where
    slurm-client is installed but no controller answers, the SLURM executor plugin's
    `scontrol show config` makes this ~10 s (docs/cluster.md); on a cluster or without SLURM, ~1 s."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import snakemake.cli"], check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def _everything(config: Path) -> dict:
    from lmmcl import registry

    cfg = yaml.safe_load(config.read_text())
    cfg["methods"] = {name: {"recipe": name} for name in registry.recipes()}
    cfg["methods"].update({"lora": {"method": "lora", "recipe": "llm"}, "lwf": {"method": "lwf", "recipe": "llm"},
                           "wise_ft": {"method": "wise_ft", "recipe": "llm"}, "moe": {"method": "moe"}})
    return cfg


def _jobs(out: str) -> str:
    if "Nothing to be done" in out:
        return "nothing to be done"
    m = re.search(r"^total\s+(\d+)", out, re.M)
    return f"{m.group(1)} jobs" if m else "?"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args(argv)
    rows, ok = [], True
    for cfg in sorted((ROOT / "config").glob("paper_*.yaml")):
        dt, out = plan(["--configfile", str(cfg.relative_to(ROOT))], a.repeats)
        rows.append((f"{cfg.name} from scratch", _jobs(out), dt, BUDGET["paper"]))
    # the largest plan: every built-in recipe and every baseline on the OneVision paper config
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=ROOT / "config", prefix=".planning_") as f:
        yaml.safe_dump(_everything(ROOT / "config/paper_llava_onevision.yaml"), f)
        f.flush()
        dt, out = plan(["--configfile", str(Path(f.name).relative_to(ROOT))], a.repeats)
    rows.append(("paper_llava_onevision + every recipe and baseline", _jobs(out), dt, BUDGET["paper"]))
    dt, out = plan([], a.repeats)
    if "Nothing to be done" in out:
        rows.append(("config.yaml, finished run", _jobs(out), dt, BUDGET["finished"]))
    else:
        print(f"skipped: the default run is not finished here ({_jobs(out)} to run); `make run` first",
              file=sys.stderr)
    start = startup(a.repeats)
    print(f"snakemake start-up alone (import, plugins): {start:.2f} s, included below")
    print("| plan | DAG | best of %d (s) | budget (s) | time / budget | without start-up (s) |" % a.repeats)
    print("|---|---|---:|---:|---:|---:|")
    for name, jobs, dt, budget in rows:
        ok &= dt <= budget
        print(f"| {name} | {jobs} | {dt:.2f} | {budget:.0f} | {dt / budget:.2f} | {dt - start:.2f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
