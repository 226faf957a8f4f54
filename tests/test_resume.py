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


@pytest.mark.slow
@pytest.mark.parametrize("setup", list(SETUPS))
def test_kill9_then_rerun_matches_uninterrupted(root, setup):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    straight, killed = f"{setup}_straight", f"{setup}_killed"
    subprocess.run(train_cmd(root, straight, setup=setup), check=True, env=env, capture_output=True)

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

    base, _ = load_model(checkpoint_of(root / "base/manifest.json"))
    a, _ = load_model(checkpoint_of(root / straight / "manifest.json"))
    b, _ = load_model(checkpoint_of(root / killed / "manifest.json"))
    sb, sa, sk = base.state_dict(), a.state_dict(), b.state_dict()
    moved = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert any("multi_modal_projector" in k for k in moved), "the stage trained the projector"
    diff = max((sa[k] - sk[k]).abs().max().item() for k in sa)
    print(f"{setup}: max |weight difference| resumed vs uninterrupted: {diff:.2e} over {len(moved)} trained tensors")
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
