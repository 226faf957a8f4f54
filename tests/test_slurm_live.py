"""The real pipeline through a live SLURM: `snakemake --profile profiles/slurm` (+ profiles/slurm-ci).

Needs a running cluster with accounting (sacct): `.ci/slurm/start.sh`, which `.ci/run` starts and
always stops. Opt-in because it takes minutes: LMMCL_SLURM_TESTS=1 pytest -q tests/test_slurm_live.py
Skipped where `sbatch` is not installed; with LMMCL_SLURM_TESTS=1 a cluster that does not answer fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUN_TIMEOUT_S = 900

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sbatch") is None, reason="no SLURM here (sbatch not on PATH)"),
    pytest.mark.skipif(os.environ.get("LMMCL_SLURM_TESTS") != "1",
                       reason="live SLURM test: set LMMCL_SLURM_TESTS=1 with a cluster up (.ci/slurm/start.sh)"),
]


def env():
    # --export=ALL: the jobs inherit this environment (PATH with the venv's `lmmcl`, offline flags)
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HF_HUB_OFFLINE="1",
                HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")


def snakemake_slurm(wd: Path, config: Path, log_name: str) -> tuple[str, float]:
    """One real run through SLURM under `timeout -k` (a lost status check must never hang CI)."""
    cmd = ["timeout", "-k", "15", str(RUN_TIMEOUT_S), str(BIN / "snakemake"),
           "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(wd),
           "--configfile", str(config),
           "--profile", str(ROOT / "profiles/slurm"), "--profile", str(ROOT / "profiles/slurm-ci")]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=wd, env=env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 60)
    elapsed = time.time() - t0
    out = p.stdout + p.stderr
    (wd / log_name).write_text(out)
    assert p.returncode == 0, f"snakemake rc={p.returncode} after {elapsed:.0f}s:\n{out[-5000:]}{failed_job_logs(wd)}"
    return out, elapsed


def failed_job_logs(wd: Path, tail: int = 3000) -> str:
    """The end of every rule log that reports an error: a failed SLURM job's cause lives there
    (Snakemake only says "FAILED. Reason: Unknown"), and CI keeps nothing else."""
    marks = ("Traceback", "Error", "error:", "terminate called", "Signal ")
    found = []
    for log in sorted((wd / "results").glob("*/logs/**/*.log")):
        text = log.read_text(errors="replace")
        if any(m in text for m in marks):
            found.append(f"\n--- {log.relative_to(wd)} (last {tail} chars) ---\n{text[-tail:]}")
    return "".join(found)


def jobs_of(out: str) -> dict[tuple[str, str], str | None]:
    """(rule, wildcards) -> SLURM job id, for every cluster job in a run's log (local rules skipped)."""
    blocks, current = {}, None    # snakemake job id -> [rule, wildcards]
    for line in out.splitlines():
        s = line.strip()
        if m := re.match(r"^(local)?rule (\w+):$", s):
            current = None if m.group(1) else [m.group(2), ""]
        elif current is not None and (m := re.match(r"^jobid: (\d+)$", s)):
            blocks[m.group(1)] = current
        elif current is not None and (m := re.match(r"^wildcards: (.*)$", s)):
            current[1] = m.group(1)
    slurm_ids = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
    return {tuple(b): slurm_ids.get(smk_id) for smk_id, b in blocks.items()}


def sacct(job_ids) -> dict[str, tuple[str, str]]:
    """job id -> (state, account), from SLURM's accounting database."""
    p = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "--format=JobIdRaw,State,Account"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [l.split("|") for l in p.stdout.splitlines() if l.strip()]
    return {r[0]: (r[1], r[2]) for r in rows}


def assert_all_ran_on_slurm(wd: Path, jobs: dict):
    assert jobs, "no cluster jobs in the log"
    missing = [k for k, v in jobs.items() if v is None]
    assert not missing, f"jobs without a SLURM job id: {missing}"
    ids = list(jobs.values())
    assert len(set(ids)) == len(ids)
    acct = sacct(ids)
    assert set(acct) == set(ids), f"sacct does not know {set(ids) - set(acct)}"
    assert {s for s, _ in acct.values()} == {"COMPLETED"}, acct
    assert {a for _, a in acct.values()} == {"ci"}, acct   # profiles/slurm-ci's account
    # each job left its SLURM log (slurm-keep-successful-logs)
    logs = {p.stem for p in (wd / ".snakemake/slurm_logs").rglob("*.log")}
    assert set(ids) <= logs, set(ids) - logs


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    # the jobs run on this host, so a temporary folder is a valid shared working directory
    wd = tmp_path_factory.mktemp("slurm_wf")
    shutil.copy(ROOT / "tests/configs/smoke.yaml", wd / "config.yaml")
    out, elapsed = snakemake_slurm(wd, wd / "config.yaml", "run1.log")
    print(f"\nSLURM first run: {elapsed:.0f} s")
    return wd, out


