"""`evaluation.revisions` pins the hub dataset of built-in lmms-eval benchmarks: checked at planning,
loaded by the generated task (an `include:` wrapper adding `revision` to the task's own
dataset_kwargs), fetched and checked by `lmmcl prefetch` / the offline evaluation at that revision,
recorded in each evaluation record (with the commit), and a param of the evaluation rules only when
set. Nothing reaches a hub: caches are temporary folders laid out as datasets 5.2 leaves them,
`load_dataset` is monkeypatched where a fetch would happen."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmmcl import hubcache, prefetch
from lmmcl.config import ConfigError, Plan, load_configfiles
from lmmcl.evaluation import taskgen

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMOKE = "tests/configs/smoke.yaml"  # self-contained: 2 methods x 2 stages, tiny family
PIN = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
BUILTIN = ["ai2d", "chartqa", "docvqa_val", "infovqa_val", "mmstar", "ocrbench", "realworldqa", "scienceqa_img",
           "seedbench", "textvqa_val"]


def plan_cfg(revisions, extra=("ai2d", "chartqa")) -> dict:
    return {"experiment": "x", "sequence": ["cub200"], "methods": {"m": {"recipe": "sa_proj"}},
            "benchmarks": {"extra": list(extra)}, "evaluation": {"revisions": revisions}}


# ---- the config ---------------------------------------------------------------------------------
def test_plan_refuses_what_cannot_be_pinned_naming_the_key_and_the_allowed_names():
    with pytest.raises(ConfigError) as e:
        Plan(plan_cfg({"ai2dd": PIN}))
    assert str(e.value) == f"evaluation.revisions: unknown benchmark 'ai2dd'; allowed: the built-in lmms-eval benchmarks {BUILTIN}"
    with pytest.raises(ConfigError) as e:
        Plan(plan_cfg({"cub200": PIN}))
    assert str(e.value).startswith("evaluation.revisions.cub200: 'cub200' is not a built-in lmms-eval benchmark (it "
                                   "reads local parquet, whose sha256 every evaluation records; pin its source with "
                                   "data.sources.<dataset>.revision); allowed: ['ai2d', ")
    with pytest.raises(ConfigError, match=r"evaluation.revisions.ai2d: 123 is not a hub revision; allowed: a commit"):
        Plan(plan_cfg({"ai2d": 123}))
    with pytest.raises(ConfigError, match=r"evaluation.revisions.ai2d: 'a b' is not a hub revision"):
        Plan(plan_cfg({"ai2d": "a b"}))

    # what is pinned: the evaluated benchmarks' non-null entries, in benchmark order
    plan = Plan(plan_cfg({"chartqa": "v1.0", "ai2d": PIN, "mmstar": PIN, "ocrbench": None}, extra=("ai2d", "chartqa", "ocrbench")))
    assert plan.dataset_revisions == {"ai2d": PIN, "chartqa": "v1.0"}
    assert Plan(plan_cfg(None)).dataset_revisions == Plan(plan_cfg({})).dataset_revisions == {}


def test_schema_types_the_key():
    import yaml
    from snakemake.utils import validate

    schema = str(ROOT / "workflow/schemas/config.schema.yaml")
    base = yaml.safe_load((ROOT / SMOKE).read_text())
    ok = {**base, "evaluation": {"revisions": {"ai2d": PIN, "chartqa": None}}}
    validate(ok, schema=schema)
    assert ok["evaluation"]["batch_size"] == 1                        # the other defaults still filled
    filled = {**base, "evaluation": {}}
    validate(filled, schema=schema)
    assert filled["evaluation"]["revisions"] == {}
    for bad in ({"ai2d": 123}, {"ai2d": "a b"}, ["ai2d"]):
        with pytest.raises(Exception, match="revisions"):
            validate({**base, "evaluation": {"revisions": bad}}, schema=schema)


# ---- the generated task -------------------------------------------------------------------------
def test_pinned_task_adds_the_revision_to_the_tasks_own_dataset_kwargs(tmp_path):
    from lmms_eval.utils import load_yaml_config

    tasks = taskgen.write_tasks(["ai2d", "textvqa_val", "chartqa"], tmp_path / "data", tmp_path / "t",
                                revisions={"ai2d": PIN, "textvqa_val": "v1.0", "chartqa": None})
    assert tasks == {"ai2d": "lmmcl_ai2d_pinned", "textvqa_val": "lmmcl_textvqa_val_pinned", "chartqa": "chartqa"}
    for bench, kwargs in (("ai2d", {"token": True, "revision": PIN}), ("textvqa_val", {"revision": "v1.0"})):
        ours = load_yaml_config(str(tmp_path / "t" / f"lmmcl_{bench}_pinned.yaml"), mode="simple")
        parent = load_yaml_config(str(taskgen.builtin_yaml_path(bench)), mode="simple")
        assert ours["dataset_kwargs"] == kwargs                      # the task's own kwargs kept, revision added
        assert ours["task"] == f"lmmcl_{bench}_pinned" and ours["tag"] == []
        same = {k: v for k, v in parent.items() if k not in ("task", "tag", "dataset_kwargs")}
        # every other key is the parent's (`!function` values load as yaml nodes: compared by repr)
        assert repr({k: ours[k] for k in same}) == repr(same) and "dataset_path" in same and "doc_to_text" in same

    with pytest.raises(ValueError, match=r"revisions: \['cub200'\] are not requested built-in benchmarks"):
        taskgen.write_tasks(["ai2d", "cub200"], tmp_path / "data", tmp_path / "x", revisions={"cub200": PIN})
    with pytest.raises(ValueError, match=r"revisions: \['mmstar'\]"):
        taskgen.write_tasks(["ai2d"], tmp_path / "data", tmp_path / "x", revisions={"mmstar": PIN})
    with pytest.raises(ValueError, match=r"revisions: \['ai2d'\].*local builtin_data"):
        taskgen.write_tasks(["ai2d"], tmp_path / "data", tmp_path / "x", builtin_data={"ai2d": __file__},
                            revisions={"ai2d": PIN})
    # the task hash changes with a pin and stays what it was without one
    assert taskgen.task_hash("ai2d", tmp_path, revision=PIN) != taskgen.task_hash("ai2d", tmp_path)
    assert taskgen.task_hash("ai2d", tmp_path, revision=None) == taskgen.task_hash("ai2d", tmp_path)


def test_lmms_eval_hands_the_revision_to_load_dataset(tmp_path, monkeypatch):
    """lmms-eval 0.7.3 builds the pinned task and calls datasets.load_dataset with the task's
    dataset_path and its dataset_kwargs, revision included (ConfigurableTask.download)."""
    import datasets
    from fixtures.eval_formats import write_builtin
    from lmms_eval.tasks import TaskManager, get_task_dict

    tasks = taskgen.write_tasks(["ai2d"], tmp_path / "data", tmp_path / "t", revisions={"ai2d": PIN})
    parquet = write_builtin(tmp_path / "ai2d.parquet", "ai2d", n=2)
    local = datasets.load_dataset("parquet", data_files={"test": str(parquet)}, cache_dir=str(tmp_path / "c"))
    calls = []

    def load_dataset(path, name=None, **kw):
        calls.append((path, name, kw))
        return local

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    got = get_task_dict([tasks["ai2d"]], TaskManager(include_path=str(tmp_path / "t"), include_defaults=False))
    assert list(got) == ["lmmcl_ai2d_pinned"]
    [(path, name, kw)] = calls
    assert (path, name, kw["revision"], kw["token"]) == ("lmms-lab-encoder/ai2d", None, PIN, True)


# ---- caches: what offline jobs load, and the checks ---------------------------------------------
def prepared_copy(cache: Path, repo: str, commit: str, parquet: Path | None = None, split: str = "test") -> Path:
    """What an online `load_dataset(repo, revision=<commit>, cache_dir=cache)` leaves:
    <owner>___<name>/default/0.0.0/<commit>/ (dataset_info.json, <name>-<split>.arrow), from
    `parquet` (default: one question/answer row). Built with the packaged parquet builder."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    work = cache.parent / f"_build_{commit[:8]}_{repo.replace('/', '_')}"
    work.mkdir(parents=True, exist_ok=True)
    if parquet is None:
        parquet = work / f"{split}.parquet"
        datasets.Dataset.from_dict({"question": [f"q {commit[:4]}"], "answer": ["a"]}).to_parquet(str(parquet))
    builder = datasets.load_dataset_builder("parquet", data_files={split: str(parquet)}, cache_dir=str(work / "c"))
    builder.download_and_prepare()
    name = camelcase_to_snakecase(repo.split("/")[-1])
    dest = cache / f"{repo.split('/')[0]}___{name}" / "default" / "0.0.0" / commit
    shutil.copytree(builder.cache_dir, dest)
    for f in dest.glob("parquet-*.arrow"):
        f.rename(dest / f.name.replace("parquet-", f"{name}-"))
    info = json.loads((dest / "dataset_info.json").read_text())
    info["config_name"], info["dataset_name"] = "default", name
    for s in info["splits"].values():
        s["dataset_name"] = name
    (dest / "dataset_info.json").write_text(json.dumps(info))
    return dest


