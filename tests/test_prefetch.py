"""`lmmcl prefetch` and the offline jobs' cache checks (lmmcl.prefetch, lmmcl.hubcache;
docs/cluster_data_and_resources.md). Nothing here reaches a hub: fetches go to monkeypatched
`snapshot_download` / `load_dataset`, caches are temporary folders laid out as the real ones (a
hub snapshot, a prepared `datasets` cache), and subprocesses get an unroutable HF_ENDPOINT."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmmcl.config import load_configfiles

from lmmcl import hubcache, prefetch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAPER = "config/paper_llava_onevision.yaml"
OV = "llava-hf/llava-onevision-qwen2-7b-ov-hf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# the datasets of the paper config's built-in benchmarks, as lmms-eval 0.7.3's task YAMLs name them
PAPER_DATASETS = {
    ("lmms-lab-encoder/textvqa", None): ["textvqa_val"],
    ("lmms-lab-encoder/ai2d", None): ["ai2d"],
    ("lmms-lab-encoder/ChartQA", None): ["chartqa"],
    ("lmms-lab-encoder/DocVQA", "DocVQA"): ["docvqa_val"],
    ("lmms-lab-encoder/DocVQA", "InfographicVQA"): ["infovqa_val"],
    ("lmms-lab-encoder/RealWorldQA", None): ["realworldqa"],
    ("lmms-lab-encoder/SEED-Bench", None): ["seedbench"],
    ("lmms-lab-encoder/ScienceQA", "ScienceQA-IMG"): ["scienceqa_img"],
    ("Lin-Chen/MMStar", None): ["mmstar"],
    ("echo840/OCRBench", None): ["ocrbench"],
}


# ---- fake caches, laid out as the real ones -------------------------------------------------------
def fake_snapshot(hub_cache: Path, repo: str, revision: str = "main", shards: int = 2, drop: str | None = None) -> Path:
    """models--<owner>--<name>/{refs/<revision>, snapshots/<commit>/}: config.json (the family's
    shipped one), a sharded safetensors index and its shards (`drop`: leave that file out)."""
    base = hub_cache / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / revision).write_text(COMMIT)
    snap = base / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "src/lmmcl/registry/hf_configs/llava-onevision-qwen2-7b-ov-hf.json", snap / "config.json")
    names = [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    index = {"weight_map": {f"w{i}": n for i, n in enumerate(names)}}
    (snap / "model.safetensors.index.json").write_text(json.dumps(index))
    for n in names:
        (snap / n).write_bytes(b"\0" * 1024)
    if drop:
        (snap / drop).unlink()
    return snap


def fake_prepared_dataset(cache: Path, repo: str, config: str | None, splits=("test",)) -> Path:
    """What `datasets.load_dataset(repo, config, cache_dir=cache)` leaves after an online load:
    <owner>___<name>/<config>/<version>/<hash>/{dataset_info.json, <name>-<split>.arrow}. Built
    with the packaged parquet builder, then moved under the hub dataset's name."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    work = cache.parent / f"_build_{repo.replace('/', '_')}_{config}"
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for s in splits:
        datasets.Dataset.from_dict({"question": [f"q {s}"], "answer": ["a"]}).to_parquet(str(work / f"{s}.parquet"))
        files[s] = str(work / f"{s}.parquet")
    builder = datasets.load_dataset_builder("parquet", data_files=files, cache_dir=str(work / "c"))
    builder.download_and_prepare()
    name = camelcase_to_snakecase(repo.split("/")[-1])
    dest = cache / f"{repo.split('/')[0]}___{name}" / (config or "default") / "0.0.0" / "fakehash"
    shutil.copytree(builder.cache_dir, dest)
    for f in dest.glob("parquet-*.arrow"):
        f.rename(dest / f.name.replace("parquet-", f"{name}-"))
    info = json.loads((dest / "dataset_info.json").read_text())
    info["config_name"], info["dataset_name"] = config or "default", name
    for s in info["splits"].values():
        s["dataset_name"] = name
    (dest / "dataset_info.json").write_text(json.dumps(info))
    return dest