def test_every_job_gets_a_slurm_job_id_and_completes(first_run):
    wd, out = first_run
    jobs = jobs_of(out)
    rules = sorted({r for r, _ in jobs})
    assert rules == ["build_base", "evaluate_base", "evaluate_stage", "train_stage"], rules
    # data and report rules are local rules: they ran in the Snakemake process, not through sbatch
    assert {"make_synthetic", "aggregate", "gallery"} <= set(re.findall(r"^\s*localrule (\w+):\s*$", out, re.M))
    assert sum(r == "train_stage" for r, _ in jobs) == 4      # 2 methods x 2 stages
    assert_all_ran_on_slurm(wd, jobs)


def test_tables_are_produced(first_run):
    wd, _ = first_run
    res = wd / "results/smoke"
    for f in ["scores.csv", "tables/learning_forgetting.md", "tables/learning_forgetting.csv",
              "plots/learning_vs_heldout.png"]:
        assert (res / f).stat().st_size > 0, f
    scores = pd.read_csv(res / "scores.csv")
    assert len(scores) == 18 and scores["score"].notna().all()   # 2 methods x 3 checkpoints x 3 benchmarks


def test_changing_one_stage_lr_reruns_it_and_downstream_only(first_run):
    wd, _ = first_run
    res = wd / "results/smoke"
    untouched = [res / "seed0/base/manifest.json", res / "seed0/full/stage1_syn_birds/manifest.json",
                 res / "seed0/full/stage2_syn_count/manifest.json", res / "seed0/evals/base/syn_birds.json",
                 res / "seed0/evals/full/stage2_syn_count/syn_count.json"]
    before = {p: p.stat().st_mtime_ns for p in untouched}
    old_stage2 = json.loads((res / "seed0/sa_proj/stage2_syn_count/manifest.json").read_text())

    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["methods"]["sa_proj"]["stages"] = {"syn_birds": {"lr": 5.0e-4}}   # stage 1 of one method
    (wd / "changed.yaml").write_text(yaml.safe_dump(cfg))
    out, elapsed = snakemake_slurm(wd, wd / "changed.yaml", "run2.log")
    print(f"\nSLURM rerun after one lr change: {elapsed:.0f} s")

    jobs = jobs_of(out)
    assert set(jobs) == {
        ("train_stage", "seed=0, method=sa_proj, k=1, task=syn_birds"),
        ("evaluate_stage", "seed=0, method=sa_proj, k=1, task=syn_birds"),
        ("train_stage", "seed=0, method=sa_proj, k=2, task=syn_count"),      # downstream stage
        ("evaluate_stage", "seed=0, method=sa_proj, k=2, task=syn_count"),
    }
    assert {"aggregate", "gallery"} <= set(re.findall(r"^\s*localrule (\w+):\s*$", out, re.M))   # local rules
    assert_all_ran_on_slurm(wd, jobs)
    assert {p: p.stat().st_mtime_ns for p in untouched} == before
    new_stage2 = json.loads((res / "seed0/sa_proj/stage2_syn_count/manifest.json").read_text())
    assert new_stage2 != old_stage2


def test_two_cpu_process_jobs_through_slurm(tmp_path):
    """resources.processes: 2 with resources.deepspeed: zero2 on a CPU-only SLURM: the stage runs
    under torchrun as a DeepSpeed ZeRO-2 stage (DS_ACCELERATOR=cpu, gloo) and the evaluations
    under accelerate launch, each inside one allocation of 2 CPUs; rank 0 writes."""
    wd = tmp_path / "mp"
    wd.mkdir()
    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["resources"] = {"processes": 2, "deepspeed": "zero2"}
    cfg["stages"]["defaults"]["batch_size"] = 4   # per process: the effective batch stays 8
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    out, elapsed = snakemake_slurm(wd, wd / "config.yaml", "run_mp.log")
    print(f"\nSLURM run with 2 CPU processes per job: {elapsed:.0f} s")
    jobs = jobs_of(out)
    assert_all_ran_on_slurm(wd, jobs)
    assert "DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 torchrun --standalone --shutdown-timeout 900 --nproc_per_node=2 -m lmmcl.cli train-stage" in out
    assert f"--deepspeed {ROOT / 'config/deepspeed/zero2.json'}" in out
    assert "accelerate launch --multi_gpu --main_process_port 0 --num_processes 2" in out
    multi = [v for (r, _), v in jobs.items() if r in ("train_stage", "evaluate_base", "evaluate_stage")]
    p = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(multi), "--format=JobIdRaw,AllocCPUS"],
                       capture_output=True, text=True, timeout=60)
    assert {line.split("|")[1] for line in p.stdout.splitlines() if line.strip()} == {"2"}, p.stdout
    stage = wd / "results/micro/seed0/full/stage1_syn_count"
    m = json.loads((stage / "manifest.json").read_text())
    assert m["metrics"]["examples_seen"] == 4 * 4 * 2          # 4 steps x batch 4 x 2 ranks
    assert m["metrics"]["distributed"] == {"world_size": 2, "backend": "gloo",
                                           "deepspeed": {"zero_stage": 2, "accelerator": "cpu"}}
    assert m["checkpoint_storage"]["format"] == "delta"
    assert len(list((stage / "tensorboard").iterdir())) == 1   # rank 0's curves only
    assert (wd / "results/micro/gallery/gallery.html").is_file()


