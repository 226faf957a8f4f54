"""Training curves through the Trainer's integrations (config `tracking`): TensorBoard event files
in each stage folder, read back with tensorboard's own reader; config errors; reruns start clean."""
import json
import os

import pytest

from lmmcl.config import ConfigError, Plan
from lmmcl.data.synthetic import write_skill
from lmmcl.train import tracking
from lmmcl.train.stage import build_base, train_stage

TINY = {"family": "tiny_llava", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
HP = {"lr": 1e-3, "steps": 6, "batch_size": 4, "warmup_ratio": 0.0}


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    data = {s: write_skill(s, "train", 16, 0, root / f"data/{s}/train.parquet") for s in ["syn_color", "syn_birds"]}
    build_base(model_cfg=TINY, experiment="t", out_manifest=root / "t/base/manifest.json",
               data=[data["syn_color"]], hparams={**HP, "steps": 4})
    common = dict(parent_manifest=root / "t/base/manifest.json", data=[data["syn_birds"]], method="m",
                  stage=1, task="syn_birds")
    # every step logged; the vision tower at its own lr (two param groups)
    full = train_stage(out_manifest=root / "t/full/stage1_syn_birds/manifest.json", recipe="full",
                       hparams={**HP, "role_lr": {"vision_tower": 1e-4}}, tracking={"logging_steps": 1}, **common)
    off = train_stage(out_manifest=root / "t/off/stage1_syn_birds/manifest.json", recipe="sa_proj", hparams=HP,
                      tracking={"report_to": "none"}, **common)
    return root, full, off


def test_stage_writes_event_files_listed_in_its_manifest(stages):
    root, full, _ = stages
    stage = root / "t/full/stage1_syn_birds"
    rec = json.loads((stage / "manifest.json").read_text())["tracking"]
    assert rec["report_to"] == ["tensorboard"] and rec["run_name"] == "m/stage1_syn_birds"
    assert rec["logging_steps"] == 1
    assert rec["files"] and all(f.startswith("tensorboard/events.out.tfevents.") for f in rec["files"])
    assert sorted(p.relative_to(stage).as_posix() for p in (stage / "tensorboard").iterdir()) == rec["files"]
    # curves next to the checkpoint, never inside it (the delta holds tensors only)
    assert not any("tfevents" in p.name for p in (stage / "model").rglob("*"))
    assert set(full["hashes"]) == {"delta.safetensors", "lmmcl_delta.json", "config.json", "generation_config.json"}
    # the base's pre-training is a run too
    assert json.loads((root / "t/base/manifest.json").read_text())["tracking"]["run_name"] == "base"
    assert list((root / "t/base/tensorboard").glob("events.out.tfevents.*"))


def test_event_files_hold_loss_lr_per_role_grad_norm_tokens_per_second(stages):
    root, full, _ = stages
    s = scalars(root / "t/full/stage1_syn_birds/tensorboard")
    steps = full["metrics"]["steps"]
    for tag in ["train/loss", "train/grad_norm", "train/learning_rate", "train/tokens_per_second",
                "train/lr/vision_tower", "train/lr/projector", "train/lr/llm_layers", "train/lr/lm_head"]:
        assert [st for st, _ in s[tag]] == list(range(1, steps + 1)), tag   # one point per step
    assert all(v > 0 for _, v in s["train/loss"] + s["train/grad_norm"] + s["train/tokens_per_second"])
    # lr per role: the vision tower's own lr, the others the stage lr, same schedule (cosine, no
    # warm-up); the Trainer's own learning_rate is the first param group's only
    lr = dict(s["train/lr/llm_layers"])
    vt = dict(s["train/lr/vision_tower"])
    assert dict(s["train/lr/projector"]) == dict(s["train/lr/lm_head"]) == lr
    assert vt[1] == pytest.approx(1e-4) and lr[1] == pytest.approx(1e-3)
    assert all(vt[k] == pytest.approx(lr[k] / 10, rel=1e-5) for k in lr)
    assert lr[steps] < lr[1] / 2                       # the schedule decays
    assert dict(s["train/learning_rate"]) in (lr, vt)
    # the same losses as the Trainer's own log history (manifest metrics)
    assert s["train/loss"][0][1] == pytest.approx(full["metrics"]["loss_first_log"], rel=1e-5)
    assert s["train/loss"][-1][1] == pytest.approx(full["metrics"]["loss_last_log"], rel=1e-5)


def test_no_tracking_writes_no_curves(stages):
    root, _, off = stages
    assert off["tracking"]["report_to"] == [] and off["tracking"]["files"] == []
    assert not (root / "t/off/stage1_syn_birds/tensorboard").exists()


def test_a_fresh_start_drops_an_earlier_attempts_curves(tmp_path):
    tb = tmp_path / "stage/tensorboard"
    tb.mkdir(parents=True)
    (tb / "events.out.tfevents.old").write_text("x")
    tracking.prepare_stage_dir(tracking.normalize(None), tmp_path / "stage", resuming=True)
    assert (tb / "events.out.tfevents.old").exists()     # a resumed stage appends
    tracking.prepare_stage_dir(tracking.normalize(None), tmp_path / "stage", resuming=False)
    assert not tb.exists()


@pytest.mark.parametrize("spec, message", [
    ({"report_to": ["tensorbord"]}, "unknown integration(s) ['tensorbord']; allowed: ['tensorboard', 'wandb', 'mlflow']"),
    ({"report_to": "all"}, "unknown integration(s) ['all']"),
    ({"logging_steps": 0}, "tracking.logging_steps: 0 is not a positive integer"),
    ({"wandb": {"mode": "cloud"}}, "tracking.wandb.mode: 'cloud'; allowed: ['offline', 'online']"),
    ({"wandb": {"key": "x"}}, "tracking.wandb: unknown key(s) ['key']"),
    ({"tensorboard": {}}, "tracking: unknown key(s) ['tensorboard']"),
])
def test_bad_tracking_config_names_value_and_allowed(spec, message):
    with pytest.raises(ValueError) as e:
        tracking.normalize(spec)
    assert message in str(e.value)
    cfg = {"experiment": "x", "sequence": ["syn_birds"], "methods": {"m": {"recipe": "full"}}, "tracking": spec}
    with pytest.raises(ConfigError, match="tracking"):
        Plan(cfg)


def test_tracking_spellings():
    assert tracking.normalize(None)["report_to"] == ["tensorboard"]
    assert tracking.normalize({"report_to": "none"})["report_to"] == []
    assert tracking.normalize({"report_to": []})["report_to"] == []
    assert tracking.normalize({"report_to": "mlflow"})["report_to"] == ["mlflow"]
    assert tracking.logging_steps({}, 300) == 15 and tracking.logging_steps({}, None) == 5
    assert tracking.logging_steps({"logging_steps": 1}, 300) == 1


def test_missing_integration_package_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match="'wandb' needs the Python package 'wandb'"):
        tracking.check_installed({"report_to": ["tensorboard", "wandb"]})


