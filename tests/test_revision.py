"""`model.revision` pins a hub checkpoint: recorded in the base manifest, handed to every loader
as "<id>@<revision>", and a param of the base (changing it reruns the base and what follows)."""
from __future__ import annotations

import json

import pytest

from lmmcl.models import io
from lmmcl.train.stage import build_base

HUB = {"family": "llava_onevision", "checkpoint": "llava-hf/llava-onevision-qwen2-7b-ov-hf"}


def test_split_revision():
    assert io.split_revision("owner/name@0123abc") == ("owner/name", "0123abc")
    assert io.split_revision("owner/name") == ("owner/name", None)
    assert io.split_revision("/abs/folder@x/model") == ("/abs/folder@x/model", None)   # a path, not a hub id
    assert io.split_revision("owner/name@") == ("owner/name@", None)


def test_base_manifest_records_the_revision_and_loaders_ask_for_it(tmp_path, monkeypatch):
    m = build_base(model_cfg={**HUB, "revision": "0123abc"}, experiment="e", out_manifest=tmp_path / "b/manifest.json",
                   data=[], hparams={})
    assert m["revision"] == "0123abc" and m["checkpoint"] == HUB["checkpoint"] and m["checkpoint_is_local"] is False
    ckpt = io.checkpoint_of(tmp_path / "b/manifest.json")
    assert ckpt == f"{HUB['checkpoint']}@0123abc"
    unpinned = build_base(model_cfg=HUB, experiment="e", out_manifest=tmp_path / "u/manifest.json", data=[], hparams={})
    assert unpinned["revision"] is None and io.checkpoint_of(tmp_path / "u/manifest.json") == HUB["checkpoint"]
    assert unpinned["config_hash"] != m["config_hash"]

    seen = {}

    class Stop(Exception):
        pass

    def fake_from_pretrained(name, **kwargs):
        seen[name] = kwargs.get("revision")
        raise Stop

    import transformers

    from lmmcl import hubcache

    # as with the hub reachable: offline, the loader first needs the checkpoint cached (test_prefetch.py)
    monkeypatch.setattr(hubcache, "hub_offline", lambda: False)
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", fake_from_pretrained)
    with pytest.raises(Stop):
        io.load_weights(ckpt)
    assert seen == {HUB["checkpoint"]: "0123abc"}
    seen.clear()
    with pytest.raises(Stop):
        io.load_processor(ckpt)
    assert seen == {HUB["checkpoint"]: "0123abc"}


def test_revision_is_in_the_schema_and_the_base_params(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config/paper_llava_onevision.yaml").read_text())
    cfg["model"]["revision"] = "0123abc"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    bin_ = Path(sys.executable).parent
    p = subprocess.run([str(bin_ / "snakemake"), "-n", "-p", "--snakefile", str(root / "workflow/Snakefile"),
                        "--directory", str(tmp_path / "w"), "--configfile", str(tmp_path / "c.yaml")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert '"revision": "0123abc"' in p.stdout or "0123abc" in p.stdout   # the base's --model param carries it
    cfg["model"]["revision"] = 123
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    p = subprocess.run([str(bin_ / "snakemake"), "-n", "--snakefile", str(root / "workflow/Snakefile"),
                        "--directory", str(tmp_path / "w2"), "--configfile", str(tmp_path / "bad.yaml")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "revision" in p.stdout + p.stderr
