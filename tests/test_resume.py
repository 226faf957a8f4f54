"""A stage killed with SIGKILL mid-training resumes from its in-stage checkpoint on rerun and
ends with the same weights as an uninterrupted run (same seed, CPU)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lmmcl.data.synthetic import write_skill
from lmmcl.models.io import checkpoint_of, load_model
from lmmcl.train.stage import build_base
from lmmcl.train.trainer import resumable_checkpoint

BIN = Path(sys.executable).parent
TINY = {"family": "tiny_llava", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
HP = {"lr": 1e-3, "steps": 40, "batch_size": 4, "warmup_ratio": 0.0, "save_steps": 10}
# Bit-equal by construction, so no tolerance: the resumed run restores the weights, AdamW's state
# (float32, saved as is), the scheduler, the RNG state and the data order, and then computes
# exactly the arithmetic of the uninterrupted run. Under `numerics: portable` (the CLI's default)
# that arithmetic gives the same bits on every run: fixed threads, products as one fma chain per
# element, no kernel that depends on thread timing (docs/reproducibility.md).
TOLERANCE = 0.0


# method → (recipe, method spec): plain SFT of every tensor; LoRA adapters + the projector in full
# (a PEFT checkpoint holds adapters only: the projector must come back from our side file)
SETUPS = {"sft": ("full", None),
          "lora": ("projector", {"method": "lora", "r": 4, "lora_alpha": 8, "targets": "mlp"})}


def train_cmd(root: Path, out: str, hp=HP, setup: str = "sft") -> list[str]:
    recipe, spec = SETUPS[setup]
    return [str(BIN / "lmmcl"), "train-stage", "--parent", str(root / "base/manifest.json"),
            "--data", str(root / "data/syn_birds/train.parquet"), "--method", "m", "--recipe", recipe,
            "--hparams", json.dumps(hp), "--threads", "1", "--out", str(root / out / "manifest.json"),
            *(["--method-spec", json.dumps(spec)] if spec else [])]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_skill("syn_birds", "train", 64, 0,  # 16 steps per epoch: the kill lands in epoch 2
                root / "data/syn_birds/train.parquet")
    build_base(model_cfg=TINY, experiment="t", out_manifest=root / "base/manifest.json", data=[], hparams={})
    return root


ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def uninterrupted(root: Path, setup: str, hp=HP) -> str:
    """The stage trained in one go (once per module and setup): what every resumed run must equal."""
    out = f"{setup}_straight"
    if not (root / out / "manifest.json").exists():
        subprocess.run(train_cmd(root, out, hp=hp, setup=setup), check=True, env=ENV, capture_output=True)
    return out


def max_difference(root: Path, a: str, b: str) -> tuple[float, int]:
    """max |weight difference| of two stages of `root`, and how many tensors the stage moved."""
    base, _ = load_model(checkpoint_of(root / "base/manifest.json"))
    sa = load_model(checkpoint_of(root / a / "manifest.json"))[0].state_dict()
    sk = load_model(checkpoint_of(root / b / "manifest.json"))[0].state_dict()
    sb = base.state_dict()
    moved = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert any("multi_modal_projector" in k for k in moved), "the stage trained the projector"
    return max((sa[k] - sk[k]).abs().max().item() for k in sa), len(moved)


@pytest.mark.slow
@pytest.mark.parametrize("setup", list(SETUPS))
def test_kill9_then_rerun_matches_uninterrupted(root, setup):
    env = ENV
    straight, killed = uninterrupted(root, setup), f"{setup}_killed"

    proc = subprocess.Popen(train_cmd(root, killed, setup=setup), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    trainer_dir = root / killed / "trainer"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = [d for d in trainer_dir.glob("checkpoint-*") if (d / "trainer_state.json").exists()]
        if any(int(d.name.split("-")[1]) >= 20 for d in done):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (root / killed / "manifest.json").exists(), "killed before the end, no manifest"

    rerun = subprocess.run(train_cmd(root, killed, setup=setup), check=True, env=env, capture_output=True, text=True)
    assert "resuming from in-stage checkpoint" in rerun.stdout
    manifest = json.loads((root / killed / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from"].startswith("checkpoint-")
    assert manifest["metrics"]["steps"] == 40
    assert not trainer_dir.exists(), "in-stage checkpoints are removed once the manifest exists"

    diff, moved = max_difference(root, straight, killed)
    print(f"{setup}: max |weight difference| resumed vs uninterrupted: {diff:.2e} over {moved} trained tensors")
    assert diff <= TOLERANCE


def start_and_wait_for_step(cmd, env, total: int, at_least: int, timeout: float = 120):
    """Start a stage; return (process, output so far as a growing list) once its progress bar
    reports `at_least` of `total` steps (stdout and stderr merged, read by a thread)."""
    import re
    import threading

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stdout.read(64), "")), daemon=True)
    reader.start()
    proc.reader = reader
    pattern = re.compile(rf"\b(\d+)/{total}\b")
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        steps = [int(m) for m in pattern.findall("".join(seen))]
        if steps and max(steps) >= at_least:
            return proc, seen
        time.sleep(0.05)
    raise AssertionError(f"the stage did not reach step {at_least}: {''.join(seen)[-2000:]}")


def finish(proc, seen: list[str], timeout: float = 120) -> str:
    proc.wait(timeout=timeout)
    proc.reader.join(timeout=10)
    return "".join(seen)


@pytest.mark.slow
def test_sigterm_saves_exits_75_and_the_rerun_matches_uninterrupted(root):
    """A preemption or SLURM's warning before the time limit (SIGTERM), with no save_steps at all:
    the stage saves an in-stage checkpoint at the end of the running step, exits 75 (EX_TEMPFAIL,
    Snakemake retries), and the rerun resumes from it to the uninterrupted run's weights."""
    hp = {k: v for k, v in HP.items() if k != "save_steps"}
    straight, stopped = uninterrupted(root, "sft"), "sft_sigterm"
    proc, seen = start_and_wait_for_step(train_cmd(root, stopped, hp=hp), ENV, 40, 5)
    os.kill(proc.pid, signal.SIGTERM)
    out = finish(proc, seen)
    assert proc.returncode == 75, out[-3000:]
    assert "received SIGTERM: saving an in-stage checkpoint" in out
    assert "stopped by SIGTERM after step" in out and "rerunning the job resumes from it" in out
    saved = [d for d in (root / stopped / "trainer").glob("checkpoint-*") if (d / "trainer_state.json").is_file()]
    assert len(saved) == 1 and 5 <= int(saved[0].name.split("-")[1]) < 40, saved
    assert not (root / stopped / "manifest.json").exists(), "a stopped stage writes no manifest"

    rerun = subprocess.run(train_cmd(root, stopped, hp=hp), check=True, env=ENV, capture_output=True, text=True)
    assert f"resuming from in-stage checkpoint {saved[0]}" in rerun.stdout
    manifest = json.loads((root / stopped / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from"] == saved[0].name and manifest["metrics"]["steps"] == 40
    diff, moved = max_difference(root, straight, stopped)
    print(f"SIGTERM at {saved[0].name}: max |weight difference| resumed vs uninterrupted: {diff:.2e} ({moved} tensors)")
    assert diff <= TOLERANCE


def test_stale_state_of_another_config_is_never_resumed(tmp_path):
    work = tmp_path / "trainer"
    (work / "checkpoint-10").mkdir(parents=True)
    (work / "checkpoint-10/trainer_state.json").write_text("{}")
    (work / "resume_key.json").write_text(json.dumps({"key": "old-config"}))
    assert resumable_checkpoint(work, "new-config") is None
    assert not (work / "checkpoint-10").exists()


def test_incomplete_checkpoint_is_dropped(tmp_path):
    work = tmp_path / "trainer"
    for step, complete in [(10, True), (20, False)]:
        (work / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (work / f"checkpoint-{step}/trainer_state.json").write_text("{}")
    (work / "resume_key.json").write_text(json.dumps({"key": "k"}))
    assert resumable_checkpoint(work, "k") == str(work / "checkpoint-10")
    assert not (work / "checkpoint-20").exists()


def test_training_order_is_seeded_epoch_permutations():
    from lmmcl.train.trainer import training_order

    order = training_order(10, 25, seed=3)
    assert len(order) == 25
    assert sorted(order[:10]) == list(range(10)) and sorted(order[10:20]) == list(range(10))
    assert order[:10] != order[10:20]  # a fresh permutation per epoch
    assert order == training_order(10, 25, seed=3) and order != training_order(10, 25, seed=4)


def test_a_damaged_in_stage_checkpoint_is_named_on_resume(root):
    """Every in-stage checkpoint is sealed (size + sha256 of each file, lmmcl_seal.json); a resume
    from one truncated afterwards (a full quota, a copy cut short) fails naming the file and what to
    do, instead of a bare torch/safetensors error."""
    hp = {k: v for k, v in HP.items() if k != "save_steps"}
    out = "damaged"
    proc, seen = start_and_wait_for_step(train_cmd(root, out, hp=hp), ENV, 40, 5)
    os.kill(proc.pid, signal.SIGTERM)
    finish(proc, seen)
    ckpt = next((root / out / "trainer").glob("checkpoint-*"))
    seal = json.loads((ckpt / "lmmcl_seal.json").read_text())["files"]
    assert "optimizer.pt" in seal and "trainer_state.json" in seal and all(r["bytes"] > 0 for r in seal.values())
    opt = ckpt / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: seal["optimizer.pt"]["bytes"] // 2])
    rerun = subprocess.run(train_cmd(root, out, hp=hp), env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 2, rerun.stderr[-3000:]
    err = rerun.stderr
    assert f"in-stage checkpoint {ckpt} is damaged" in err and f"{opt}: {seal['optimizer.pt']['bytes'] // 2} bytes" in err
    assert "truncated" in err and f"rm -r {ckpt}" in err and "Traceback" not in err


def test_a_failed_in_stage_save_keeps_the_previous_checkpoint(root, tmp_path, monkeypatch):
    """A full disk while the Trainer writes checkpoint-4 (torch.save reports it as a RuntimeError):
    the error names the folder, the cause and the intact checkpoint-2, from which a rerun resumes."""
    from lmmcl.models import integrity
    from lmmcl.train.stage import train_stage
    from lmmcl.train.trainer import CheckpointWriteFailed

    real_save = torch.save

    def full_disk(obj, f, *a, **kw):
        if "checkpoint-4" in str(f):
            Path(f).write_bytes(b"\0" * 100)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "stage/manifest.json"
    with pytest.raises(CheckpointWriteFailed) as e:
        train_stage(parent_manifest=root / "base/manifest.json", data=[root / "data/syn_birds/train.parquet"],
                    out_manifest=out, method="m", recipe="full", threads=1, tracking={"report_to": []},
                    hparams={**HP, "steps": 6, "save_steps": 2})
    work = tmp_path / "stage/trainer"
    msg = str(e.value)
    assert f"saving in-stage checkpoint {work / 'checkpoint-4'} failed (RuntimeError: " in msg
    assert f"the previous in-stage checkpoint {work / 'checkpoint-2'} is intact and a rerun resumes from it" in msg
    assert not out.exists()
    assert integrity.verify_seal(work / "checkpoint-2")   # sealed and unchanged
    # the rerun's view: the partial checkpoint-4 (no trainer_state.json) is dropped, checkpoint-2 resumed
    key = json.loads((work / "resume_key.json").read_text())["key"]
    assert resumable_checkpoint(work, key) == str(work / "checkpoint-2")
