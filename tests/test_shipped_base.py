"""A pretrained tiny base shipped with the repository (lmmcl.models.shipped, `make pretrain`).

The mechanism on a small pre-training config, in seconds: pre-training through the workflow and
`lmmcl ship-base` twice give the same bytes; an experiment with `model.checkpoint` on the shipped
base trains no base, records its sha256 and fine-tunes from it; bad checkpoints are refused at
planning; a damaged shipped file is named. The real default's base: benchmarks/pretrained_base.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmmcl.config import ConfigError, Plan, load_configfiles
from lmmcl.hashing import file_hashes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def micro(**model) -> dict:
    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["model"].update(model)
    cfg["tracking"] = {"report_to": []}
    return cfg


def snakemake(wd: Path, cfg: dict, *targets: str) -> subprocess.CompletedProcess:
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    p = subprocess.run([str(BIN / "snakemake"), *targets, "--snakefile", str(ROOT / "workflow/Snakefile"),
                        "--cores", "2", "--directory", str(wd), "--configfile", str(wd / "config.yaml")],
                       cwd=wd, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    return p


def pretrain_and_ship(wd: Path) -> Path:
    """What `make pretrain` does, on the micro config: the base through the workflow, then ship-base."""
    snakemake(wd, {**micro(checkpoint=None), "experiment": "pretrain"}, "results/pretrain/seed0/base/manifest.json")
    subprocess.run([str(BIN / "lmmcl"), "ship-base", str(wd / "results/pretrain/seed0/base/manifest.json"),
                    "--out", str(wd / "pretrained/micro")], check=True, env=ENV, capture_output=True)
    return wd / "pretrained/micro"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    return pretrain_and_ship(tmp_path_factory.mktemp("ship_a"))


def test_rebuilding_the_shipped_base_gives_the_same_bytes(shipped, tmp_path):
    again = pretrain_and_ship(tmp_path)
    a, b = file_hashes(shipped / "model", suffixes=None), file_hashes(again / "model", suffixes=None)
    assert a == b and "model.safetensors" in a and "config.json" in a and "tokenizer.json" in a, (a, b)
    assert json.loads((shipped / "manifest.json").read_text())["hashes"] == file_hashes(shipped / "model")


def test_an_experiment_on_the_shipped_base_trains_none_and_records_it(shipped, tmp_path):
    wd = tmp_path / "exp"
    stage = "results/micro/seed0/full/stage1_syn_count/manifest.json"
    p = snakemake(wd, micro(checkpoint=str(shipped / "model")), stage)
    out = p.stdout + p.stderr
    assert "rule make_synthetic" in out
    assert "syn_color/train.parquet" not in out          # the base's pre-training data is not even made
    base = json.loads((wd / "results/micro/seed0/base/manifest.json").read_text())
    assert base["checkpoint"] == str((shipped / "model").resolve()) and base["checkpoint_is_local"] is False
    assert base["shipped_base"]["hashes"] == file_hashes(shipped / "model", suffixes=None)
    assert base["shipped_base"]["built_by"]["experiment"] == "pretrain"
    assert not (wd / "results/micro/seed0/base/model").exists()   # nothing trained, nothing saved
    delta = json.loads((wd / "results/micro/seed0/full/stage1_syn_count/model/lmmcl_delta.json").read_text())
    assert delta["parent"] == str((shipped / "model").resolve())


def test_bad_shipped_checkpoints_are_refused_at_planning(shipped, tmp_path):
    with pytest.raises(ConfigError, match=r"model.checkpoint: 'nowhere/model' is not a checkpoint folder .*"
                                          r"or null to pre-train the base"):
        Plan(micro(checkpoint="nowhere/model"))
    with pytest.raises(ConfigError, match=r"model.tiny differs from the shipped base .* hidden_size: 48 \(base: 32\).*"
                                          r"set model.checkpoint: null"):
        Plan(micro(checkpoint=str(shipped / "model"), tiny={**micro()["model"]["tiny"], "hidden_size": 48}))


def test_a_damaged_shipped_file_is_named(shipped, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    weights = copy / "model/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    p = subprocess.run([str(BIN / "lmmcl"), "build-base", "--experiment", "x", "--model",
                        json.dumps(micro(checkpoint=str(copy / "model"))["model"]), "--out", str(tmp_path / "b.json")],
                       env=ENV, capture_output=True, text=True)
    assert p.returncode == 2 and f"{weights}: 100 bytes whose sha256" in p.stderr, p.stderr[-2000:]


def test_the_default_starts_from_the_shipped_base_and_overlays_pretrain_their_own():
    default = Plan(load_configfiles([str(ROOT / "config/config.yaml")]))
    assert default.cfg["model"]["checkpoint"] == "pretrained/tiny_default/model"
    from lmmcl.models import integrity, shipped as shipped_mod

    folder = shipped_mod.resolve("pretrained/tiny_default/model")
    integrity.verify(folder)                                        # the committed files are intact
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 10 * 2**20
    for overlay in ["tiny_broad", "tiny_vision", "tiny_priors", "tiny_wide", "tiny_narrow", "tiny_broad8"]:
        cfg = load_configfiles([str(ROOT / "config/config.yaml"), str(ROOT / f"config/{overlay}.yaml")])
        assert cfg["model"]["checkpoint"] is None, overlay
        Plan(cfg)
