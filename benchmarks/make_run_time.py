"""Time of the default run (what `make run` runs after its install), this tree vs a baseline
commit, measured side by side on the same machine, with a profile of where each job's seconds go.

    .venv/bin/python benchmarks/make_run_time.py --baseline cb5c35c
    .venv/bin/python benchmarks/make_run_time.py --baseline cb5c35c --repeat 2 --workdir /tmp/runtime --keep

Each side is a git worktree of its commit (`--candidate`, default HEAD) with its own fresh data/
and results/, run as `make run` runs it: `snakemake --cores N` in the tree (its Snakefile, its
default config), with the tree's own lmmcl on PYTHONPATH and this .venv otherwise. Runs alternate
baseline, candidate, baseline, ... so that a change in machine load hits both. Printed:
- the wall time of every run, the median per side and the ratio candidate / baseline;
- per rule: jobs, job-seconds (sum), mean and max, from Snakemake's log (1 s resolution);
- per job kind, the mean seconds of each phase the records hold: start-up (interpreter and
  `import lmmcl.cli`), configure (torch import, numerics), imports, load (model), train (the
  training loop), save, and for evaluations lmms-eval's import, `simple_evaluate`, generation.
  The baseline's records hold fewer phases (training loop, evaluation import/run); "other" is a
  job's wall time minus the phases recorded. With evaluation.in_training_job the stage jobs'
  records hold their evaluation as a phase (`evaluate`), and the evaluation records say so.
Nothing is asserted: the script prints what it measured.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def worktree(commit: str, where: Path) -> Path:
    if where.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit], check=True,
                   capture_output=True, text=True)
    return where


def run_default(tree: Path, cores: int, label: str) -> dict:
    """One fresh default run in `tree`; its wall seconds, Snakemake log and results folder."""
    for d in ("data", "results", ".snakemake"):
        shutil.rmtree(tree / d, ignore_errors=True)
    (tree / "results").mkdir()
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), PATH=f"{BIN}:{os.environ.get('PATH', '')}",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("LMMCL_NUMERICS", None)
    print(f"[{time.strftime('%H:%M:%S')}] {label}: snakemake --cores {cores} in {tree} ...", flush=True)
    t0 = time.time()
    p = subprocess.run([str(BIN / "snakemake"), "--cores", str(cores)], cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.time() - t0
    if p.returncode:
        sys.exit(f"{label}: snakemake failed ({p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {seconds:.0f} s", flush=True)
    logs = sorted((tree / ".snakemake/log").glob("*.snakemake.log"))
    return {"seconds": seconds, "log": logs[-1].read_text() if logs else p.stderr,
            "results": tree / "results" / "tiny_default"}


def job_seconds(log: str) -> list[tuple[str, str, float]]:
    """(rule, output, seconds) of every job of a Snakemake log."""
    ts, rule, out, start, info, jobs = None, None, None, {}, {}, []
    for line in log.splitlines():
        m = re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line)
        if m:
            ts = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"(?:local)?rule (\w+):", line)
        if m:
            rule, out = m.group(1), None
            continue
        m = re.match(r"\s+output: ([^,\s]+)", line)
        if m and rule:
            out = m.group(1)
            continue
        m = re.match(r"\s+jobid: (\d+)", line)
        if m and rule:
            start[m.group(1)], info[m.group(1)], rule = ts, (rule, out or ""), None
            continue
        m = re.match(r"Finished jobid: (\d+)", line)
        if m and m.group(1) in start:
            jobs.append((*info[m.group(1)], (ts - start[m.group(1)]).total_seconds()))
    return jobs


KINDS = {"build_base": "base", "train_stage": "stage", "evaluate_base": "evaluation", "evaluate_stage": "evaluation"}


def phases(results: Path) -> dict[str, list[dict]]:
    """{job kind: [phase seconds of one job]} from the manifests and evaluation records."""
    out = collections.defaultdict(list)
    for m in results.glob("seed*/**/manifest.json"):
        rec = json.loads(m.read_text())
        kind = "base" if rec.get("stage", 0) == 0 and "/base/" in str(m) else "stage"
        t = dict(rec.get("timing") or {})
        if "train" not in t and (rec.get("metrics") or {}).get("seconds") is not None:
            t["train"] = rec["metrics"]["seconds"]  # older records: the training loop only
        out[kind].append(t)
    for f in results.glob("seed*/evals/**/*.json"):
        if f.name.endswith(".samples.json"):
            continue
        rec = json.loads(f.read_text())
        if rec.get("benchmark") and rec.get("timing") and f.stem == rec["benchmark"]:
            # one record per checkpoint suffices: every benchmark of a job carries the same timing
            if f.stem == sorted(p.stem for p in f.parent.glob("*.json") if not p.name.endswith(".samples.json"))[0]:
                t = dict(rec["timing"])
                # evaluation.in_training_job: evaluated by the stage job's process (its wall holds both)
                in_job = bool(t.pop("in_training_job", False))
                total = t.pop("total", None)
                if in_job:
                    out["stage_evaluate"].append(total or 0.0)
                if "generation" not in t:
                    t["generation"] = sum(json.loads(g.read_text()).get("seconds") or 0 for g in f.parent.glob("*.json")
                                          if not g.name.endswith(".samples.json"))
                out["evaluation in stage job" if in_job else "evaluation"].append(t)
    return out


def summarize(label: str, run: dict) -> None:
    jobs = job_seconds(run["log"])
    by_rule = collections.defaultdict(list)
    for rule, _, s in jobs:
        by_rule[rule].append(s)
    print(f"\n{label}: {run['seconds']:.0f} s wall, {len(jobs)} jobs, {sum(s for *_, s in jobs):.0f} job-seconds")
    print(f"  {'rule':18} {'jobs':>4} {'sum s':>7} {'mean s':>7} {'max s':>6}")
    for rule, ss in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {rule:18} {len(ss):4d} {sum(ss):7.0f} {sum(ss) / len(ss):7.1f} {max(ss):6.0f}")
    wall = collections.defaultdict(list)
    for rule, _, s in jobs:
        if rule in KINDS:
            wall[KINDS[rule]].append(s)
    found = phases(run["results"])
    in_job = found.pop("stage_evaluate", [])
    if in_job:  # the stage jobs' wall holds their evaluation: count it as a phase of theirs
        for r in found.get("stage", []):
            r["evaluate"] = statistics.mean(in_job)
    for kind, recs in sorted(found.items()):
        keys = sorted({k for r in recs for k in r}, key=lambda k: ["startup", "configure", "imports", "import", "load",
                                                                   "train", "simple_evaluate", "generation",
                                                                   "save"].index(k) if k in (
            "startup", "configure", "imports", "import", "load", "train", "simple_evaluate", "generation", "save") else 99)
        mean = {k: statistics.mean(r.get(k, 0.0) for r in recs) for k in keys}
        job = statistics.mean(wall[kind]) if wall.get(kind) else float("nan")
        if kind == "evaluation in stage job":
            job = statistics.mean(in_job)  # its seconds inside the stage job
        # simple_evaluate contains generation; the evaluation's own phases are its parts
        accounted = sum(v for k, v in mean.items() if k not in ("generation",))
        parts = ", ".join(f"{k} {v:.1f}" for k, v in mean.items())
        print(f"  per {kind} job (n={len(recs)}, mean wall {job:.1f} s): {parts}, other {job - accounted:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="commit to compare with, e.g. cb5c35c")
    ap.add_argument("--candidate", default="HEAD", help="commit measured (default HEAD; commit your changes first)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per side, alternating (default 1)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    ap.add_argument("--keep", action="store_true", help="keep the worktrees and their results")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="lmmcl_runtime_"))
    work.mkdir(parents=True, exist_ok=True)
    trees = {"baseline": worktree(a.baseline, work / "baseline"), "candidate": worktree(a.candidate, work / "candidate")}
    names = {k: subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", c], capture_output=True, text=True).stdout.strip()
             for k, c in (("baseline", a.baseline), ("candidate", a.candidate))}
    runs = collections.defaultdict(list)
    try:
        for i in range(a.repeat):
            for side in ("baseline", "candidate"):
                runs[side].append(run_default(trees[side], a.cores, f"{side} {names[side]} run {i + 1}"))
                if i == a.repeat - 1:
                    summarize(f"{side} {names[side]} (last run)", runs[side][-1])
        med = {side: statistics.median(r["seconds"] for r in rs) for side, rs in runs.items()}
        print(f"\nmake run (snakemake --cores {a.cores}, data to tables), median of {a.repeat}:")
        for side in ("baseline", "candidate"):
            print(f"  {side:9} {names[side]}: {med[side]:6.0f} s ({med[side] / 60:.1f} min)  runs: "
                  + ", ".join(f"{r['seconds']:.0f}" for r in runs[side]))
        print(f"  ratio candidate / baseline: {med['candidate'] / med['baseline']:.2f}")
    finally:
        if not a.keep:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
