"""Helpers shared by the real-dataset converters.

* :class:`Report` collects what a conversion did (counts per split, every skipped item with
  its reason, the source revision) and is written as ``report.json`` next to the splits.
* :func:`check_image` decodes an image fully (a truncated or corrupt file raises
  :class:`BadItem`, so the item is skipped and recorded instead of crashing the run).
* :func:`convert_rows` is the loop of every row-by-row converter: one record per usable row, up
  to ``limit`` per split, every other row recorded with its reason.
* :func:`write_dataset` writes every split first under temporary names and only then renames
  them all, so a failing conversion never leaves a partial parquet under a final name.
* :func:`redact` removes secrets (the values of :data:`SECRET_ENV_VARS`: the Flickr credentials
  and the hub token) from any text that is logged or written.
* :func:`load_hub_split` reads one split of a hub dataset through ``datasets`` (user's cache,
  works with ``HF_DATASETS_OFFLINE=1`` when the cache is filled) or from a local copy in the
  hub's file layout (``<dir>/**/<split>-*.parquet``), which is what the tests use.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from PIL import Image as PILImage

from lmmcl.atomic import atomic_paths, atomic_write_text
from lmmcl.data import contract
from lmmcl.hashing import sha256_file
from lmmcl.layout import SOURCE_REPORT, split_file

# Every secret the project may use. They are read from the environment only (Flickr by
# flickr.credentials_from_env, the hub token by huggingface_hub itself), never from a config file
# or a command-line argument (lmmcl.data.sources.reject_secret_options), and redact() removes
# their values from whatever is logged or written.
SECRET_ENV_VARS = ("FLICKR_API_KEY", "FLICKR_API_SECRET", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")


class BadItem(Exception):
    """One source item that cannot be converted; the message is the recorded reason, ``item`` the
    id it is recorded under (default: the converter's id of the row)."""

    def __init__(self, reason: str, item: str | None = None):
        super().__init__(reason)
        self.item = item


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr (the rules' logs)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("mininterval", 2.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret (default: the values of :data:`SECRET_ENV_VARS`) replaced by ``***``."""
    values = list(secrets) if secrets is not None else [os.environ.get(v, "") for v in SECRET_ENV_VARS]
    for s in sorted((s for s in values if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def check_image(value: Any) -> bytes:
    """Return the encoded bytes of an image after decoding it fully; raise :class:`BadItem`.

    ``value`` may be raw bytes, a ``{"bytes": ..., "path": ...}`` dict (``datasets`` Image with
    ``decode=False``), a path or a PIL image. Bytes are kept as they are (a JPEG stays a
    JPEG); a PIL image is stored as PNG.
    """
    if isinstance(value, PILImage.Image):
        return contract._png_bytes(value)
    data = None
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None and value.get("path"):
            value = value["path"]
    if isinstance(value, (str, os.PathLike)) and data is None:
        try:
            data = Path(value).read_bytes()
        except OSError as e:
            raise BadItem(f"image file unreadable: {e.strerror or e}") from None
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    if not data:
        raise BadItem("image missing or empty")
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            im.load()  # full decode: truncated files fail here
            if im.width < 1 or im.height < 1:
                raise BadItem("image has no pixels")
    except BadItem:
        raise
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise BadItem(f"corrupt image: {type(e).__name__}: {e}") from None
    return bytes(data)


class Report:
    """What a conversion did, written as ``report.json`` (never containing secrets)."""

    def __init__(self, dataset: str, source: dict, seed: int | None = None, limit: int | None = None):
        self.dataset = dataset
        self.source = dict(source)
        self.seed = seed
        self.limit = limit
        self.counts: dict[str, dict[str, int]] = {}
        self.skipped: list[dict] = []
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}

    def _c(self, split: str) -> dict:
        return self.counts.setdefault(split, {"seen": 0, "kept": 0, "skipped": 0})

    def seen(self, split: str, n: int = 1):
        self._c(split)["seen"] += n

    def kept(self, split: str, n: int = 1):
        self._c(split)["kept"] += n

    def skip(self, split: str, item: str, reason: str):
        self._c(split)["skipped"] += 1
        self.skipped.append({"split": split, "id": str(item), "reason": redact(str(reason))})

    def note(self, text: str):
        self.notes.append(redact(text))

    def to_dict(self) -> dict:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            key = s["reason"].split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        return {
            "dataset": self.dataset,
            "source": self.source,
            "seed": self.seed,
            "limit": self.limit,
            "counts": self.counts,
            "skipped_by_reason": dict(sorted(reasons.items())),
            "skipped": self.skipped,
            "notes": self.notes,
            **self.extra,
        }

    def dumps(self) -> str:
        return redact(json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)) + "\n"

    def why_empty(self, split: str, examples: int = 3) -> str:
        """The skip counts by reason and the first few skipped items (of ``split`` if it has
        any, else of every split): what to look at when a split came out empty."""
        mine = [s for s in self.skipped if s["split"] == split] or self.skipped
        seen = self.counts.get(split, {}).get("seen")
        text = (f"{seen} row(s) read, " if seen is not None else "") + \
            f"skipped by reason: {self.to_dict()['skipped_by_reason']}"
        if mine:
            text += "; e.g. " + "; ".join(f"{s['id']}: {s['reason']}" for s in mine[:examples])
        return text

    def summary(self) -> str:
        parts = [f"{s}: {c['kept']} kept, {c['skipped']} skipped" for s, c in self.counts.items()]
        return f"{self.dataset}: " + "; ".join(parts)


def write_dataset(out_dir: str | os.PathLike, splits: dict[str, list[dict]], report: Report,
                  features: dict | None = None) -> dict[str, Path]:
    """Write ``<out_dir>/<split>.parquet`` for every split, then ``report.json``.

    All splits are first written under temporary names; only when every one succeeded are
    they renamed to their final names, and the report is written last. A split without a
    single usable record is an error (naming the split and the main skip reasons).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        if not records:
            raise ValueError(f"{report.dataset}: split {split!r} has no usable record "
                             f"({report.why_empty(split)}); nothing was written")
    finals = {split: out_dir / split_file(split) for split in splits}
    with atomic_paths(finals.values()) as tmps:
        for (split, records), tmp in zip(splits.items(), tmps):
            contract.write_split(records, tmp, features=features)
    atomic_write_text(out_dir / SOURCE_REPORT, report.dumps())
    return finals


# --------------------------------------------------------------------------- hub datasets
def _local_files(path: Path, split: str) -> list[Path]:
    if path.is_file():
        return [path]
    found = []
    for ext in ("parquet", "arrow"):
        for pattern in (f"{split}.{ext}", f"{split}-*.{ext}", f"**/{split}.{ext}", f"**/{split}-*.{ext}"):
            found += path.glob(pattern)
    return sorted(set(found))


def load_hub_split(repo: str, split: str, *, path: str | None = None, revision: str | None = None,
                   cache_dir: str | None = None):
    """One split as a ``datasets.Dataset`` with its image columns left undecoded.

    ``path``: a local copy in the hub's file layout (a folder holding ``<split>-*.parquet`` or
    ``.arrow`` files, possibly under ``data/``), or one file; otherwise ``repo`` is loaded from
    the hub through ``datasets`` (the user's cache; offline with ``HF_DATASETS_OFFLINE=1``).
    """
    import datasets

    if path:
        files = _local_files(Path(path), split)
        if not files:
            raise FileNotFoundError(f"{path}: no {split}.parquet / {split}-*.parquet / .arrow file for split {split!r}")
        builder = "arrow" if files[0].suffix == ".arrow" else "parquet"
        ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train",
                                   cache_dir=cache_dir)
    else:
        ds = datasets.load_dataset(repo, split=split, revision=revision, cache_dir=cache_dir)
    for col, feat in ds.features.items():
        if isinstance(feat, datasets.Image):
            ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds


def source_revision(repo: str, *, path: str | None = None, revision: str | None = None) -> dict:
    """Where the data came from: the hub commit (online, or from the local hub cache), or the
    local files with their sha256."""
    if path:
        p = Path(path)
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        return {"local_path": str(p), "files": {str(f.relative_to(p) if f != p else f.name): sha256_file(f) for f in files}}
    rev = {"repo": repo, "revision": revision or "main", "commit": None}
    try:
        from huggingface_hub import HfApi

        rev["commit"] = HfApi().dataset_info(repo, revision=revision).sha
    except Exception:
        try:  # offline: a commit sha is its own commit, else the hub cache's refs/<revision>
            from lmmcl.hubcache import dataset_commit

            rev["commit"] = dataset_commit(repo, revision)
        except Exception:
            pass
    return rev


def take(limit: int | None, kept: int) -> bool:
    """Whether to keep converting (``limit`` = number of kept records per split)."""
    return limit is None or kept < limit


def convert_rows(rows: Iterable, make_record: Callable[[dict, int], dict], *, split: str, report: Report,
                 limit: int | None, skip_id: Callable[[dict, int], str], desc: str, unit: str = " ex") -> list[dict]:
    """The records of one split: ``make_record(row, index)`` for each row until ``limit`` are kept.

    A row whose ``make_record`` raises :class:`BadItem` is skipped and recorded in ``report``
    with its reason, under the id the error names, else ``skip_id(row, index)``."""
    records: list[dict] = []
    for idx, row in enumerate(progress(rows, desc=desc, unit=unit)):
        if not take(limit, len(records)):
            break
        report.seen(split)
        try:
            rec = make_record(row, idx)
        except BadItem as e:
            report.skip(split, e.item or skip_id(row, idx), str(e))
            continue
        records.append(rec)
        report.kept(split)
    return records