def _age(folder: Path, seconds: int = 100) -> None:
    st = folder.stat()
    os.utime(folder, (st.st_atime - seconds, st.st_mtime - seconds))


def test_offline_check_wants_the_pinned_copy_to_be_the_one_datasets_reloads(caches, monkeypatch):
    monkeypatch.setattr(hubcache, "datasets_offline", lambda: True)
    monkeypatch.setenv("LMMCL_CONFIGFILES", "my.yaml")
    ds = caches / "datasets"
    pinned = prepared_copy(ds, "lmms-lab-encoder/ai2d", PIN)
    hubcache.require_datasets(["ai2d"], revisions={"ai2d": PIN})
    hubcache.require_datasets(["ai2d"])                             # unpinned: any copy
    assert hubcache.loaded_commit("lmms-lab-encoder/ai2d", None, PIN) == PIN

    with pytest.raises(FileNotFoundError) as e:                     # another revision pinned: not cached
        hubcache.require_datasets(["ai2d"], revisions={"ai2d": OTHER})
    assert str(e.value).startswith(f"benchmark 'ai2d' (dataset lmms-lab-encoder/ai2d, revision {OTHER}, split test; "
                                   f"no prepared copy of commit {OTHER}) is not in the Hugging Face cache ({ds})")
    assert str(e.value).endswith("lmmcl prefetch --configfile my.yaml")

    # a newer copy of another revision is what offline datasets would load: refused until made current
    _age(pinned)
    prepared_copy(ds, "lmms-lab-encoder/ai2d", OTHER)
    with pytest.raises(FileNotFoundError, match=rf"the copy of commit {PIN} is cached but offline datasets loads the "
                                                rf"newest copy, commit {OTHER}: prefetch makes the pinned one"):
        hubcache.require_datasets(["ai2d"], revisions={"ai2d": PIN})
    assert hubcache.loaded_commit("lmms-lab-encoder/ai2d", None, PIN) == OTHER
    assert hubcache.make_current("lmms-lab-encoder/ai2d", None, PIN) == pinned
    hubcache.require_datasets(["ai2d"], revisions={"ai2d": PIN})
    assert hubcache.loaded_commit("lmms-lab-encoder/ai2d", None, None) == PIN

    # a tag or branch resolves through the hub cache's refs/, as datasets leaves it
    with pytest.raises(FileNotFoundError, match=r"revision v1.0 is not a commit sha and the hub cache has no refs/v1.0"):
        hubcache.require_datasets(["ai2d"], revisions={"ai2d": "v1.0"})
    refs = caches / "hub/datasets--lmms-lab-encoder--ai2d/refs"
    refs.mkdir(parents=True)
    (refs / "v1.0").write_text(PIN)
    hubcache.require_datasets(["ai2d"], revisions={"ai2d": "v1.0"})

    # the evaluation's check before lmms-eval and the model load hands it the pins
    from lmmcl.evaluation import run

    run._check_hub_cache(str(ROOT / "src/lmmcl/registry/hf_configs"), ["ai2d", "cub200"], None, {"ai2d": PIN})
    with pytest.raises(FileNotFoundError, match=rf"benchmark 'ai2d' \(dataset lmms-lab-encoder/ai2d, revision {OTHER}"):
        run._check_hub_cache(str(ROOT / "src/lmmcl/registry/hf_configs"), ["ai2d", "cub200"], None, {"ai2d": OTHER})

    # online (hub_offline_jobs: false, or lmmcl evaluate by hand): the commit the revision names
    monkeypatch.setattr(hubcache, "datasets_offline", lambda: False)
    (refs / "main").write_text(OTHER)
    assert hubcache.loaded_commit("lmms-lab-encoder/ai2d", None, None) == OTHER
    assert hubcache.loaded_commit("lmms-lab-encoder/ai2d", None, "v1.0") == PIN
    assert hubcache.loaded_commit("lmms-lab-encoder/ai2d", None, "nope") is None


