"""Delta checkpoints: a stage stores only what it changed; composing the chain gives the same
model as a standalone save; export writes a plain transformers checkpoint; broken chains fail."""
import json
import shutil

import pytest
import torch

from lmmcl.cli import main as cli
from lmmcl.data.synthetic import write_skill
from lmmcl.models import delta
from lmmcl.models.io import checkpoint_of, load_model
from lmmcl.train.stage import build_base, train_stage

TINY = {"family": "tiny_llava", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
HP = {"lr": 1e-3, "steps": 3, "batch_size": 4, "warmup_ratio": 0.0}


def _stage(root, parent, name, data, recipe, fmt, k):
    return train_stage(parent_manifest=parent, data=[data], out_manifest=root / name / "manifest.json",
                       method=name.split("/")[0], recipe=recipe, hparams=HP, stage=k, task="syn_birds",
                       checkpoint_format=fmt)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("delta")
    birds = write_skill("syn_birds", "train", 16, 0, root / "birds.parquet")
    color = write_skill("syn_color", "train", 16, 0, root / "color.parquet")
    build_base(model_cfg=TINY, experiment="t", out_manifest=root / "base/manifest.json", data=[color], hparams=HP)
    base = root / "base/manifest.json"
    out = {}
    for fmt in ("delta", "full"):
        _stage(root, base, f"{fmt}/stage1", birds, "sa_proj", fmt, 1)
        out[fmt] = _stage(root, root / f"{fmt}/stage1/manifest.json", f"{fmt}/stage2", birds, "mlp_gate_up", fmt, 2)
    return root, out


def test_delta_stores_only_changed_tensors(runs):
    root, out = runs
    folder = root / "delta/stage2/model"
    meta = json.loads((folder / delta.DELTA_META).read_text())
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "delta.safetensors", "generation_config.json",
                                                       "lmmcl_delta.json"]
    # mlp_gate_up on 2 layers: gate_proj + up_proj weights
    assert len(meta["tensors"]) == 4 and all(".mlp.gate_proj." in t or ".mlp.up_proj." in t for t in meta["tensors"])
    storage = out["delta"]["checkpoint_storage"]
    assert storage["format"] == "delta" and storage["changed_tensors"] == 4
    assert storage["changed_bytes"] == out["delta"]["trainable"]["trainable_params"] * 4
    assert delta.folder_bytes(folder) <= 1.2 * storage["changed_bytes"] + 4096  # + config files
    assert delta.folder_bytes(folder) < delta.folder_bytes(root / "full/stage2/model") / 4
    assert meta["parent"] == "../../stage1/model" and meta["parent_hashes"] == json.loads(
        (root / "delta/stage1/manifest.json").read_text())["hashes"]


def test_composed_chain_equals_standalone_stage(runs):
    root, _ = runs
    a, proc = load_model(checkpoint_of(root / "delta/stage2/manifest.json"))
    b, _ = load_model(checkpoint_of(root / "full/stage2/manifest.json"))
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert proc.tokenizer is not None
    root_ckpt, chain = delta.chain(checkpoint_of(root / "delta/stage2/manifest.json"))
    assert root_ckpt == str((root / "base/model").resolve()) and [p.parent.name for p in chain] == ["stage1", "stage2"]


def test_export_writes_a_plain_transformers_checkpoint(runs, capsys):
    from transformers import AutoModelForImageTextToText

    root, _ = runs
    cli(["export", str(root / "delta/stage2/manifest.json"), "--out", str(root / "exported")])
    assert "2 delta(s)" in capsys.readouterr().out
    plain = AutoModelForImageTextToText.from_pretrained(root / "exported")
    full, _ = load_model(checkpoint_of(root / "full/stage2/manifest.json"))
    sp, sf = plain.state_dict(), full.state_dict()
    assert all(torch.equal(sp[k], sf[k]) for k in sf)
    assert (root / "exported/tokenizer.json").is_file()


