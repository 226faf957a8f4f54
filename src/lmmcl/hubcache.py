"""The Hugging Face caches as an offline job reads them: is a checkpoint, or a built-in benchmark's
dataset, there, and the error a job gives before any work when it is not
(docs/cluster_data_and_resources.md). `lmmcl prefetch` (lmmcl.prefetch) fills them.

Two caches, each read the way its loader reads it offline:
- checkpoints: huggingface_hub's cache (HF_HUB_CACHE, default $HF_HOME/hub), where transformers'
  `from_pretrained` finds `models--<owner>--<name>/snapshots/<commit>/` through `refs/<revision>`;
- built-in benchmarks: the *prepared* `datasets` cache. lmms-eval 0.7.3 loads a task's data with
  `datasets.load_dataset(dataset_path, dataset_name, cache_dir=...)` (ConfigurableTask.download), and
  datasets 5.2 offline never looks at hub snapshots for a hub dataset: it reloads
  `<cache>/<owner>___<name>/<config>/<version>/<hash>/` (CachedDatasetModuleFactory, then the
  packaged `cache` builder). A `snapshot_download` of the dataset repo would not be found.
lmms-eval moves that cache to node-local scratch (/local/scratch, /scratch or /tmp) when it sits on a
network file system (`_resolve_hf_datasets_cache_dir`), a folder no login node can fill, unless
LMMS_EVAL_DATASETS_CACHE names it: `pin_datasets_cache` sets it for the jobs and for prefetch.
A pinned dataset revision (config evaluation.revisions) is found by its prepared copy's folder name,
the commit; offline, datasets reloads the newest copy of a config whatever revision is asked, so the
check also wants the pinned copy to be the newest (`make_current`, done by prefetch).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

TRUE = {"1", "ON", "YES", "TRUE"}
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")  # a full git commit sha (hub revisions resolve to one)
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# the subcommands of the workflow's compute jobs; the local data rules' `convert` / `make-data` stay online
JOB_COMMANDS = {"build-base", "train-stage", "merge-stage", "evaluate", "probe-numbers", "probe-layers"}


def enter_job(command: str, environ=os.environ) -> bool:
    """In a workflow job (the Snakefile exports LMMCL_HUB_OFFLINE=1, config hub_offline_jobs), a
    compute subcommand runs offline: HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1, set before
    huggingface_hub is imported (it reads them once). Returns whether it did."""
    if environ.get("LMMCL_HUB_OFFLINE") != "1" or command not in JOB_COMMANDS:
        return False
    environ["HF_HUB_OFFLINE"] = "1"
    environ["HF_DATASETS_OFFLINE"] = "1"
    return True


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub (and so transformers) read it, at their import."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def datasets_offline() -> bool:
    """Offline for `datasets`: HF_DATASETS_OFFLINE when set, else HF_HUB_OFFLINE (datasets.config)."""
    value = os.environ.get("HF_DATASETS_OFFLINE")
    return hub_offline() if value is None else value.upper() in TRUE


def prefetch_command() -> str:
    """The command that fills the cache for this run: the workflow hands its config files to the
    job as LMMCL_CONFIGFILES (rules/common.smk)."""
    files = os.environ.get("LMMCL_CONFIGFILES", "").strip() or "<your config file(s)>"
    return f"lmmcl prefetch --configfile {files}"


def _offline_error(what: str, where, flag: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} is not in the Hugging Face cache ({where}) and this job runs offline ({flag}=1, config "
        f"hub_offline_jobs); fill the cache from a node with internet (the login node) with the same "
        f"HF_HOME: {prefetch_command()}")


# ---- checkpoints ----------------------------------------------------------------------------
def hub_repo(checkpoint: str) -> tuple[str, str | None] | None:
    """(repo id, revision) of a hub checkpoint ("owner/name" or "owner/name@revision"); None for a
    local folder."""
    from .models.io import split_revision

    repo, revision = split_revision(str(checkpoint))
    if Path(repo).expanduser().exists() or repo.startswith((".", "/", "~")) or repo.count("/") != 1:
        return None
    return repo, revision


def missing_model_files(folder: Path) -> list[str]:
    """What a complete checkpoint snapshot lacks: config.json, and the weights (every shard that
    the index names, else a single weights file)."""
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    index = next((folder / i for i in WEIGHT_INDEXES if (folder / i).is_file()), None)
    if index is not None:
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        missing += [s for s in shards if not (folder / s).is_file()]
    elif not any((folder / w).is_file() for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    return missing


def cached_model(repo: str, revision: str | None = None, cache_dir=None) -> tuple[Path | None, list[str]]:
    """(snapshot folder, missing files) of a hub checkpoint in the local cache, without network.
    (None, [why]) when no snapshot of that revision is cached."""
    import re

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except IncompleteSnapshotError as e:  # huggingface_hub's own tree listing shows missing files
        found = re.search(r"\d+ file\(s\) are missing \([^)]*\)", str(e))
        return None, [f"an interrupted download: {found.group(0) if found else 'files are missing'}"]
    except LocalEntryNotFoundError:
        return None, [f"no snapshot of revision {revision or 'main'}"]
    return folder, missing_model_files(folder)


def hub_cache_dir(cache_dir=None) -> str:
    from huggingface_hub import constants

    return str(cache_dir or constants.HF_HUB_CACHE)


def require_model(checkpoint: str, cache_dir=None) -> None:
    """An offline job's check of the checkpoint it will load (the hub root of a delta chain):
    nothing to do online or for a local folder; else FileNotFoundError naming the checkpoint,
    what is missing and the prefetch command."""
    repo = hub_repo(checkpoint)
    if repo is None or not hub_offline():
        return
    folder, missing = cached_model(*repo, cache_dir=cache_dir)
    if folder is None or missing:
        name = f"{repo[0]}@{repo[1] or 'main'}"
        detail = f"snapshot {folder} lacks {missing}" if folder else missing[0]
        raise _offline_error(f"checkpoint {name} ({detail})", hub_cache_dir(cache_dir), "HF_HUB_OFFLINE")


# ---- built-in benchmark datasets -------------------------------------------------------------
def datasets_cache_dir() -> str:
    """The `datasets` cache lmms-eval loads built-in tasks from once pinned: LMMS_EVAL_DATASETS_CACHE,
    else HF_DATASETS_CACHE, else $HF_HOME/datasets (lmms-eval's own order, without its move of a
    network file system's cache to node-local scratch)."""
    explicit = os.environ.get("LMMS_EVAL_DATASETS_CACHE", "").strip()
    if explicit:
        return os.path.expanduser(os.path.expandvars(explicit))
    home = os.path.expanduser(os.path.expandvars(os.environ.get("HF_HOME", "~/.cache/huggingface")))
    return os.path.expanduser(os.path.expandvars(os.environ.get("HF_DATASETS_CACHE", os.path.join(home, "datasets"))))


def pin_datasets_cache() -> str:
    """Make lmms-eval use `datasets_cache_dir()` (the one prefetch fills) on every node."""
    os.environ.setdefault("LMMS_EVAL_DATASETS_CACHE", datasets_cache_dir())
    return os.environ["LMMS_EVAL_DATASETS_CACHE"]


def dataset_commit(path: str, revision: str | None = None) -> str | None:
    """The commit that `revision` (None: main) of hub dataset `path` names, without network: the
    revision itself when it is a full commit sha, else the hub cache's `refs/<revision>` (written
    when `datasets` downloads the dataset card at that revision), else None."""
    rev = revision or "main"
    if COMMIT_RE.match(rev):
        return rev
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"datasets--{path.replace('/', '--')}" / "refs" / rev
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def prepared_copy(path: str, name: str | None, commit: str, cache_dir=None) -> Path | None:
    """The prepared folder of config `name` at `commit` (`<owner>___<name>/<config>/<version>/<commit>/`:
    datasets names a hub dataset's prepared copy after the commit it was built from), or None."""
    from datasets.naming import camelcase_to_snakecase

    owner, _, base = path.rpartition("/")
    base = camelcase_to_snakecase(base)
    root = Path(cache_dir or datasets_cache_dir()) / (f"{owner}___{base}" if owner else base)
    found = sorted(p for p in root.glob(f"{name or '*'}/*/{commit}") if (p / "dataset_info.json").is_file())
    return found[0] if found else None


def make_current(path: str, name: str | None, revision: str, cache_dir=None) -> Path | None:
    """Offline, datasets 5.2 reloads the NEWEST prepared copy of a config whatever revision is
    asked (`_find_hash_in_cache`: latest modification time). Make the copy of `revision` the newest
    (its folder's mtime = now) so that offline jobs load it; returns it (None: not cached)."""
    commit = dataset_commit(path, revision)
    folder = prepared_copy(path, name, commit, cache_dir) if commit else None
    if folder is not None:
        os.utime(folder)
    return folder


def cached_dataset(path: str, name: str | None, split: str | None = None, cache_dir=None,
                   revision: str | None = None) -> Path | None:
    """The prepared cache folder that `datasets.load_dataset(path, name, cache_dir=...)` reloads
    offline (datasets 5.2: CachedDatasetModuleFactory + the packaged `cache` builder), without
    network; None when it is missing or lacks `split`, or, with a pinned `revision`, when that
    folder is not the copy of that revision (offline datasets loads the newest copy, whatever
    revision is asked: `make_current`)."""
    from datasets.packaged_modules.cache.cache import Cache

    cache_dir = cache_dir or datasets_cache_dir()
    try:
        builder = Cache(cache_dir=cache_dir, dataset_name=path.split("/")[-1], repo_id=path, config_name=name,
                        version="auto", hash="auto")
    except (ValueError, FileNotFoundError):  # "Couldn't find cache for <path> for config ..."
        return None
    folder = Path(builder.cache_dir)
    if not (folder / "dataset_info.json").is_file() or (split and split not in (builder.info.splits or {})):
        return None
    if revision and folder.name != dataset_commit(path, revision):
        return None
    return folder


def loaded_commit(path: str, name: str | None, revision: str | None = None, cache_dir=None) -> str | None:
    """The commit of the copy `load_dataset(path, name, revision=...)` loads, read from the caches
    only: offline the newest prepared copy's (what datasets reloads; the evaluation's check made
    sure it is the pinned one), online the commit `revision` names (`dataset_commit`). None: unknown."""
    if datasets_offline():
        folder = cached_dataset(path, name, None, cache_dir)
        return folder.name if folder is not None and COMMIT_RE.match(folder.name) else None
    return dataset_commit(path, revision)


def _pin_problem(path: str, name: str | None, revision: str, cache_dir) -> str:
    """Why a pinned dataset does not count as cached (for the offline error)."""
    commit = dataset_commit(path, revision)
    if commit is None:
        return (f"; revision {revision} is not a commit sha and the hub cache has no refs/{revision} for it: "
                f"pin a commit, or prefetch with the same HF_HOME")
    if prepared_copy(path, name, commit, cache_dir) is None:
        return f"; no prepared copy of commit {commit}"
    newest = cached_dataset(path, name, None, cache_dir)
    if newest is not None and newest.name == commit:
        return f"; the copy of commit {commit} lacks the split"
    return (f"; the copy of commit {commit} is cached but offline datasets loads the newest copy, commit "
            f"{newest.name if newest else '?'}: prefetch makes the pinned one the newest")


def require_datasets(benchmarks: list[str], cache_dir=None, revisions: dict | None = None) -> None:
    """An offline evaluation's check of the built-in benchmarks it loads from the hub: each task's
    dataset (lmms-eval's YAML) is prepared in the cache, at the pinned revision where `revisions`
    ({benchmark: revision}, config evaluation.revisions) names one, else FileNotFoundError naming
    them all."""
    if not benchmarks or not datasets_offline():
        return
    from .evaluation import taskgen

    reg = taskgen.registry()
    cache_dir = cache_dir or datasets_cache_dir()
    missing = []
    for b in benchmarks:
        ds = taskgen.builtin_dataset(reg[b]["task"])
        rev = (revisions or {}).get(b)
        if cached_dataset(ds["path"], ds["name"], ds["split"], cache_dir, revision=rev) is None:
            config = f", config {ds['name']}" if ds["name"] else ""
            pin = f", revision {rev}" if rev else ""
            why = _pin_problem(ds["path"], ds["name"], rev, cache_dir) if rev else ""
            missing.append(f"benchmark {b!r} (dataset {ds['path']}{config}{pin}, split {ds['split']}{why})")
    if missing:
        raise _offline_error("; ".join(missing), cache_dir, "HF_DATASETS_OFFLINE")
