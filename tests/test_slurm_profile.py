"""profiles/slurm maps a GPU rule's resources onto the sbatch call (no SLURM needed).

Fake `sbatch`/`sinfo`/`sacctmgr`/... first on PATH: the real snakemake-executor-plugin-slurm builds
its submit string from the shipped profile and "submits" one train_stage job; the fake sbatch
records its argv and refuses, so Snakemake stops right after the submission.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile")]
STAGE1 = "results/smoke/seed0/sa_proj/stage1_syn_birds/manifest.json"

FAKE_SBATCH = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_SBATCH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stderr.write("fake sbatch: call recorded, not submitted\\n")
sys.exit(1)
"""
FAKES = {  # what the plugin asks the cluster before submitting
    "sinfo": "printf 'PARTITION\\ngpu*\\ncpu\\n'",    # default partition: gpu
    "sacctmgr": "printf 'proj\\nci\\n'",              # the user's accounts
    "sshare": "echo proj",
    "sacct": "true", "squeue": "true", "scontrol": "true", "scancel": "true",
}


def fake_cluster(tmp: Path) -> tuple[dict, Path]:
    fake = tmp / "fakebin"
    fake.mkdir()
    (fake / "sbatch").write_text(FAKE_SBATCH)
    for name, body in FAKES.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    log = tmp / "sbatch_calls.jsonl"
    env = dict(os.environ, PATH=f"{fake}:{BIN}:{os.environ['PATH']}", FAKE_SBATCH_LOG=str(log),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env, log


def workdir(tmp: Path, gpus: int) -> Path:
    wd = tmp / "wd"
    wd.mkdir()
    cfg = yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())
    cfg["resources"] = {"gpus": gpus}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    # the job's inputs exist, so stage 1 of sa_proj is the only job (--allowed-rules train_stage)
    for f in ["data/syn_birds/train.parquet", "results/smoke/seed0/base/manifest.json"]:
        (wd / f).parent.mkdir(parents=True, exist_ok=True)
        (wd / f).write_text("{}")
    return wd


def submit_train_stage(tmp: Path, gpus: int, *profiles: str) -> list[str]:
    env, log = fake_cluster(tmp)
    wd = workdir(tmp, gpus)
    prof = [a for p in profiles for a in ("--profile", str(ROOT / p))]
    cmd = SNAKEMAKE + ["--directory", str(wd), "--configfile", str(wd / "config.yaml"), *prof,
                       "--allowed-rules", "train_stage", "--latency-wait", "1", "--retries", "0",
                       "--slurm-init-seconds-before-status-checks", "1", STAGE1]  # no 40 s idle wait
    p = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]            # the fake sbatch refused the job
    assert log.exists(), f"sbatch was never called:\n{out[-3000:]}"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 1, calls                    # exactly the one train_stage job
    return calls[0]


def opt(argv: list[str], flag: str) -> str | None:
    """Value of `--flag=v`, `--flag v` or `-f v` in an argv list."""
    for i, a in enumerate(argv):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


def test_gpu_train_stage_maps_to_sbatch_resources(tmp_path):
    argv = submit_train_stage(tmp_path, 2, "profiles/slurm")
    # from config resources.gpus and profiles/slurm set-resources.train_stage
    assert opt(argv, "--gpus") == "2"
    assert opt(argv, "--cpus-per-gpu") == "8"
    assert opt(argv, "--cpus-per-task") is None      # would override --cpus-per-gpu
    assert opt(argv, "--mem") == "256000"
    assert opt(argv, "-t") == "1440"
    # no partition in the profile: the plugin takes the cluster's default (sinfo's `gpu*`)
    assert opt(argv, "-p") == "gpu"
    assert opt(argv, "--comment").startswith("rule_train_stage")
    # SLURM's warning before the time limit: the stage saves and its retry resumes (lmmcl.train.preemption)
    assert opt(argv, "--signal") == "TERM@600"
    # inside the allocation the plugin's jobstep executor runs exactly this job
    wrap = opt(argv, "--wrap")
    assert wrap and "--executor slurm-jobstep" in wrap
    assert "--target-jobs 'train_stage:seed=0,method=sa_proj,k=1,task=syn_birds'" in wrap


def test_cpu_only_job_requests_no_gpu(tmp_path):
    """The tiny default (resources.gpus = 0) must run on a CPU-only SLURM: no --gpus at all."""
    argv = submit_train_stage(tmp_path, 0, "profiles/slurm", "profiles/slurm-ci")
    assert not any(a.startswith("--gpus") or a.startswith("--gres") for a in argv), argv
    assert opt(argv, "--cpus-per-task") == "1"       # threads = resources.train_threads
    assert opt(argv, "--mem") == "3000"              # profiles/slurm-ci replaces set-resources
    assert opt(argv, "-p") == "debug" and opt(argv, "-A") == "ci"


