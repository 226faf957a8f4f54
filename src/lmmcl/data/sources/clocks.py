"""TimeClock (target 5) and the clock eval sets (``cococlock``, ``openimgclock``).

Every clock record: question ``What time does the clock show in this image?`` (or the
source's own question with any ``<image>`` token removed), answer ``HH:MM`` (zero-padded),
plus integer ``hour`` and ``minute`` columns. The time is read from the source's
``hour``/``minute`` columns when present, else parsed from its ``answer`` text as the study's
``parse_time`` does (``lmms-eval/lmms_eval/tasks/timeclock/utils.py`` in jessemelpolio/LMM_CL):
the first ``H:MM`` anywhere in the text ("The time is 3:45", "03:45:10" -> 3:45), else the first
two integers ("3 45"); here the time must also be valid (hour 0-23, minute 0-59): the first
valid ``H:MM`` wins. Rows without one are skipped with the text in the reason; a split
without a single readable row is an error.

Eval sets: ``AvaXiao/clockreading-time`` (``timeclock``), ``Jessemel/clockreading-coco``
(``cococlock``), ``Jessemel/clockreading-openimg`` (``openimgclock``), each hub split
``train`` -> our ``test``.

The TimeClock *training* set (``time_train.json``, ~11.5k examples in the study) has no builder
in the study's repo; :func:`convert_timeclock` builds it in one of two ways:
* ``train_csv`` given: a CSV in the "It's About Time" format (``img_id, file_name, hour,
  minute``; images under ``image_root``, default the CSV's folder) is the train split, and the
  whole hub set is the test split (as the study's benchmark);
* otherwise the hub set is cleaned and partitioned by a seeded hash of each image into
  ``test_size`` test images and the rest for training (no image in both).
Cleaning (both ways): unparseable time or hour/minute out of range (hour 0-23, minute 0-59),
empty/undecodable image -> skipped; the same image bytes twice -> the later copy skipped.
"""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from .common import BadItem, Report, check_image, convert_rows
from .hub import contract_record, convert_hub, hub_kwargs

QUESTION = "What time does the clock show in this image?"
_COLON_TIME = re.compile(r"(?<!\d)(\d{1,2})\s*:\s*(\d{1,2})(?!\d)")
_INTEGER = re.compile(r"\d+")
EVAL_SETS = {
    "timeclock": "AvaXiao/clockreading-time",
    "cococlock": "Jessemel/clockreading-coco",
    "openimgclock": "Jessemel/clockreading-openimg",
}


def _valid(h: int, m: int) -> bool:
    return 0 <= h <= 23 and 0 <= m <= 59


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def time_from_text(text: str) -> tuple[int, int]:
    """(hour, minute) from an answer text, as the study's ``parse_time`` (first ``H:MM``
    anywhere, else the first two integers after dropping "."), keeping only valid times.
    :class:`BadItem` names the text when it holds no time, or only an out-of-range one."""
    text = str(text)
    low = text.lower().replace(".", "")
    candidates = [(int(h), int(m)) for h, m in _COLON_TIME.findall(low)]
    if not candidates:
        ints = [i for i in _INTEGER.findall(low)[:2] if len(i) <= 4]
        if len(ints) == 2:
            candidates = [(int(ints[0]), int(ints[1]))]
    for h, m in candidates:
        if _valid(h, m):
            return h, m
    if candidates:
        h, m = candidates[0]
        raise BadItem(f"time out of range: {h}:{m} in {_shown(text)}")
    raise BadItem(f"unparseable time: {_shown(text)}")


def parse_time(row: dict) -> tuple[int, int]:
    """The row's time: its ``hour``/``minute`` columns, else its ``answer`` text."""
    h, m = row.get("hour"), row.get("minute")
    if h is None or m is None:
        ans = row.get("answer")
        if ans is None or not str(ans).strip():
            raise BadItem("unparseable time: no hour/minute columns and no answer")
        return time_from_text(ans)
    try:
        h, m = int(h), int(m)
    except (TypeError, ValueError, OverflowError):
        raise BadItem(f"unparseable time: hour={h!r} minute={m!r}") from None
    if not _valid(h, m):
        raise BadItem(f"time out of range: {h}:{m}")
    return h, m


