"""The loop shared by converters of hub datasets whose rows already hold the image."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .common import BadItem, Report, check_image, convert_rows, load_hub_split, source_revision, write_dataset

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

    def default_id(row, idx):
        return f"{dataset}_{idx:05d}"

    for split, hub_split in splits.items():
        ds = (rows or {}).get(hub_split)
        if ds is None:
            ds = load_hub_split(repo, hub_split, path=path, revision=revision, cache_dir=cache_dir)

        def make_record(row, idx, split=split):
            rec = row_fn(row, idx, split)
            rid = rec.get("id", default_id(row, idx))
            try:
                return contract_record(dataset, rid, rec, check_image(row.get(image_column)))
            except BadItem as e:  # recorded under the row's own id
                raise BadItem(str(e), item=rid) from None

        out[split] = convert_rows(ds, make_record, split=split, report=report, limit=limit, skip_id=default_id,
                                  desc=f"{dataset} {split}")
    if post is not None:
        out = post(out, report)
    write_dataset(Path(out_dir), out, report, features=features)
    return report


def contract_record(dataset: str, rid: str, rec: dict, image: bytes) -> dict:
    """A record of the data contract from a converter's row record (question, answer, extra columns)."""
    return {"id": rid, "image": image, "question": rec["question"], "answer": rec["answer"], "task": dataset,
            **{k: v for k, v in rec.items() if k not in ("id", "question", "answer")}}


def text(value, what: str) -> str:
    """A non-empty stripped string, or :class:`BadItem` naming ``what``."""
    s = "" if value is None else str(value).strip()
    if not s:
        raise BadItem(f"empty {what}")
    return s


def hub_kwargs(kw: dict) -> dict:
    """The options of a converter that :func:`convert_hub` takes (others are ignored)."""
    return {k: kw[k] for k in ("revision", "path", "cache_dir", "rows") if k in kw}
