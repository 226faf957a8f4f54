"""`lmmcl prefetch --configfile CONFIG`: fill the Hugging Face cache, from a node with internet
(the login node), with everything the compute jobs of a config load from the hub, so that they
can run offline (docs/cluster_data_and_resources.md):

- the base checkpoint `model.checkpoint` at `model.revision` (a hub id; the tiny family and local
  folders need nothing): `huggingface_hub.snapshot_download` into the hub cache, where
  transformers' `from_pretrained` finds it offline;
- the dataset of every built-in lmms-eval benchmark the config evaluates (registry `builtin: true`),
  named by lmms-eval's own task YAML: `datasets.load_dataset` with lmms-eval 0.7.3's arguments,
  which leaves the prepared dataset that lmms-eval reloads offline (lmmcl.hubcache explains why a
  snapshot of the dataset repo would not do), at the revision `evaluation.revisions` pins (that
  copy then made the newest, the one datasets reloads offline).
Each item's line names the commit the cache holds, and how to pin it when it is unpinned.

The real datasets the config trains on are not fetched here: Snakemake's local rules
`convert_<dataset>` download and convert them on the submitting node (docs/data.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import hubcache

# dataset_kwargs keys that lmms-eval's ConfigurableTask.download pops before load_dataset
LMMS_CONTROL_KEYS = {"force_download", "force_unzip", "local_files_only", "create_link"}
# dataset_kwargs of tasks whose data is not one load_dataset call (videos, YouTube, saved folders)
UNSUPPORTED_KEYS = {"video", "From_YouTube", "load_from_disk", "builder_script"}


@dataclass
class Item:
    """One thing to have in the cache: a checkpoint or a built-in benchmark's dataset."""

    kind: str  # "checkpoint" | "dataset"
    repo: str
    revision: str | None = None  # checkpoint: model.revision; dataset: evaluation.revisions
    name: str | None = None  # dataset: lmms-eval's dataset_name (the datasets config)
    split: str | None = None  # dataset: the split evaluated (test_split)
    kwargs: dict = field(default_factory=dict)  # dataset: lmms-eval's dataset_kwargs
    benchmarks: list = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.kind == "checkpoint":
            return f"checkpoint {self.repo}@{self.revision or 'main'}"
        config = f" ({self.name})" if self.name else ""
        pin = f"@{self.revision}" if self.revision else ""
        return f"dataset {self.repo}{pin}{config} for {', '.join(self.benchmarks)}"


def checkpoint_item(cfg: dict) -> Item | None:
    """The base checkpoint, when it is a hub id (None for the tiny family and local folders)."""
    model = cfg.get("model") or {}
    if model.get("family") == "tiny_llava" or not model.get("checkpoint"):
        return None
    repo = hubcache.hub_repo(model["checkpoint"])
    if repo is None:
        return None
    return Item("checkpoint", repo[0], revision=model.get("revision") or repo[1])


def dataset_items(benchmarks: list[str]) -> list[Item]:
    """One item per distinct dataset of the built-in benchmarks among `benchmarks`."""
    from .evaluation import taskgen

    reg = taskgen.registry()
    items: dict = {}
    for b in benchmarks:
        if not taskgen.is_builtin(reg[b]):
            continue
        ds = taskgen.builtin_dataset(reg[b]["task"])
        bad = sorted(UNSUPPORTED_KEYS & set(ds["kwargs"]))
        if bad:
            raise ValueError(f"benchmark {b!r}: lmms-eval task {reg[b]['task']} loads its data with dataset_kwargs "
                             f"{bad}, which lmmcl prefetch does not handle; run it once online instead")
        key = (ds["path"], ds["name"])
        if key not in items:
            items[key] = Item("dataset", ds["path"], name=ds["name"], split=ds["split"], kwargs=ds["kwargs"])
        items[key].benchmarks.append(b)
    return list(items.values())