def test_evaluation_record_names_the_data(caches, monkeypatch, tmp_path):
    """Every benchmark's record says what it read: our parquet (path, sha256), a built-in task's hub
    dataset with its pinned revision ("unpinned" if none) and the commit the cache holds."""
    from fixtures.eval_formats import write_contract

    from lmmcl.evaluation import run
    from lmmcl.hashing import sha256_file

    monkeypatch.setattr(hubcache, "datasets_offline", lambda: True)
    parquet = write_contract(tmp_path / "data", "cub200", n=2)
    prepared_copy(caches / "datasets", "lmms-lab-encoder/ai2d", PIN)
    prepared_copy(caches / "datasets", "lmms-lab-encoder/ChartQA", OTHER)
    r = run._Run("ckpt", ["cub200", "ai2d", "chartqa", "mmstar"], tmp_path / "data", limit=None, device="cpu",
                 batch_size=1, clock_exact_hours=False, builtin_data={}, revisions={"ai2d": PIN})
    data = run._data_records(r)
    assert data["cub200"] == {"source": "parquet", "file": str(parquet.resolve()), "sha256": sha256_file(parquet)}
    assert data["ai2d"] == {"source": "hub", "dataset": "lmms-lab-encoder/ai2d", "config": None, "split": "test",
                            "revision": PIN, "commit": PIN}
    assert data["chartqa"]["revision"] == "unpinned" and data["chartqa"]["commit"] == OTHER
    assert data["mmstar"]["commit"] is None                           # not in the cache: unknown