def offline_env(hf_home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LMMS_EVAL_"))}
    return dict(env, PATH=f"{BIN}:{env['PATH']}", HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                HF_ENDPOINT="http://127.0.0.1:9", **extra)


def job_env(hf_home: Path) -> dict:
    """A workflow job's environment: no HF_*_OFFLINE, only what the Snakefile exports
    (LMMCL_HUB_OFFLINE=1 takes the compute subcommands offline, lmmcl.hubcache.enter_job)."""
    env = offline_env(hf_home, LMMCL_HUB_OFFLINE="1", LMMCL_CONFIGFILES=PAPER)
    del env["HF_HUB_OFFLINE"], env["HF_DATASETS_OFFLINE"]
    return env


# ---- what a config needs ------------------------------------------------------------------------
def test_paper_config_needs_the_checkpoint_and_every_builtin_dataset(tmp_path):
    items = prefetch.plan_items(load_configfiles([str(ROOT / PAPER)]))
    assert [(i.kind, i.repo, i.revision) for i in items if i.kind == "checkpoint"] == [("checkpoint", OV, None)]
    datasets = {(i.repo, i.name): i.benchmarks for i in items if i.kind == "dataset"}
    assert datasets == PAPER_DATASETS                              # the local benchmarks (cub200, ...) are not here
    ai2d = next(i for i in items if i.benchmarks == ["ai2d"])
    assert ai2d.split == "test" and ai2d.kwargs == {"token": True}
    # an overlay pins the revision: what is fetched (and checked) is that revision
    (tmp_path / "pin.yaml").write_text(f"model: {{revision: {COMMIT}}}\n")
    items = prefetch.plan_items(load_configfiles([str(ROOT / PAPER), str(tmp_path / "pin.yaml")]))
    assert items[0].label == f"checkpoint {OV}@{COMMIT}"


def test_tiny_default_has_nothing_to_fetch():
    lines = []
    result = prefetch.run([str(ROOT / "config/config.yaml")], out=lines.append)
    assert lines == [f"nothing to fetch: {ROOT / 'config/config.yaml'} loads no hub checkpoint and no built-in "
                     f"lmms-eval benchmark"]
    assert result == {"fetched": [], "cached": [], "missing": [], "failed": []}


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--configfile .*nope.yaml'?: no such file"):
        prefetch.run([str(tmp_path / "nope.yaml")])


# ---- fetching -----------------------------------------------------------------------------------
@pytest.fixture()
def fake_hub(caches, monkeypatch):
    """snapshot_download / load_dataset that record their calls and fill the temporary caches as
    a download would; a local_files_only lookup goes to the real snapshot_download."""
    import datasets
    import huggingface_hub

    calls = {"snapshot": [], "load_dataset": []}
    real_snapshot = huggingface_hub.snapshot_download
    fail = set()

    def snapshot_download(repo_id, revision=None, local_files_only=False, **kw):
        if local_files_only:
            return real_snapshot(repo_id, revision=revision, local_files_only=True, **kw)
        calls["snapshot"].append((repo_id, revision, kw))
        return str(fake_snapshot(caches / "hub", repo_id, revision or "main"))

    def load_dataset(path, name=None, **kw):
        calls["load_dataset"].append((path, name, kw))
        if path in fail:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (fake)")
        split = next(i.split for i in prefetch.dataset_items(sum(PAPER_DATASETS.values(), []))
                     if (i.repo, i.name) == (path, name))
        fake_prepared_dataset(Path(kw["cache_dir"]), path, name, splits=(split,))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hubcache, "hub_offline", lambda: False)      # a login node with internet
    monkeypatch.setattr(hubcache, "datasets_offline", lambda: False)
    return calls, fail