def clock_question(row: dict) -> str:
    q = str(row.get("question") or "").replace("<image>", "").strip()
    return q or QUESTION


def _row(dataset: str):
    def fn(r: dict, idx: int, split: str) -> dict:
        h, m = parse_time(r)
        rid = r.get("img_id", r.get("id"))
        return {"id": f"{dataset}_{rid}" if rid not in (None, "") else f"{dataset}_{idx:05d}",
                "question": clock_question(r), "answer": f"{h:02d}:{m:02d}", "hour": h, "minute": m}
    return fn


def _dedupe(records: list[dict], split: str, report: Report) -> list[dict]:
    seen, out = set(), []
    for rec in records:
        digest = hashlib.sha256(rec["image"]).hexdigest()
        if digest in seen:
            report.skip(split, rec["id"], "duplicate image")
            report.counts[split]["kept"] -= 1
            continue
        seen.add(digest)
        out.append(rec)
    return out


def convert_eval(dataset: str, out_dir, *, seed: int = 0, limit: int | None = None, repo: str | None = None,
                 hub_split: str = "train", **kw):
    repo = repo or EVAL_SETS[dataset]

    def post(out, report):
        return {s: _dedupe(r, s, report) for s, r in out.items()}

    return convert_hub(dataset, out_dir, _row(dataset), repo=repo, splits={"test": hub_split}, seed=seed,
                       limit=limit, post=post, **hub_kwargs(kw))


def read_csv_split(csv_path: Path, image_root: Path, dataset: str, split: str, report: Report,
                   limit: int | None = None) -> list[dict]:
    """Records from an "It's About Time" CSV (``img_id, file_name, hour, minute``)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"img_id", "file_name", "hour", "minute"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"{csv_path}: columns {sorted(rows[0])} lack {sorted(need - set(rows[0]))}")
    fn = _row(dataset)

    def make_record(r, idx):
        rec = fn(r, idx, split)
        return contract_record(dataset, rec["id"], rec, check_image(image_root / str(r.get("file_name") or "")))

    return convert_rows(rows, make_record, split=split, report=report, limit=limit,
                        skip_id=lambda r, idx: f"{dataset}_{r.get('img_id') or idx}", desc=f"{dataset} {split} (csv)")


def convert_timeclock(out_dir, *, seed: int = 0, limit: int | None = None, repo: str = EVAL_SETS["timeclock"],
                      hub_split: str = "train", test_size: int = 1000, train_csv: str | None = None,
                      image_root: str | None = None, **kw):
    """``timeclock/train.parquet`` + ``timeclock/test.parquet`` (see the module docstring)."""

    def post(out, report):
        recs = _dedupe(out.pop("all"), "all", report)
        if not recs:
            raise ValueError(f"timeclock: hub split {hub_split!r} of {repo} has no usable row "
                             f"({report.why_empty('all')}); nothing was written")
        if train_csv:
            csv_path = Path(train_csv)
            train = read_csv_split(csv_path, Path(image_root) if image_root else csv_path.parent,
                                   "timeclock", "train", report, limit)
            report.source = {"test": report.source, "train_csv": str(csv_path)}
            return {"train": _dedupe(train, "train", report), "test": recs}
        ranked = sorted(recs, key=lambda r: hashlib.sha256(
            f"{seed}:".encode() + hashlib.sha256(r["image"]).digest()).hexdigest())
        n_test = min(test_size, len(ranked) // 2) if len(ranked) > 1 else 0
        test_ids = {r["id"] for r in ranked[:n_test]}
        report.extra["partition"] = {"test_size": n_test, "train_size": len(recs) - n_test,
                                     "how": "seeded sha256 of (seed, image sha256); lowest test_size -> test"}
        return {"train": [r for r in recs if r["id"] not in test_ids], "test": [r for r in recs if r["id"] in test_ids]}

    return convert_hub("timeclock", out_dir, _row("timeclock"), repo=repo, splits={"all": hub_split}, seed=seed,
                       limit=limit, post=post, **hub_kwargs(kw))


def convert_eval_coco(out_dir, hub_split: str = "train", **kw):
    return convert_eval("cococlock", out_dir, hub_split=hub_split, **kw)


def convert_eval_openimg(out_dir, hub_split: str = "train", **kw):
    return convert_eval("openimgclock", out_dir, hub_split=hub_split, **kw)