def test_offline_evaluation_loads_the_pinned_revision_and_records_it(tmp_path):
    """`lmmcl evaluate` as a workflow job runs it (offline, LMMCL_HUB_OFFLINE=1): ai2d pinned to a
    commit whose prepared copy (in ai2d's own columns) is the cache's newest loads it through
    lmms-eval's own task with `revision` and records revision and commit."""
    from fixtures.eval_formats import write_builtin

    from lmmcl.models.tiny import TinySpec, save_tiny_llava

    home = tmp_path / "hf"
    prepared_copy(home / "datasets", "lmms-lab-encoder/ai2d", PIN, parquet=write_builtin(tmp_path / "ai2d.parquet", "ai2d", n=3))
    ckpt = save_tiny_llava(tmp_path / "ckpt", TinySpec(), seed=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LMMS_EVAL_"))}
    env.update(PATH=f"{BIN}:{env['PATH']}", HF_HOME=str(home), HF_ENDPOINT="http://127.0.0.1:9",
               LMMCL_HUB_OFFLINE="1", LMMCL_CONFIGFILES="my.yaml")
    cmd = [str(BIN / "lmmcl"), "evaluate", "--checkpoint", str(ckpt), "--benchmarks", "ai2d", "--limit", "2",
           "--out-dir", str(tmp_path / "out")]
    p = subprocess.run(cmd + ["--dataset-revisions", f"ai2d={PIN}"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    rec = json.loads((tmp_path / "out/ai2d.json").read_text())
    assert rec["task"] == "lmmcl_ai2d_pinned" and rec["n"] == 2
    assert rec["data"] == {"source": "hub", "dataset": "lmms-lab-encoder/ai2d", "config": None, "split": "test",
                           "revision": PIN, "commit": PIN}


def test_parse_dataset_revisions():
    from lmmcl.evaluation import standalone

    assert standalone.parse_dataset_revisions([f"ai2d={PIN}", "mmstar=v1.0"]) == {"ai2d": PIN, "mmstar": "v1.0"}
    with pytest.raises(ValueError, match="BENCHMARK=REVISION"):
        standalone.parse_dataset_revisions(["ai2d"])


# ---- prefetch -----------------------------------------------------------------------------------
def test_prefetch_fetches_and_checks_the_pinned_revision_and_prints_commits(caches, monkeypatch, tmp_path):
    import datasets

    calls = []

    def load_dataset(path, name=None, **kw):                         # an online load: a copy at that commit
        calls.append((path, name, kw))
        commit = kw.get("revision") or OTHER
        dest = prepared_copy(Path(kw["cache_dir"]), path, commit) if not hubcache.prepared_copy(
            path, name, commit, kw["cache_dir"]) else None            # REUSE_DATASET_IF_EXISTS
        return dest

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hubcache, "hub_offline", lambda: False)
    monkeypatch.setattr(hubcache, "datasets_offline", lambda: False)
    config = tmp_path / "c.yaml"
    config.write_text(f"benchmarks: {{extra: [ai2d, chartqa]}}\nevaluation: {{revisions: {{ai2d: {PIN}}}}}\n")
    files = [str(ROOT / SMOKE), str(config)]

    items = prefetch.plan_items(load_configfiles(files))
    assert [(i.label, i.revision, i.kwargs) for i in items] == [
        (f"dataset lmms-lab-encoder/ai2d@{PIN} for ai2d", PIN, {"token": True, "revision": PIN}),
        ("dataset lmms-lab-encoder/ChartQA for chartqa", None, {"token": True})]

    lines = []
    result = prefetch.run(files, out=lines.append)
    assert [(p, kw.get("revision"), kw["cache_dir"]) for p, _, kw in calls] == [
        ("lmms-lab-encoder/ai2d", PIN, str(caches / "datasets")), ("lmms-lab-encoder/ChartQA", None, str(caches / "datasets"))]
    assert len(result["fetched"]) == 2
    assert any(l.startswith(f"[1/2] dataset lmms-lab-encoder/ai2d@{PIN} for ai2d: fetched,") and
               l.endswith(f"(commit {PIN})") for l in lines), lines
    assert any(l.startswith("[2/2] dataset lmms-lab-encoder/ChartQA for chartqa: fetched,") and
               l.endswith(f"(commit {OTHER}; unpinned: pin it with `evaluation.revisions: {{chartqa: {OTHER}}}`)")
               for l in lines), lines

    # a newer copy of another ai2d revision: the pinned one is not what offline jobs would load,
    # so prefetch loads it again (the cache reuses it) and makes it the newest
    pinned = hubcache.prepared_copy("lmms-lab-encoder/ai2d", None, PIN)
    _age(pinned)
    prepared_copy(caches / "datasets", "lmms-lab-encoder/ai2d", OTHER)
    calls.clear(), lines.clear()
    result = prefetch.run(files, out=lines.append)
    assert [c[0] for c in calls] == ["lmms-lab-encoder/ai2d"] and len(result["cached"]) == 1
    monkeypatch.setattr(hubcache, "datasets_offline", lambda: True)
    hubcache.require_datasets(["ai2d"], revisions={"ai2d": PIN})


# ---- the workflow: a param of the evaluation rules, only when set --------------------------------
def _commands(tmp_path: Path, overlay: str, name: str) -> list[str]:
    (tmp_path / f"{name}.yaml").write_text(overlay)
    p = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "--snakefile", str(ROOT / "workflow/Snakefile"),
                        "--directory", str(tmp_path / name), "--configfile", str(ROOT / SMOKE),
                        str(tmp_path / f"{name}.yaml")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"))
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return sorted(l for l in p.stdout.splitlines() if l.startswith("Shell command: "))  # job order varies


def test_pins_are_params_of_the_evaluations_only_and_absent_when_unset(tmp_path):
    extra = "benchmarks: {extra: [ai2d]}\n"
    plain = _commands(tmp_path, extra, "plain")
    unset = _commands(tmp_path, extra + "evaluation: {revisions: {ai2d: null}}\n", "unset")
    pinned = _commands(tmp_path, extra + f"evaluation: {{revisions: {{ai2d: {PIN}}}}}\n", "pinned")
    other = _commands(tmp_path, extra + f"evaluation: {{revisions: {{ai2d: {OTHER}}}}}\n", "other")
    evals = lambda cmds: [c for c in cmds if " evaluate " in c]  # noqa: E731
    assert plain == unset and len(evals(plain)) == 5                # base + 2 methods x 2 stages
    assert not any("--dataset-revisions" in c for c in plain)       # no pin: the same command (and params) as ever
    assert all(c.endswith(f"--threads 1 --dataset-revisions ai2d={PIN} > " + c.split(" > ")[1]) for c in evals(pinned))
    assert [c.replace(PIN, OTHER) for c in evals(pinned)] == evals(other)   # changing the pin changes each evaluation
    assert [c for c in pinned if " evaluate " not in c] == [c for c in plain if " evaluate " not in c]  # nothing else


# ---- the converted datasets: data.sources.<dataset>.revision (already there; checked here) -------
def test_converters_load_and_record_the_pinned_source_revision(tmp_path, monkeypatch):
    """A hub converter hands `revision` to load_dataset and records it with its commit in
    report.json (online from the hub, offline a commit sha as itself); the option is in the
    conversion rule's params."""
    from types import SimpleNamespace

    import datasets
    import huggingface_hub
    from fixtures.source_formats import jpeg, write_hub_split

    from lmmcl.data.sources import convert

    src = tmp_path / "src"
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, [{"image": jpeg(i), "question": f"q {i}?", "answer": "yes"} for i in range(2)],
                        "pathvqa")
    real, calls = datasets.load_dataset, []

    def load_dataset(path, split=None, revision=None, cache_dir=None, **kw):
        calls.append((path, split, revision))
        files = sorted(str(f) for f in src.rglob(f"{split}-*.parquet"))
        return real("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "c"))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info",
                        lambda self, repo, revision=None, **kw: SimpleNamespace(sha=PIN if revision == "v1.0" else OTHER))
    convert("pathvqa", tmp_path / "out", revision="v1.0")
    assert calls == [("flaviagiammarino/path-vqa", s, "v1.0") for s in ("train", "validation", "test")]
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["source"] == {"repo": "flaviagiammarino/path-vqa", "revision": "v1.0", "commit": PIN}

    def offline(self, *a, **kw):
        raise ConnectionError("offline")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", offline)
    convert("pathvqa", tmp_path / "out2", revision=OTHER)
    assert json.loads((tmp_path / "out2/report.json").read_text())["source"]["commit"] == OTHER

    p = subprocess.run([str(BIN / "snakemake"), "data/pathvqa/train.parquet", "-n", "-p", "--snakefile",
                        str(ROOT / "workflow/Snakefile"), "--directory", str(tmp_path / "w"),
                        "--configfile", str(ROOT / SMOKE),
                        "--config", "data={sources: {pathvqa: {revision: v1.0}}}"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"))
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert """--options '{"limit":null,"revision":"v1.0","seed":0}'""" in p.stdout   # a param of convert_pathvqa