def test_prefetch_fetches_what_is_missing_with_lmms_evals_arguments(caches, fake_hub, tmp_path):
    calls, _ = fake_hub
    fake_prepared_dataset(caches / "datasets", "echo840/OCRBench", None)   # already there
    (tmp_path / "pin.yaml").write_text(f"model: {{revision: {COMMIT}}}\n")
    lines = []
    result = prefetch.run([str(ROOT / PAPER), str(tmp_path / "pin.yaml")], out=lines.append)

    assert calls["snapshot"] == [(OV, COMMIT, {})]                  # the pinned revision, once
    fetched = {(p, n) for p, n, _ in calls["load_dataset"]}
    assert fetched == set(PAPER_DATASETS) - {("echo840/OCRBench", None)}
    for path, name, kw in calls["load_dataset"]:                    # as lmms-eval's ConfigurableTask.download
        assert kw["cache_dir"] == str(caches / "datasets")
        assert kw["download_mode"].value == "reuse_dataset_if_exists" and kw["num_proc"] == 1
        assert "token" not in kw                                     # `token: True` -> the stored token, if any
    assert [label for label, _ in result["cached"]] == ["dataset echo840/OCRBench for ocrbench"]
    assert len(result["fetched"]) == 10 and all(size > 0 for _, size in result["fetched"])
    assert lines[1].startswith(f"[1/11] checkpoint {OV}@{COMMIT}: fetching")
    assert any(re.match(rf"\[1/11\] checkpoint {OV}@{COMMIT}: fetched, \d+\.\d KiB in \d+ s \(commit {COMMIT}\)$", l)
               for l in lines), lines
    assert "[11/11] dataset echo840/OCRBench for ocrbench: already cached" in lines[-2]
    assert lines[-1].startswith("summary: 10 fetched (") and "1 already cached" in lines[-1]

    # a second run finds everything in the cache and fetches nothing
    calls["snapshot"].clear(), calls["load_dataset"].clear()
    result = prefetch.run([str(ROOT / PAPER), str(tmp_path / "pin.yaml")], out=lines.append)
    assert calls == {"snapshot": [], "load_dataset": []} and len(result["cached"]) == 11


def test_one_failure_is_named_and_the_rest_still_fetched(caches, fake_hub):
    calls, fail = fake_hub
    fail.add("lmms-lab-encoder/ChartQA")
    lines = []
    with pytest.raises(ValueError) as e:
        prefetch.run([str(ROOT / PAPER)], out=lines.append)
    msg = str(e.value)
    assert msg.startswith("could not fetch dataset lmms-lab-encoder/ChartQA for chartqa (ConnectionError: "
                          "Couldn't reach 'lmms-lab-encoder/ChartQA' on the Hub (fake))")
    assert "hf auth login" in msg
    assert any(l.startswith("[4/11] dataset lmms-lab-encoder/ChartQA for chartqa: FAILED: ConnectionError: Couldn't")
               for l in lines), lines
    assert len(calls["load_dataset"]) == 10                         # the others were fetched anyway
    assert lines[-1].startswith("summary: 10 fetched (") and lines[-1].endswith("0 already cached (0 B), 1 FAILED")


def test_unpinned_checkpoint_says_which_commit_to_pin(caches, fake_hub):
    lines = []
    with pytest.MonkeyPatch.context() as m:   # the model only: no built-in benchmark
        m.setattr(prefetch, "dataset_items", lambda benchmarks: [])
        prefetch.run([str(ROOT / PAPER)], out=lines.append)
    assert f"model.revision is unset: pin it with `model.revision: {COMMIT}`" in lines[-2]