def test_processes_with_gpus_is_a_config_error():
    cfg = {"experiment": "x", "sequence": ["syn_birds"], "methods": {"m": {"recipe": "full"}},
           "resources": {"gpus": 2, "processes": 2}}
    with pytest.raises(ConfigError, match=r"resources.processes: 2 with resources.gpus: 2.*processes > 1 only with gpus: 0"):
        Plan(cfg)


def test_wandb_offline_and_mlflow_file_store_without_network(stages, monkeypatch):
    """W&B (offline) and MLflow (local file store) through the same integrations: one run per
    stage, named after it and grouped per method, the logged curves inside; no socket leaves the
    machine (W&B talks to its local wandb-core service only)."""
    import ipaddress
    import socket

    real_connect = socket.socket.connect

    def local_only(self, address):
        if isinstance(address, tuple):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"network call to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    root, *_ = stages
    m = train_stage(parent_manifest=root / "t/base/manifest.json", data=[root / "data/syn_birds/train.parquet"],
                    out_manifest=root / "t/mlw/stage1_syn_birds/manifest.json", method="mlw", recipe="sa_proj",
                    hparams=HP, stage=1, task="syn_birds", tracking={"report_to": ["wandb", "mlflow"]})
    rec = m["tracking"]
    assert rec["wandb"] == {"project": "t", "group": "mlw", "mode": "offline"}
    stage = root / "t/mlw/stage1_syn_birds"
    runs = list((stage / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].relative_to(stage).as_posix() in rec["files"]
    raw = runs[0].read_bytes()
    for key in (b"train/loss", b"train/grad_norm", b"train/lr/llm_layers", b"train/tokens_per_second",
                b"mlw/stage1_syn_birds"):
        assert key in raw, key
    assert not (stage / "tensorboard").exists()

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    assert rec["mlflow"] == {"tracking_uri": (root / "t/mlruns").as_uri(), "experiment": "t"}
    client = MlflowClient(rec["mlflow"]["tracking_uri"])
    exp = client.get_experiment_by_name("t")
    found = client.search_runs([exp.experiment_id], filter_string="tags.`lmmcl.method` = 'mlw'")
    assert [r.info.run_name for r in found] == ["mlw/stage1_syn_birds"]
    assert found[0].data.tags["lmmcl.task"] == "syn_birds"
    losses = client.get_metric_history(found[0].info.run_id, "loss")
    assert len(losses) == m["metrics"]["steps"] // tracking.logging_steps({}, HP["steps"])
    assert found[0].data.metrics["lr/llm_layers"] >= 0


def test_integration_environment_is_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    with tracking.environment({"report_to": ["tensorboard", "wandb"]}, tmp_path / "s", experiment="e", group="m") as env:
        assert env["TENSORBOARD_LOGGING_DIR"] == str((tmp_path / "s/tensorboard").resolve())
        assert env["WANDB_MODE"] == "offline" and env["WANDB_RUN_GROUP"] == "m"
        assert os.environ["WANDB_PROJECT"] == "e"
    assert os.environ["WANDB_PROJECT"] == "mine" and "TENSORBOARD_LOGGING_DIR" not in os.environ
