"""The parquet data contract shared by data preparation, training and evaluation.

One parquet file per dataset split. Images are embedded as PNG bytes with the
Hugging Face ``datasets`` ``Image`` feature, so ``datasets.load_dataset("parquet", ...)``
(and therefore lmms-eval) hands them back as PIL images. Every split has at least the
columns in :data:`REQUIRED_COLUMNS`; task-specific extra columns are allowed.

Files are written atomically (:func:`lmmcl.atomic.atomic_path`: temp file + ``os.replace``)
so that a killed or failed write never leaves a file under the final name -- Snakemake would
otherwise treat a half-written split as a finished output. Output is byte-for-byte deterministic for
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

from lmmcl.atomic import atomic_path

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

    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # no per-file progress bar in workflow logs
    try:
        with atomic_path(path) as tmp:
            ds.to_parquet(str(tmp))
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
    return path


def validate_split(path: str | os.PathLike, rows: bool = False) -> None:
    """Raise ``FileNotFoundError`` for a missing file, ``ValueError`` (naming the path) for a file
    that is not parquet or lacks a required column. With ``rows``: also for a split without rows
    or a row whose id/question/answer/task is not a non-empty string or whose image is not an
    image (naming the row index, its id and the column) -- cheap (image headers only), so
    training can check its data before loading a model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: data file not found (expected a parquet split of the data contract)")
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # ArrowInvalid: truncated, or not parquet at all
        raise ValueError(f"{path}: not a readable parquet file ({type(e).__name__}: {e}); expected a "
                         f"split written by `lmmcl make-data` / `lmmcl convert`") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    if rows:
        _validate_rows(path)


def _validate_rows(path: Path) -> None:
    f = pq.ParquetFile(path)
    if f.metadata.num_rows == 0:
        raise ValueError(f"{path}: no rows; a split needs at least one example")
    i = 0
    for batch in f.iter_batches(batch_size=1024, columns=list(REQUIRED_COLUMNS)):
        cols = batch.to_pydict()
        for j in range(batch.num_rows):
            rid = cols["id"][j]
            where = f"{path}: row {i + j}" + (f" (id {rid!r})" if isinstance(rid, str) and rid else "")
            for col in _STRING_COLUMNS:
                v = cols[col][j]
                if not isinstance(v, str) or not v:
                    raise ValueError(f"{where}: column {col!r} is {v!r}; allowed: a non-empty string")
            img = cols["image"][j]
            data = img.get("bytes") if isinstance(img, dict) else img
            if not isinstance(data, (bytes, bytearray)) or not data:
                raise ValueError(f"{where}: column 'image' holds no image bytes ({_short(img)}); "
                                 f"allowed: embedded image bytes (PNG/JPEG, the datasets Image feature)")
            try:
                with PILImage.open(io.BytesIO(data)) as im:  # reads the header only
                    im.size  # noqa: B018
            except Exception as e:
                raise ValueError(f"{where}: column 'image' is not a readable image ({type(e).__name__}, "
                                 f"{len(data)} bytes starting {bytes(data[:8])!r}); allowed: embedded image "
                                 f"bytes (PNG/JPEG, the datasets Image feature)") from None
        i += batch.num_rows


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_split(path: str | os.PathLike) -> datasets.Dataset:
    """Load one split; the ``image`` column decodes to PIL images on access."""
    validate_split(path)
    # Read with pyarrow directly: no trip through the HF datasets cache directory.
    # The features (Image included) come back from the schema's "huggingface" metadata.
    ds = datasets.Dataset(InMemoryTable(pq.read_table(path)))
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    return ds