def test_dry_run_lists_cached_and_missing_without_network(tmp_path):
    """The CLI on a login node: one entry cached, the rest listed, nothing requested (an
    unroutable HF_ENDPOINT would fail any request)."""
    home = tmp_path / "hf"
    fake_snapshot(home / "hub", OV)
    fake_prepared_dataset(home / "datasets", "lmms-lab-encoder/DocVQA", "InfographicVQA", splits=("validation",))
    env = offline_env(home)
    del env["HF_HUB_OFFLINE"], env["HF_DATASETS_OFFLINE"]           # online, as on a login node
    p = subprocess.run([str(BIN / "lmmcl"), "prefetch", "--configfile", PAPER, "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == (f"dry run: 11 item(s) for {PAPER}; hub cache {home / 'hub'}, datasets cache {home / 'datasets'}")
    assert re.match(rf"\[1/11\] checkpoint {OV}@main: already cached, \d+\.\d KiB \(commit {COMMIT}; "
                    r"model.revision is unset: pin it", out[1]), out[1]
    assert "[6/11] dataset lmms-lab-encoder/DocVQA (InfographicVQA) for infovqa_val: already cached" in out[6]
    assert out[5] == "[5/11] dataset lmms-lab-encoder/DocVQA (DocVQA) for docvqa_val: would fetch"
    assert out[-1].startswith("dry run: 9 to fetch, 2 already cached") and out[-1].endswith("nothing was downloaded")
    # the same offline (HF_HUB_OFFLINE=1 left in the login shell): an error that says so
    p = subprocess.run([str(BIN / "lmmcl"), "prefetch", "--configfile", PAPER], cwd=ROOT, env=offline_env(home),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert ("lmmcl prefetch: error: 9 item(s) are not cached and HF_HUB_OFFLINE or HF_DATASETS_OFFLINE "
            "is set") in p.stderr


# ---- offline jobs: the checks before any work ------------------------------------------------------
def test_require_model_names_the_checkpoint_and_the_prefetch_command(caches, monkeypatch):
    monkeypatch.setattr(hubcache, "hub_offline", lambda: True)
    monkeypatch.setenv("LMMCL_CONFIGFILES", PAPER)
    with pytest.raises(FileNotFoundError) as e:
        hubcache.require_model(f"{OV}@{COMMIT}")
    msg = str(e.value)
    assert msg.startswith(f"checkpoint {OV}@{COMMIT} (no snapshot of revision {COMMIT}) is not in the Hugging Face "
                          f"cache ({caches / 'hub'})")
    assert msg.endswith(f"lmmcl prefetch --configfile {PAPER}") and "HF_HUB_OFFLINE=1" in msg

    fake_snapshot(caches / "hub", OV, revision=COMMIT)
    hubcache.require_model(f"{OV}@{COMMIT}")                        # cached: nothing to say
    hubcache.require_model(str(caches))                             # a local folder: never checked

    fake_snapshot(caches / "hub", OV, drop="model-00002-of-00002.safetensors")   # an interrupted download
    with pytest.raises(FileNotFoundError, match=r"lacks \['model-00002-of-00002.safetensors'\]"):
        hubcache.require_model(OV)
    monkeypatch.setattr(hubcache, "hub_offline", lambda: False)     # online: the loader downloads it
    hubcache.require_model(OV)


def test_require_datasets_agrees_with_an_offline_load_dataset(caches, monkeypatch, tmp_path):
    """The check finds exactly what `datasets.load_dataset` reloads offline with lmms-eval's
    arguments (token=True included), and names what it lacks."""
    monkeypatch.setattr(hubcache, "datasets_offline", lambda: True)
    monkeypatch.setenv("LMMCL_CONFIGFILES", PAPER)
    cache = caches / "datasets"
    fake_prepared_dataset(cache, "lmms-lab-encoder/ai2d", None)
    hubcache.require_datasets(["ai2d"])
    with pytest.raises(FileNotFoundError) as e:
        hubcache.require_datasets(["ai2d", "scienceqa_img", "mmstar"])
    msg = str(e.value)
    assert msg.startswith("benchmark 'scienceqa_img' (dataset lmms-lab-encoder/ScienceQA, config ScienceQA-IMG, "
                          "split test); benchmark 'mmstar' (dataset Lin-Chen/MMStar, split val) is not in the "
                          f"Hugging Face cache ({cache})")
    assert "ai2d" not in msg and msg.endswith(f"lmmcl prefetch --configfile {PAPER}")

    load = ("import datasets, sys; ds = datasets.load_dataset(path=sys.argv[1], name=None, cache_dir=sys.argv[2], "
            "download_mode=datasets.DownloadMode.REUSE_DATASET_IF_EXISTS, num_proc=1, token=True); "
            "print(ds['test'][0])")
    ok = subprocess.run([sys.executable, "-c", load, "lmms-lab-encoder/ai2d", str(cache)], env=offline_env(caches),
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "'question': 'q test'" in ok.stdout, ok.stderr[-2000:]
    missing = subprocess.run([sys.executable, "-c", load, "Lin-Chen/MMStar", str(cache)], env=offline_env(caches),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0                                  # what the check spares the job


def test_datasets_cache_is_pinned_for_lmms_eval(monkeypatch, tmp_path):
    """lmms-eval would move a network file system's datasets cache to node-local scratch: the
    jobs and prefetch pin LMMS_EVAL_DATASETS_CACHE to HF_DATASETS_CACHE / $HF_HOME/datasets."""
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", "x")
    monkeypatch.delenv("LMMS_EVAL_DATASETS_CACHE")
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hubcache.datasets_cache_dir() == str(tmp_path / "home/datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    assert hubcache.pin_datasets_cache() == str(tmp_path / "ds") == os.environ["LMMS_EVAL_DATASETS_CACHE"]


def _base_manifest(tmp_path: Path) -> Path:
    from lmmcl.train.stage import build_base

    out = tmp_path / "base/manifest.json"
    build_base(model_cfg={"family": "llava_onevision", "checkpoint": OV}, experiment="e", out_manifest=out,
               data=[], hparams={})
    return out


def test_offline_train_stage_fails_at_once_naming_checkpoint_and_command(tmp_path):
    """`lmmcl train-stage` as the workflow runs it (LMMCL_HUB_OFFLINE=1, LMMCL_CONFIGFILES): an
    empty cache fails before the data is even looked at; a cached snapshot passes the check."""
    base = _base_manifest(tmp_path)
    cmd = [str(BIN / "lmmcl"), "train-stage", "--parent", str(base), "--data", str(tmp_path / "nodata.parquet"),
           "--method", "m", "--recipe", "sa_proj", "--hparams", "{}", "--out", str(tmp_path / "s1/manifest.json")]
    env = job_env(tmp_path / "hf")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 2, p.stderr[-2000:]
    err = p.stderr.strip().splitlines()[-1]
    assert err.startswith(f"lmmcl train-stage: error: checkpoint {OV}@main (no snapshot of revision main) is not "
                          f"in the Hugging Face cache ({tmp_path / 'hf/hub'}) and this job runs offline")
    assert err.endswith(f"lmmcl prefetch --configfile {PAPER}") and "nodata" not in err

    fake_snapshot(tmp_path / "hf/hub", OV)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    err = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 2 and "nodata.parquet" in err and "prefetch" not in err   # past the cache check


def test_offline_evaluation_fails_before_lmms_eval_naming_the_benchmarks(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copy(ROOT / "src/lmmcl/registry/hf_configs/llava-onevision-qwen2-7b-ov-hf.json", ckpt / "config.json")
    p = subprocess.run([str(BIN / "lmmcl"), "evaluate", "--checkpoint", str(ckpt), "--benchmarks", "ai2d", "chartqa",
                        "--out-dir", str(tmp_path / "out")],
                       env=job_env(tmp_path / "hf"), capture_output=True, text=True, timeout=180)
    assert p.returncode == 2, p.stderr[-2000:]
    err = p.stderr.strip().splitlines()[-1]
    assert err.startswith("lmmcl evaluate: error: benchmark 'ai2d' (dataset lmms-lab-encoder/ai2d, split test); "
                          "benchmark 'chartqa' (dataset lmms-lab-encoder/ChartQA, split test) is not in the Hugging "
                          f"Face cache ({tmp_path / 'hf/datasets'}) and this job runs offline (HF_DATASETS_OFFLINE=1")
    assert err.endswith(f"lmmcl prefetch --configfile {PAPER}")
    assert not (tmp_path / "out").exists()