def test_rewritten_or_missing_parent_fails_with_the_path(runs, tmp_path):
    root, _ = runs
    copy = tmp_path / "chain"
    shutil.copytree(root / "delta", copy / "delta")
    shutil.copytree(root / "base", copy / "base")
    # the copied chain still points at stage1 relatively: it loads
    delta.chain(str(copy / "delta/stage2/model"))
    m = json.loads((copy / "delta/stage1/manifest.json").read_text())
    m["hashes"]["delta.safetensors"] = "0" * 64
    (copy / "delta/stage1/manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="rewritten after this stage was trained"):
        delta.chain(str(copy / "delta/stage2/model"))
    shutil.rmtree(copy / "delta/stage1/model")
    with pytest.raises(FileNotFoundError, match="stage1/model is missing"):
        delta.chain(str(copy / "delta/stage2/model"))


def test_changed_structure_falls_back_to_full(tmp_path):
    from lmmcl.models.tiny import TinySpec, build_tiny_llava

    model, _ = build_tiny_llava(TinySpec(hidden_size=32, intermediate_size=64), seed=0)
    snap = delta.Snapshot(model)
    assert snap.changed(model) == {}
    with torch.no_grad():
        model.model.multi_modal_projector.linear_1.weight.add_(1.0)
    assert list(snap.changed(model)) == ["model.multi_modal_projector.linear_1.weight"]
    model.model.extra = torch.nn.Linear(2, 2)  # a method that adds tensors (MoE) cannot be a delta
    assert snap.changed(model) is None


def test_storage_benchmark_predicts_safetensors_size_exactly(tmp_path):
    """The OneVision-7B figures of benchmarks/checkpoint_storage.py are computed, not measured:
    its size formula must match what safetensors writes."""
    import importlib.util
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(__file__).resolve().parents[1] / "benchmarks/checkpoint_storage.py"
    spec = importlib.util.spec_from_file_location("checkpoint_storage", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shapes = {"model.layers.0.self_attn.q_proj.weight": (24, 16), "model.layers.0.mlp.up_proj.weight": (7, 3),
              "z.bias": (5,)}
    save_file({k: torch.zeros(s, dtype=torch.bfloat16) for k, s in shapes.items()}, str(tmp_path / "x.safetensors"),
              metadata={"format": "pt"})
    assert bench._safetensors_bytes(shapes, "BF16", 2) == (tmp_path / "x.safetensors").stat().st_size


def test_damaged_checkpoint_files_are_named_with_the_rebuild_command(runs, tmp_path, capsys):
    """A finished stage's delta truncated afterwards (a full quota, a copy cut short), then the next
    stage run on it: the error names the file and the Snakemake command that rebuilds it, instead
    of safetensors' bare "invalid header length"."""
    from lmmcl.models.integrity import CheckpointDamaged, verify

    root, _ = runs
    work = tmp_path / "results" / "exp" / "seed0"       # the workflow's layout
    shutil.copytree(root / "base", work / "base")
    shutil.copytree(root / "delta" / "stage1", work / "m" / "stage1")
    victim = work / "m" / "stage1" / "model" / "delta.safetensors"
    verify(victim.parent)                                 # intact: passes
    victim.write_bytes(victim.read_bytes()[:100])         # truncated
    with pytest.raises(CheckpointDamaged) as e:
        load_model(checkpoint_of(work / "m" / "stage1" / "manifest.json"))
    msg = str(e.value)
    assert f"{victim}: 100 bytes whose sha256" in msg and "truncated or altered afterwards" in msg
    assert f"cd {tmp_path} && snakemake --cores 1 --forcerun results/exp/seed0/m/stage1/manifest.json" in msg
    # the next stage, through the CLI: the same message, as `lmmcl train-stage: error: ...`
    with pytest.raises(SystemExit) as ex:
        cli(["train-stage", "--parent", str(work / "m" / "stage1" / "manifest.json"), "--data", str(root / "birds.parquet"),
             "--method", "m", "--recipe", "sa_proj", "--hparams", json.dumps(HP), "--stage", "2",
             "--out", str(work / "m" / "stage2" / "manifest.json"), "--tracking", '{"report_to": []}'])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "lmmcl train-stage: error: checkpoint" in err and "is damaged" in err and str(victim) in err
    # a config file altered, the base's weights deleted: each named
    (work / "m" / "stage1" / "model" / "config.json").write_text("{}")
    (work / "base" / "model" / "model.safetensors").unlink()
    with pytest.raises(CheckpointDamaged, match=r"model\.safetensors: missing"):
        load_model(checkpoint_of(work / "base" / "manifest.json"))
    with pytest.raises(CheckpointDamaged, match=r"config\.json: 2 bytes"):
        verify(work / "m" / "stage1" / "model")


def test_a_full_disk_during_a_save_leaves_the_previous_checkpoint(runs, tmp_path, monkeypatch):
    """The weights writer runs out of space half-way: the stage folder keeps its previous files
    (same bytes), no temporary folder stays behind, and the error says both."""
    import errno
    import os

    import safetensors.torch

    from lmmcl.atomic import WriteFailed
    from lmmcl.hashing import file_hashes

    root, _ = runs
    stage = tmp_path / "m" / "stage1"
    shutil.copytree(root / "base", tmp_path / "base")       # the delta's parent, at the same relative path
    shutil.copytree(root / "delta" / "stage1", stage)
    before = file_hashes(stage / "model")
    model, _ = load_model(checkpoint_of(stage / "manifest.json"))

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 1000)                          # half-written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    parent = str((tmp_path / "base" / "model").resolve())
    with pytest.raises(WriteFailed) as e:
        delta.save_delta(model, dict(model.state_dict()), stage / "model", parent, True)
    assert e.value.errno == errno.ENOSPC
    assert f"writing {stage / 'model'} failed (No space left on device)" in str(e.value)
    assert "nothing was replaced" in str(e.value) and "keeps its previous contents" in str(e.value)
    assert "free space" in str(e.value)
    assert file_hashes(stage / "model") == before
    assert not [p.name for p in stage.iterdir() if p.name.startswith(".")]  # no temporary folder left