def pin_items(items: list[Item], revisions: dict) -> list[Item]:
    """Dataset items at the revision `evaluation.revisions` pins ({benchmark: revision}): `revision`
    set and added to the load_dataset arguments, as the evaluation's task wrapper does (taskgen)."""
    for item in items:
        if item.kind != "dataset":
            continue
        pins = {revisions.get(b) for b in item.benchmarks}
        if len(pins) > 1:  # offline, datasets reloads one copy per dataset config
            raise ValueError(f"evaluation.revisions: {item.benchmarks} read the same dataset {item.repo} "
                             f"({item.name or 'default'}); pin them to one revision: {sorted(map(str, pins))}")
        rev = pins.pop() if pins else None
        if rev:
            item.revision, item.kwargs = rev, {**item.kwargs, "revision": rev}
    return items


def plan_items(cfg: dict) -> list[Item]:
    """Everything the config's compute jobs load from the hub (checks the config like the workflow)."""
    from .config import Plan

    plan = Plan(cfg)
    ckpt = checkpoint_item(cfg)
    return ([ckpt] if ckpt else []) + pin_items(dataset_items(plan.benchmarks), plan.dataset_revisions)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (hub snapshots are symlinks to blobs: their targets count)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _quiet_datasets():
    """datasets' logger at error level while the cache is probed (it warns for every lookup)."""
    from contextlib import contextmanager

    from datasets.utils import logging as ds_logging

    @contextmanager
    def quiet():
        level = ds_logging.get_verbosity()
        ds_logging.set_verbosity_error()
        try:
            yield
        finally:
            ds_logging.set_verbosity(level)

    return quiet()


def cached(item: Item) -> Path | None:
    """The item's folder in the local cache when it is complete there (no network)."""
    if item.kind == "checkpoint":
        folder, missing = hubcache.cached_model(item.repo, item.revision)
        return folder if folder is not None and not missing else None
    with _quiet_datasets():
        return hubcache.cached_dataset(item.repo, item.name, item.split, _dataset_cache_dir(item),
                                       revision=item.revision)


def _dataset_cache_dir(item: Item) -> str:
    return item.kwargs.get("cache_dir") or hubcache.datasets_cache_dir()


def fetch(item: Item) -> Path:
    """Download the item into the cache (network); returns its folder there."""
    if item.kind == "checkpoint":
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(item.repo, revision=item.revision))
    import datasets

    # lmms-eval's call (ConfigurableTask.download), minus its own control keys; its `token: True`
    # (a token required) becomes the default: the stored token if any, so public datasets need none
    kwargs = {k: v for k, v in item.kwargs.items()
              if k not in LMMS_CONTROL_KEYS and k != "cache_dir" and not (k == "token" and v is True)}
    datasets.load_dataset(path=item.repo, name=item.name, cache_dir=_dataset_cache_dir(item),
                          download_mode=datasets.DownloadMode.REUSE_DATASET_IF_EXISTS, num_proc=1, **kwargs)
    if item.revision:  # offline jobs reload the newest copy: make it the pinned one (hubcache.make_current)
        hubcache.make_current(item.repo, item.name, item.revision, _dataset_cache_dir(item))
    folder = cached(item)
    if folder is None:
        at = f" at revision {item.revision}" if item.revision else ""
        raise RuntimeError(f"load_dataset finished but no prepared copy{at} with split {item.split!r} is in "
                           f"{_dataset_cache_dir(item)}")
    return folder


