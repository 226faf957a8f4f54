"""The parquet data contract shared by data preparation, training and evaluation.

One parquet file per dataset split. Images are embedded as PNG bytes with the
Hugging Face ``datasets`` ``Image`` feature, so ``datasets.load_dataset("parquet", ...)``
(and therefore lmms-eval) hands them back as PIL images. Every split has at least the
columns in :data:`REQUIRED_COLUMNS`; task-specific extra columns are allowed.

Files are written atomically (temp file + ``os.replace``) so that a killed or failed
write never leaves a file under the final name -- Snakemake would otherwise treat a
half-written split as a finished output. Output is byte-for-byte deterministic for
identical records, which keeps workflow outputs reproducible and comparable by hash.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
from datasets.table import InMemoryTable
from PIL import Image as PILImage

REQUIRED_COLUMNS = ("id", "image", "question", "answer", "task")
_STRING_COLUMNS = ("id", "question", "answer", "task")


def _png_bytes(image: PILImage.Image) -> bytes:
    # Encode ourselves (instead of letting `datasets` pick a format from image.format)
    # so that the stored bytes depend only on the pixels.
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _encode_image(value: Any, record_id: str) -> dict:
    if isinstance(value, PILImage.Image):
        return {"bytes": _png_bytes(value), "path": None}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value), "path": None}
    if isinstance(value, dict) and isinstance(value.get("bytes"), (bytes, bytearray)):
        return {"bytes": bytes(value["bytes"]), "path": None}
    raise ValueError(
        f"record {record_id!r}: column 'image' must be a PIL image or bytes, "
        f"got {type(value).__name__}"
    )


def _validate_records(records: list[dict]) -> None:
    if not records:
        raise ValueError("no records to write")
    seen: set[str] = set()
    for i, rec in enumerate(records):
        rid = rec.get("id")
        label = repr(rid) if isinstance(rid, str) and rid else f"#{i}"
        missing = [c for c in REQUIRED_COLUMNS if c not in rec]
        if missing:
            raise ValueError(f"record {label}: missing required column(s) {missing}")
        for col in _STRING_COLUMNS:
            if not isinstance(rec[col], str) or not rec[col]:
                raise ValueError(
                    f"record {label}: column {col!r} must be a non-empty string, "
                    f"got {rec[col]!r}"
                )
        if rid in seen:
            raise ValueError(f"duplicate record id {rid!r}")
        seen.add(rid)
    columns = set(records[0])
    for rec in records[1:]:
        if set(rec) != columns:
            diff = sorted(set(rec) ^ columns)
            raise ValueError(
                f"record {rec['id']!r}: columns differ from the first record's: {diff}"
            )


def _features(records: list[dict], features: dict | None) -> datasets.Features:
    given = dict(features or {})
    to_infer = [c for c in records[0] if c not in REQUIRED_COLUMNS and c not in given]
    inferred = (
        datasets.Dataset.from_list([{c: rec[c] for c in to_infer} for rec in records]).features
        if to_infer
        else {}
    )
    feats: dict[str, Any] = {}
    for col in records[0]:  # keep the column order of the records
        if col == "image":
            feats[col] = datasets.Image()
        elif col in _STRING_COLUMNS:
            feats[col] = datasets.Value("string")
        else:
            feats[col] = given[col] if col in given else inferred[col]
    return datasets.Features(feats)


def write_split(records: list[dict], path: str | os.PathLike, features: dict | None = None) -> Path:
    """Validate ``records`` and write them atomically to the parquet file ``path``.

    Raises ``ValueError`` naming the offending record id / column if a record lacks a
    required column, has an empty string field or a non-image ``image``, or if ids repeat.
    Extra columns are inferred unless their type is given in ``features``.
    """
    path = Path(path)
    _validate_records(records)
    rows = [{**rec, "image": _encode_image(rec["image"], rec["id"])} for rec in records]
    ds = datasets.Dataset.from_list(rows, features=_features(records, features))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # no per-file progress bar in workflow logs
    try:
        ds.to_parquet(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
    return path


def validate_split(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` (with the path and missing columns) if ``path`` breaks the contract."""
    path = Path(path)
    names = pq.read_schema(path).names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}")


def read_split(path: str | os.PathLike) -> datasets.Dataset:
    """Load one split; the ``image`` column decodes to PIL images on access."""
    validate_split(path)
    # Read with pyarrow directly: no trip through the HF datasets cache directory.
    # The features (Image included) come back from the schema's "huggingface" metadata.
    ds = datasets.Dataset(InMemoryTable(pq.read_table(path)))
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    return ds
