"""PixMo-Count (target 2): metadata from ``allenai/pixmo-count``, images from Flickr.

Metadata fields used: ``image_url``, ``image_sha256``, ``label``, ``count``. Per item:
1. the Flickr photo id is parsed from ``image_url``; ``photos.getSizes`` (``flickrapi``) gives
   the largest size, which is downloaded first; if that does not match the metadata's sha256,
   the metadata URL itself is tried (the annotated image); an item is kept only when the bytes
   match ``image_sha256`` (``verify_sha256: false`` keeps the largest size unverified);
2. images are cached as ``<image_dir>/<sha256>.jpg`` (atomic writes), so a rerun skips every
   image already fetched (resumable) and makes no request for it;
3. every failure (no photo id, getSizes error, HTTP 404, 429 after all retries, sha256
   mismatch, corrupt image) is recorded in ``report.json`` and the item skipped.

The "cleaned" training set of the study (``pixmo_count_train_cleaned_refactored.json``, never
built in its repo) is this conversion: the cleaning steps are listed in ``CLEANING`` and in
docs/data.md. Question ``How many {label} are in this image?``; answer
``There are {count} {label} in this image.`` (``There is 1 ...``) for train, the integer for
validation/test. Credentials only from ``FLICKR_API_KEY``/``FLICKR_API_SECRET``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from lmmcl.atomic import atomic_write_bytes

from .common import (BadItem, Report, check_image, load_hub_split, progress, source_revision, take,
                     write_dataset)
from .flickr import FetchError, FlickrClient, credentials_from_env, photo_id_from_url

REPO = "allenai/pixmo-count"
SPLITS = ("train", "validation", "test")
CLEANING = (
    "label empty after stripping whitespace -> skipped (empty label)",
    "count not an integer >= 0 -> skipped (bad count)",
    "same (image_sha256, label) seen before in the split -> skipped (duplicate)",
    "image not fetchable (no photo id in the URL and URL download failed, HTTP 404, "
    "HTTP 429 after all retries) -> skipped",
    "downloaded bytes do not match image_sha256 -> skipped (sha256 mismatch)",
    "image does not decode fully (corrupt/truncated) -> skipped, cached file removed",
)


def answer_text(count: int, label: str, split: str) -> str:
    if split != "train":
        return str(count)
    verb = "is" if count == 1 else "are"
    return f"There {verb} {count} {label} in this image."


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_image(client: FlickrClient, url: str, sha256: str, image_dir: Path,
                verify: bool = True) -> tuple[bytes, str]:
    """The image bytes and how they were obtained (``cached`` | ``largest`` | ``metadata_url``)."""
    dest = image_dir / f"{sha256}.jpg"
    if dest.exists():
        data = dest.read_bytes()
        if data and (not verify or _sha(data) == sha256):
            return data, "cached"
        dest.unlink()
    candidates: list[tuple[str, str]] = []
    reasons: list[str] = []
    pid = photo_id_from_url(url or "")
    if pid:
        try:
            candidates.append(("largest", client.largest_url(pid)))
        except FetchError as e:
            reasons.append(str(e))
    else:
        reasons.append("no Flickr photo id in image_url")
    if url and url not in [c for _, c in candidates]:
        candidates.append(("metadata_url", url))
    for how, cand in candidates:
        try:
            data = client.download(cand)
        except FetchError as e:
            reasons.append(f"{how}: {e}")
            continue
        if verify and _sha(data) != sha256:
            reasons.append(f"{how}: sha256 mismatch")
            continue
        atomic_write_bytes(dest, data)
        return data, how
    if any("sha256 mismatch" in r for r in reasons):
        raise FetchError("sha256 mismatch: " + "; ".join(reasons))
    raise FetchError("fetch failed: " + "; ".join(reasons))


def convert(out_dir, *, seed: int = 0, limit: int | None = None, repo: str = REPO,
            revision: str | None = None, path: str | None = None, cache_dir: str | None = None,
            image_dir: str | None = None, rest_url: str | None = None, min_interval: float = 1.1,
            max_retries: int = 5, backoff: float = 5.0, timeout: float = 10.0,
            verify_sha256: bool = True, splits=SPLITS) -> Report:
    key, secret = credentials_from_env()  # before anything is downloaded
    out_dir = Path(out_dir)
    images = Path(image_dir) if image_dir else out_dir.parent / "downloads" / "pixmocount" / "images"
    client = FlickrClient(key, secret, rest_url=rest_url, min_interval=min_interval,
                          max_retries=max_retries, backoff=backoff, timeout=timeout)
    report = Report("pixmocount", source_revision(repo, path=path, revision=revision), seed=seed, limit=limit)
    report.extra["cleaning"] = list(CLEANING)
    fetched = {"cached": 0, "largest": 0, "metadata_url": 0}
    out: dict[str, list[dict]] = {}
    for split in splits:
        ds = load_hub_split(repo, split, path=path, revision=revision, cache_dir=cache_dir)
        records, seen_pairs = [], set()
        for idx, row in enumerate(progress(ds, desc=f"pixmocount {split}", unit=" img")):
            if not take(limit, len(records)):
                break
            report.seen(split)
            rid = f"pixmocount_{split}_{idx:06d}"
            label = " ".join(str(row.get("label") or "").split())
            count = row.get("count")
            sha = str(row.get("image_sha256") or "").lower()
            if not label:
                report.skip(split, rid, "empty label")
                continue
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                report.skip(split, rid, f"bad count: {count!r}")
                continue
            if (sha, label) in seen_pairs:
                report.skip(split, rid, "duplicate (image_sha256, label)")
                continue
            try:
                data, how = fetch_image(client, row.get("image_url") or "", sha, images, verify_sha256)
                check_image(data)
            except FetchError as e:
                report.skip(split, rid, str(e))
                continue
            except BadItem as e:
                (images / f"{sha}.jpg").unlink(missing_ok=True)
                report.skip(split, rid, str(e))
                continue
            fetched[how] += 1
            seen_pairs.add((sha, label))
            records.append({"id": rid, "image": data, "question": f"How many {label} are in this image?",
                            "answer": answer_text(count, label, split), "task": "pixmocount",
                            "label": label, "count": count, "image_sha256": sha})
            report.kept(split)
        out[split] = records
    report.extra["images"] = fetched
    report.extra["flickr"] = dict(client.stats)
    write_dataset(out_dir, out, report)
    return report
