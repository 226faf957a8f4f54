"""PixMo-Count (target 2): metadata from ``allenai/pixmo-count``, images from Flickr.

Metadata fields used: ``image_url``, ``image_sha256``, ``label``, ``count``. The study's
converter (``utils/download_pixmocount_and_convert_to_llava.py`` in jessemelpolio/LMM_CL) keeps
one row per image: a row whose ``image_sha256`` was already converted is skipped, so each image
keeps its first label. So do we by default; ``keep_all_labels=True`` keeps one row per
(image, label) instead (the image is fetched once either way). Per image:

1. a cached ``<image_dir>/<sha256>.jpg`` (atomic writes) is used without any request, so a
   rerun resumes where the last one stopped;
2. a Flickr photo id is taken only from a static-image URL in the study's pattern
   (:func:`flickr.photo_id_from_url`); any other http(s) URL is downloaded as it is, and a
   value that is not an http(s) URL is skipped with its reason;
3. with ``verify_sha256`` (default) an image is kept only when its bytes hash to
   ``image_sha256``. The metadata URL (the annotated image) is downloaded first; only when it
   fails or does not match is ``photos.getSizes`` asked for the largest size, which is
   downloaded and checked too. Typical cost: one download and no API call per image.
   ``verify_sha256=False`` does what the study did: getSizes, then the largest size, kept
   unverified (the metadata URL when there is no photo id or getSizes fails): one API call and
   one download per image;
4. every failure (getSizes error, HTTP 404, 429 after all retries, sha256 mismatch, corrupt
   image) is recorded in ``report.json`` and the row skipped; later rows of an image that
   failed in this run are skipped without new requests.

The "cleaned" training set of the study (``pixmo_count_train_cleaned_refactored.json``, never
built in its repo) is this conversion: the cleaning steps are listed in ``CLEANING`` and in
docs/data.md. Question ``How many {label} are in this image?``; answer
``There are {count} {label} in this image.`` (``There is 1 ...``) for train, the integer for
validation/test. Credentials only from ``FLICKR_API_KEY``/``FLICKR_API_SECRET``.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lmmcl.atomic import atomic_write_bytes
from lmmcl.layout import DataLayout

from .common import BadItem, Report, check_image, convert_rows, load_hub_split, source_revision, write_dataset
from .flickr import FetchError, FlickrClient, credentials_from_env, http_url, photo_id_from_url
from .hub import contract_record

REPO = "allenai/pixmo-count"
_SHA256 = re.compile(r"[0-9a-f]{64}")
SPLITS = ("train", "validation", "test")
CLEANING = (
    "label empty after stripping whitespace -> skipped (empty label)",
    "count not an integer >= 0 -> skipped (bad count)",
    "image_sha256 not 64 hex digits -> skipped (bad image_sha256)",
    "image_sha256 already kept in the split -> skipped (duplicate image; the study's rule: one row, "
    "the first label, per image); with keep_all_labels: the same (image_sha256, label) -> skipped",
    "image_url not an http(s) URL -> skipped",
    "image not fetchable (HTTP 404, HTTP 429 after all retries, getSizes error and no other "
    "source) -> skipped; later rows of that image -> skipped without new requests",
    "downloaded bytes do not match image_sha256 -> skipped (sha256 mismatch)",
    "image does not decode fully (corrupt/truncated) -> skipped, cached file removed",
)


def answer_text(count: int, label: str, split: str) -> str:
    if split != "train":
        return str(count)
    verb = "is" if count == 1 else "are"
    return f"There {verb} {count} {label} in this image."


def _checked_fields(row: dict) -> tuple[str, int, str]:
    """(label, count, image sha256) of a metadata row; :class:`BadItem` naming a bad one."""
    label = " ".join(str(row.get("label") or "").split())
    count = row.get("count")
    sha = str(row.get("image_sha256") or "").lower()
    if not label:
        raise BadItem("empty label")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BadItem(f"bad count: {count!r}")
    if not _SHA256.fullmatch(sha):
        raise BadItem(f"bad image_sha256: {sha[:80]!r} is not 64 hex digits")
    return label, count, sha


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_image(client: FlickrClient, url: str, sha256: str, image_dir: Path,
                verify: bool = True) -> tuple[bytes, str]:
    """The image bytes and how they were obtained (``cached`` | ``metadata_url`` | ``largest``).

    With ``verify`` the metadata URL comes first and getSizes is asked only if it fails or does
    not match; without, the largest size comes first, as in the study. :class:`FetchError`
    gives every reason when no candidate is usable."""
    dest = image_dir / f"{sha256}.jpg"
    if dest.exists():
        data = dest.read_bytes()
        if data and (not verify or _sha(data) == sha256):
            return data, "cached"
        dest.unlink()
    url = str(url or "").strip()
    if not http_url(url):
        shown = url if len(url) <= 80 else url[:80] + "..."
        raise FetchError(f"image_url is not an http(s) URL: {shown!r}")
    pid = photo_id_from_url(url)
    reasons: list[str] = []

    def largest() -> str | None:
        if pid is None:
            return None
        try:
            return client.largest_url(pid)
        except FetchError as e:
            reasons.append(str(e))
            return None

    order = ("metadata_url", "largest") if verify else ("largest", "metadata_url")
    tried: set[str] = set()
    for how in order:
        cand = url if how == "metadata_url" else largest()
        if cand is None or cand in tried:
            continue
        tried.add(cand)
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
            verify_sha256: bool = True, keep_all_labels: bool = False, splits=SPLITS) -> Report:
    key, secret = credentials_from_env()  # before anything is downloaded
    out_dir = Path(out_dir)
    images = Path(image_dir) if image_dir else Path(DataLayout(out_dir.parent).downloads("pixmocount")) / "images"
    client = FlickrClient(key, secret, rest_url=rest_url, min_interval=min_interval,
                          max_retries=max_retries, backoff=backoff, timeout=timeout)
    report = Report("pixmocount", source_revision(repo, path=path, revision=revision), seed=seed, limit=limit)
    report.extra["cleaning"] = list(CLEANING)
    report.extra["rows_per_image"] = "one per (image_sha256, label)" if keep_all_labels else \
        "one (the first label) per image_sha256, as the study"
    fetched = {"cached": 0, "metadata_url": 0, "largest": 0}
    failed: dict[str, str] = {}  # image sha256 -> the row whose fetch failed in this run
    out: dict[str, list[dict]] = {}
    for split in splits:
        kept_by: dict = {}  # dedup key -> id of the row kept for it

        def row_id(row, idx, split=split):
            return f"pixmocount_{split}_{idx:06d}"

        def make_record(row, idx, split=split, kept_by=kept_by):
            rid = row_id(row, idx)
            label, count, sha = _checked_fields(row)
            key = (sha, label) if keep_all_labels else sha
            if key in kept_by:
                what = "(image_sha256, label)" if keep_all_labels else "image_sha256"
                raise BadItem(f"duplicate {what}: row {kept_by[key]} kept (label {label!r} dropped)")
            if sha in failed:
                raise BadItem(f"image failed earlier in this run: row {failed[sha]}, not fetched again")
            try:
                data, how = fetch_image(client, row.get("image_url") or "", sha, images, verify_sha256)
                check_image(data)
            except (FetchError, BadItem) as e:
                if isinstance(e, BadItem):  # a corrupt download: not kept in the cache either
                    (images / f"{sha}.jpg").unlink(missing_ok=True)
                failed[sha] = rid
                raise BadItem(str(e)) from None
            fetched[how] += 1
            kept_by[key] = rid
            return contract_record("pixmocount", rid, {
                "question": f"How many {label} are in this image?", "answer": answer_text(count, label, split),
                "label": label, "count": count, "image_sha256": sha}, data)

        ds = load_hub_split(repo, split, path=path, revision=revision, cache_dir=cache_dir)
        out[split] = convert_rows(ds, make_record, split=split, report=report, limit=limit, skip_id=row_id,
                                  desc=f"pixmocount {split}", unit=" img")
    report.extra["images"] = fetched
    report.extra["flickr"] = dict(client.stats)
    write_dataset(out_dir, out, report)
    return report
