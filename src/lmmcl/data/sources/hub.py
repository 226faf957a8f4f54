"""The loop shared by converters of hub datasets whose rows already hold the image."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .common import BadItem, Report, check_image, load_hub_split, progress, source_revision, take, write_dataset

# row_fn(row, index, split) -> record without "image"/"task" (raise BadItem to skip the row)
RowFn = Callable[[dict, int, str], dict]


def convert_hub(dataset: str, out_dir, row_fn: RowFn, *, repo: str, splits: dict[str, str],
                seed: int = 0, limit: int | None = None, revision: str | None = None,
                path: str | None = None, cache_dir: str | None = None, image_column: str = "image",
                features: dict | None = None, post: Callable[[dict[str, list[dict]], Report], dict] | None = None,
                rows: dict | None = None) -> Report:
    """Convert ``splits`` (``{our split: hub split}``) of ``repo`` with ``row_fn``.

    ``rows`` may give the rows of a split directly (``{hub split: Dataset}``), instead of loading
    them; ``post`` may regroup the converted splits (e.g. a seeded train/test partition).
    """
    report = Report(dataset, source_revision(repo, path=path, revision=revision), seed=seed, limit=limit)
    out: dict[str, list[dict]] = {}
    for split, hub_split in splits.items():
        ds = (rows or {}).get(hub_split)
        if ds is None:
            ds = load_hub_split(repo, hub_split, path=path, revision=revision, cache_dir=cache_dir)
        records: list[dict] = []
        for idx, row in enumerate(progress(ds, desc=f"{dataset} {split}", unit=" ex")):
            if not take(limit, len(records)):
                break
            report.seen(split)
            rid = f"{dataset}_{idx:05d}"
            try:
                rec = row_fn(row, idx, split)
                rid = rec.get("id", rid)
                image = check_image(row.get(image_column))
            except BadItem as e:
                report.skip(split, rid, str(e))
                continue
            records.append({"id": rid, "image": image, "question": rec["question"], "answer": rec["answer"],
                            "task": dataset, **{k: v for k, v in rec.items() if k not in ("id", "question", "answer")}})
            report.kept(split)
        out[split] = records
    if post is not None:
        out = post(out, report)
    write_dataset(Path(out_dir), out, report, features=features)
    return report


def text(value, what: str) -> str:
    """A non-empty stripped string, or :class:`BadItem` naming ``what``."""
    s = "" if value is None else str(value).strip()
    if not s:
        raise BadItem(f"empty {what}")
    return s


def hub_kwargs(kw: dict) -> dict:
    """The options of a converter that :func:`convert_hub` takes (others are ignored)."""
    return {k: kw[k] for k in ("revision", "path", "cache_dir", "rows") if k in kw}