def test_dry_run_prints_the_multi_gpu_launch(tmp_path):
    """`snakemake -n -p --profile profiles/slurm` shows each job's command, GPU count included."""
    env, log = fake_cluster(tmp_path)
    wd = workdir(tmp_path, 4)
    p = subprocess.run(SNAKEMAKE + ["--directory", str(wd), "--configfile", str(wd / "config.yaml"),
                                    "--profile", str(ROOT / "profiles/slurm"), "-n", "-p"],
                       cwd=wd, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert not log.exists()                          # a dry run submits nothing
    train = [l for l in out.splitlines() if "train-stage" in l]
    assert train and all("LMMCL_GPUS=4 torchrun --standalone --shutdown-timeout 900 --nproc_per_node=4" in l for l in train), train[:2]
    evals = [l for l in out.splitlines() if "lmmcl.cli evaluate" in l]
    assert evals and all("LMMCL_GPUS=4 accelerate launch" in l for l in evals), evals[:2]


def test_local_profile_limits_gpu_jobs(tmp_path):
    """profiles/local declares the GPUs as a global resource; a dry run accepts it."""
    prof = yaml.safe_load((ROOT / "profiles/local/profile.yaml").read_text())
    assert prof["resources"]["gpu"] >= 1 and "executor" not in prof
    wd = workdir(tmp_path, 1)
    p = subprocess.run(SNAKEMAKE + ["--directory", str(wd), "--configfile", str(wd / "config.yaml"),
                                    "--profile", str(ROOT / "profiles/local"), "-n"],
                       cwd=wd, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                       capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "gpu=1" in out


def test_cpu_processes_ask_slurm_for_every_cpu(tmp_path):
    """resources.processes: 2 on CPU -> one job with processes x threads CPUs, torchrun inside."""
    env, log = fake_cluster(tmp_path)
    wd = workdir(tmp_path, 0)
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["resources"] = {"gpus": 0, "processes": 2, "train_threads": 2}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = SNAKEMAKE + ["--directory", str(wd), "--configfile", str(wd / "config.yaml"),
                       "--profile", str(ROOT / "profiles/slurm"), "--profile", str(ROOT / "profiles/slurm-ci"),
                       "--allowed-rules", "train_stage", "--latency-wait", "1", "--retries", "0",
                       "--slurm-init-seconds-before-status-checks", "1", "-p", STAGE1]
    p = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    argv = json.loads(log.read_text().splitlines()[0])
    assert opt(argv, "--cpus-per-task") == "4", argv                  # 2 processes x 2 threads
    assert not any(a.startswith("--gpus") for a in argv)
    assert "OMP_NUM_THREADS=2 torchrun --standalone --shutdown-timeout 900 --nproc_per_node=2 -m lmmcl.cli train-stage" in out


def test_a_job_with_fewer_gpus_than_processes_stops_naming_both():
    """A per-rule `gpu` below resources.gpus: the ranks of a 4-process launch on a node that shows
    1 GPU stop before any work, with what they have and what to change (lmmcl.allocation)."""
    from lmmcl.allocation import check_gpu_allocation

    check_gpu_allocation({"LOCAL_WORLD_SIZE": "4"}, device_count=4)      # one GPU each
    check_gpu_allocation({"LOCAL_WORLD_SIZE": "2"}, device_count=0)      # CPU processes (gloo)
    check_gpu_allocation({}, device_count=1)                             # no launcher
    with pytest.raises(ValueError) as e:
        check_gpu_allocation({"LOCAL_WORLD_SIZE": "4", "CUDA_VISIBLE_DEVICES": "0"}, device_count=1)
    msg = str(e.value)
    assert "starts 4 processes" in msg and "sees 1 GPU(s) (CUDA_VISIBLE_DEVICES=0)" in msg
    assert "a per-rule `gpu` in the profile must equal it" in msg and "resources.gpus to 1" in msg


def test_a_gpu_job_whose_torch_sees_no_gpu_stops_saying_why():
    """The rules tell a GPU job's processes their GPU count (LMMCL_GPUS); a torch that sees none
    stops before any work: a CPU build (the laptop lock on a GPU node) or a driver too old for the
    CUDA build, never a 7 B stage on the CPU."""
    from lmmcl.allocation import check_gpu_allocation

    check_gpu_allocation({"LMMCL_GPUS": "1"}, device_count=1, cuda_build="13.0")
    with pytest.raises(ValueError, match=r"given 4 GPU\(s\).*CUDA_VISIBLE_DEVICES=0,1,2,3.*CPU build.*lock-cluster.txt"):
        check_gpu_allocation({"LMMCL_GPUS": "4", "LOCAL_WORLD_SIZE": "4", "CUDA_VISIBLE_DEVICES": "0,1,2,3"},
                             device_count=0, cuda_build=None)
    with pytest.raises(ValueError, match=r"given 1 GPU\(s\).*built for CUDA 13.0.*driver"):
        check_gpu_allocation({"LMMCL_GPUS": "1"}, device_count=0, cuda_build="13.0")