# ---- preemption: scancel --signal=TERM of a running stage ------------------------------------------
PREEMPT_STEPS = 300


def preempt_config(wd: Path, name: str, resources: dict | None) -> Path:
    """The micro pipeline with one long stage (PREEMPT_STEPS steps, no save_steps): time to signal it."""
    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["experiment"] = name
    cfg["stages"]["defaults"]["steps"] = PREEMPT_STEPS
    if resources:
        cfg["resources"] = resources
        cfg["stages"]["defaults"]["batch_size"] = 4   # per process: the effective batch stays 8
    wd.mkdir(parents=True)
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    return wd / "config.yaml"


def running_stage_job(wd: Path, name: str, at_least: int, timeout: float = 600) -> str:
    """The SLURM job id of the train_stage job once its log reports `at_least` steps."""
    log = wd / f"results/{name}/logs/seed0/full/stage1_syn_count.log"
    pattern = re.compile(rf"\b(\d+)/{PREEMPT_STEPS}\b")
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(s) for s in pattern.findall(log.read_text(errors="replace"))] if log.exists() else []
        if steps and max(steps) >= at_least:
            q = subprocess.run(["squeue", "-h", "-o", "%i %k %T"], capture_output=True, text=True, timeout=30).stdout
            ids = [l.split()[0] for l in q.splitlines() if "rule_train_stage" in l and "RUNNING" in l]
            if ids:
                return ids[0]
        time.sleep(0.2)
    raise AssertionError(f"no running train_stage job at step {at_least} within {timeout} s")


@pytest.mark.parametrize("resources", [None, {"processes": 2, "deepspeed": "zero2"}], ids=["plain", "zero2"])
def test_scancel_sigterm_of_a_stage_comes_back_resumes_and_matches(tmp_path, resources):
    """A preemption as SLURM delivers it (`scancel --signal=TERM` to the job's steps): the stage
    saves an in-stage checkpoint and fails its job, Snakemake resubmits it (profile `retries`),
    the new job resumes from the checkpoint, and the stage's trained tensors equal those of the
    same stage run without interruption (outside SLURM)."""
    from safetensors.torch import load_file

    name = "preempt"
    config = preempt_config(tmp_path / "slurm", name, resources)
    wd = config.parent
    cmd = ["timeout", "-k", "15", str(RUN_TIMEOUT_S), str(BIN / "snakemake"),
           f"results/{name}/seed0/full/stage1_syn_count/manifest.json",
           "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(wd), "--configfile", str(config),
           "--profile", str(ROOT / "profiles/slurm"), "--profile", str(ROOT / "profiles/slurm-ci")]
    run = subprocess.Popen(cmd, cwd=wd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job = running_stage_job(wd, name, PREEMPT_STEPS // 5)
        subprocess.run(["scancel", "--signal=TERM", job], check=True, timeout=30)
        out, _ = run.communicate(timeout=RUN_TIMEOUT_S + 60)
    finally:
        if run.poll() is None:
            run.kill()
    (wd / "run.log").write_text(out)
    assert run.returncode == 0, out[-5000:] + failed_job_logs(wd)
    train_jobs = [v for (r, _), v in jobs_of(out).items() if r == "train_stage"]
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: [^)]*rule_train_stage", out)
    assert submitted[0] == job and len(submitted) == 2, (submitted, train_jobs)
    states = sacct(submitted)
    assert states[job][0] in ("FAILED", "CANCELLED") and states[submitted[1]][0] == "COMPLETED", states
    stage = wd / f"results/{name}/seed0/full/stage1_syn_count"
    man = json.loads((stage / "manifest.json").read_text())
    assert man["metrics"]["resumed_from"].startswith("checkpoint-") and man["metrics"]["steps"] == PREEMPT_STEPS
    assert PREEMPT_STEPS // 5 <= int(man["metrics"]["resumed_from"].split("-")[1]) < PREEMPT_STEPS

    ref_config = preempt_config(tmp_path / "local", name, resources)
    p = subprocess.run([str(BIN / "snakemake"), f"results/{name}/seed0/full/stage1_syn_count/manifest.json",
                        "--snakefile", str(ROOT / "workflow/Snakefile"), "--cores", "2",
                        "--directory", str(ref_config.parent), "--configfile", str(ref_config)],
                       cwd=ref_config.parent, env=env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    a = load_file(str(stage / "model/delta.safetensors"))
    b = load_file(str(ref_config.parent / f"results/{name}/seed0/full/stage1_syn_count/model/delta.safetensors"))
    assert sorted(a) == sorted(b) and a
    diff = max((a[n] - b[n]).abs().max().item() for n in a)
    print(f"\n{'zero2' if resources else 'plain'}: SIGTERM via scancel at step {man['metrics']['resumed_from']}, "
          f"resumed in SLURM job {submitted[1]}: max |w - w_uninterrupted| = {diff:.1e} over {len(a)} tensors")
    assert diff == 0.0
