"""API keys come from the environment only and never reach logs, manifests or outputs.

The secrets the project may use: FLICKR_API_KEY / FLICKR_API_SECRET (PixMo-Count images, read by
lmmcl.data.sources.flickr) and HF_TOKEN / HUGGING_FACE_HUB_TOKEN (read by huggingface_hub itself
for gated hub models). No config key or command-line option takes one; a config or option that
tries is refused without echoing the value. The Flickr conversion itself is checked in
tests/test_sources_flickr.py; here the whole tiny pipeline runs with fake secrets set.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRETS = {
    "HF_TOKEN": "hf_SECRETtokenAbC123xyz",
    "HUGGING_FACE_HUB_TOKEN": "hf_SECRETlegacyQwe456",
    "FLICKR_API_KEY": "sk-SECRET-abc123",
    "FLICKR_API_SECRET": "sk-SECRET-def456",
    "WANDB_API_KEY": "sk-SECRET-wandb789",
}
CONFIG = (Path(__file__).parent / "configs/micro.yaml").read_text().replace("experiment: micro", "experiment: secrets")


def _env(tmp: Path) -> dict:
    """Fake secrets in the environment; a failing `scontrol` first on PATH (the SLURM executor
    plugin calls `scontrol show config` when Snakemake starts: 9 s without a controller)."""
    shim = tmp / "bin" / "scontrol"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text("#!/bin/sh\nexit 1\n")
    shim.chmod(0o755)
    e = dict(os.environ)
    e.update(SECRETS)
    e.update(PATH=f"{shim.parent}:{BIN}:{e['PATH']}", HF_HOME=str(tmp / "hf_home"), HF_HUB_OFFLINE="1",
             HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return e


def _leaks(folder: Path) -> dict[str, list[str]]:
    """{file: [secret names found]} over every file under `folder` (raw bytes, also base64-free
    plain text such as JSON, logs, parquet, safetensors headers, Snakemake metadata)."""
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits = [k for k, v in SECRETS.items() if v.encode() in data]
            if hits:
                found[str(p.relative_to(folder))] = hits
    return found


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    wd = tmp_path_factory.mktemp("secrets")
    (wd / "config.yaml").write_text(CONFIG)
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(wd),
           "--configfile", str(wd / "config.yaml"), "--profile", str(ROOT / "profiles/local"), "--cores", "2"]
    p = subprocess.run(cmd, cwd=wd, env=_env(wd.parent / f"{wd.name}_env"), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-5000:]
    return wd, p.stdout + p.stderr


def test_no_secret_in_any_output_log_or_metadata(pipeline):
    wd, console = pipeline
    res = wd / "results/secrets"
    # the run produced what is searched: data, checkpoints + manifests, lmms-eval results, logs, report
    expected = ["data/syn_count/train.parquet", "results/secrets/seed0/base/manifest.json",
                "results/secrets/seed0/full/stage1_syn_count/manifest.json",
                "results/secrets/seed0/evals/base/syn_count.json",
                "results/secrets/seed0/evals/base/syn_count.samples.jsonl", "results/secrets/logs/seed0/base.log",
                "results/secrets/logs/seed0/evals/base.log", "results/secrets/scores.csv"]
    for f in expected:
        assert (wd / f).stat().st_size > 0, f
    assert list((wd / ".snakemake/metadata").iterdir()) and list((wd / ".snakemake/log").iterdir())
    files = [p for p in wd.rglob("*") if p.is_file()]
    assert len(files) > 60
    # the search finds what is there (the experiment name is in manifests, logs and metadata)
    assert sum(b"secrets" in p.read_bytes() for p in files) > 10
    assert json.loads((res / "seed0/evals/base/syn_count.json").read_text())["checkpoint"].endswith("base/model")

    assert _leaks(wd) == {}
    for name, value in SECRETS.items():
        assert value not in console, name


def test_lmms_eval_raw_results_hold_no_secret(tmp_path, monkeypatch):
    """lmms-eval's own results dict (model args, config, environment and git info, every
    sample) -- not written by us, but it is what lmms-eval's CLI would save."""
    import torch
    from lmms_eval import evaluator

    from lmmcl.data.synthetic import write_skill
    from lmmcl.evaluation.run import evaluate
    from lmmcl.models.tiny import TinySpec, save_tiny_llava

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    ckpt = save_tiny_llava(tmp_path / "ckpt", TinySpec(), seed=0)
    write_skill("syn_color", "test", 4, 0, tmp_path / "data" / "syn_color" / "test.parquet")
    seen = []
    real = evaluator.simple_evaluate

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(evaluator, "simple_evaluate", spy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluate(str(ckpt), ["syn_color"], tmp_path / "data", tmp_path / "out", limit=2)
    finally:
        torch.set_num_threads(threads)
    blob = json.dumps(seen[0], default=str)
    assert {"config", "samples", "git_hash"} <= set(seen[0]) and str(Path(ckpt).resolve()) in blob
    assert [k for k, v in SECRETS.items() if v in blob] == []
    assert _leaks(tmp_path) == {}


def test_secret_in_config_is_refused_without_echo(tmp_path):
    cfg = yaml.safe_load(CONFIG)
    cfg["data"]["sources"] = {"pixmocount": {"flickr_api_secret": SECRETS["FLICKR_API_SECRET"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "config.yaml"), "-n"]
    p = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "data.sources.pixmocount.flickr_api_secret: credentials are not accepted" in out
    assert "FLICKR_API_KEY" in out  # says where they go instead
    assert SECRETS["FLICKR_API_SECRET"] not in out
    assert _leaks(tmp_path / ".snakemake") == {} if (tmp_path / ".snakemake").exists() else True


@pytest.mark.parametrize("options", [
    {"api_key": "sk-SECRET-abc123"},
    {"hf_token": "hf_SECRETtokenAbC123xyz"},
    {"password": "sk-SECRET-abc123"},
    {"url": "https://user:sk-SECRET-abc123@example.org/CUB_200_2011.tgz"},
])
def test_secret_option_on_the_command_line_is_refused(options, tmp_path, capsys):
    from lmmcl.cli import main

    dataset = "cub200" if "url" in options else "pixmocount"
    with pytest.raises(SystemExit) as e:
        main(["convert", dataset, "--out-dir", str(tmp_path / "out"), "--options", json.dumps(options)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    key = next(iter(options))
    assert f"data.sources.{dataset}.{key}: credentials are not accepted" in err
    assert "sk-SECRET" not in err and "hf_SECRET" not in err
    assert not (tmp_path / "out").exists()


def test_no_cli_option_takes_a_secret():
    """Every `lmmcl` option: none is named like a credential (secrets come from the environment)."""
    import argparse

    from lmmcl.cli import build_parser

    names = []
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for cmd, sp in sub.choices.items():
        names += [(cmd, o) for a in sp._actions for o in a.option_strings]
    assert len(names) > 40
    bad = [(c, o) for c, o in names if re.search(r"token(?![a-z])|secret|passw|api.?key|credential", o, re.I)]
    assert bad == []


def test_redact_covers_every_secret_env_var(monkeypatch):
    from lmmcl.data.sources.common import SECRET_ENV_VARS, redact

    assert {"FLICKR_API_KEY", "FLICKR_API_SECRET", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY"} <= set(SECRET_ENV_VARS)
    for name in SECRET_ENV_VARS:
        monkeypatch.setenv(name, SECRETS[name])
    text = "error: " + " ".join(SECRETS[n] for n in SECRET_ENV_VARS)
    assert redact(text) == "error: " + " ".join(["***"] * len(SECRET_ENV_VARS))