def human(n: float) -> str:
    """Bytes as B / KiB / MiB / GiB / TiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _commit_note(item: Item, folder: Path) -> str:
    """The commit the cache holds (a checkpoint's snapshot, a dataset's prepared copy: both folders
    are named after it), and how to pin it when model.revision / evaluation.revisions leave it unset."""
    commit = folder.name
    if item.kind != "checkpoint":
        if not hubcache.COMMIT_RE.match(commit):
            return ""
        pins = ", ".join(f"{b}: {commit}" for b in item.benchmarks)
        pin = "" if item.revision else f"; unpinned: pin it with `evaluation.revisions: {{{pins}}}`"
        return f" (commit {commit}{pin})"
    pin = "" if item.revision else f"; model.revision is unset: pin it with `model.revision: {commit}`"
    return f" (commit {commit}{pin})"


def run(configfiles: list[str], dry_run: bool = False, out=print) -> dict:
    """Fetch (or with `dry_run` only list) what the config needs; `out`s one line per item and a
    summary. Returns {"fetched", "cached", "missing", "failed"} (lists of (label, bytes or
    reason)); raises ValueError naming every item that failed, or when items are missing and this
    shell is offline."""
    from .config import load_configfiles

    items = plan_items(load_configfiles(configfiles))
    hubcache.pin_datasets_cache()  # the same datasets cache the jobs read (lmmcl.hubcache)
    files = " ".join(configfiles)
    if not items:
        out(f"nothing to fetch: {files} loads no hub checkpoint and no built-in lmms-eval benchmark")
        return {"fetched": [], "cached": [], "missing": [], "failed": []}
    out(f"{'dry run: ' if dry_run else ''}{len(items)} item(s) for {files}; hub cache "
        f"{hubcache.hub_cache_dir()}, datasets cache {hubcache.datasets_cache_dir()}")
    offline = hubcache.hub_offline() or hubcache.datasets_offline()
    result: dict = {"fetched": [], "cached": [], "missing": [], "failed": []}
    for i, item in enumerate(items, 1):
        mode = "dry run" if dry_run else "offline" if offline else "fetch"
        outcome, value = _one(item, f"[{i}/{len(items)}] {item.label}", mode, out)
        result[outcome].append((item.label, value))
    _summary(result, dry_run, out)
    if offline and result["missing"] and not dry_run:
        raise ValueError(f"{len(result['missing'])} item(s) are not cached and HF_HUB_OFFLINE or HF_DATASETS_OFFLINE "
                         f"is set in this shell; prefetch needs the network: run it without them (the workflow "
                         f"sets them for its compute jobs only)")
    if result["failed"]:
        raise ValueError("could not fetch " + "; ".join(f"{label} ({reason})" for label, reason in result["failed"])
                         + ". Gated or private repos need `hf auth login` or HF_TOKEN; rerun to resume")
    return result


def _one(item: Item, tag: str, mode: str, out) -> tuple[str, object]:
    """("cached" | "fetched", bytes) or ("missing" | "failed", reason) of one item, with its line(s);
    `mode`: "fetch", or "dry run" / "offline" (list only)."""
    folder = cached(item)
    if folder is not None:
        size = folder_bytes(folder)
        out(f"{tag}: already cached, {human(size)}{_commit_note(item, folder)}")
        return "cached", size
    if mode != "fetch":
        out(f"{tag}: {'would fetch' if mode == 'dry run' else 'NOT CACHED'}")
        return "missing", "not cached"
    out(f"{tag}: fetching ...")
    t0 = time.time()
    try:
        folder = fetch(item)
    except Exception as e:  # one failure must not stop the others; all are named at the end
        text = str(e).strip()
        reason = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
        out(f"{tag}: FAILED: {reason}")
        return "failed", reason
    size = folder_bytes(folder)
    out(f"{tag}: fetched, {human(size)} in {time.time() - t0:.0f} s{_commit_note(item, folder)}")
    return "fetched", size


def _summary(result: dict, dry_run: bool, out) -> None:
    total = lambda key: human(sum(size for _, size in result[key]))  # noqa: E731
    parts = [f"{len(result['cached'])} already cached ({total('cached')})"]
    if dry_run:
        parts.insert(0, f"{len(result['missing'])} to fetch")
        out("dry run: " + ", ".join(parts) + "; nothing was downloaded")
        return
    parts.insert(0, f"{len(result['fetched'])} fetched ({total('fetched')})")
    if result["missing"]:
        parts.append(f"{len(result['missing'])} NOT CACHED")
    if result["failed"]:
        parts.append(f"{len(result['failed'])} FAILED")
    out("summary: " + ", ".join(parts))
