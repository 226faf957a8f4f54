"""CUB-200-2011 (target 1): the official tarball -> 26-way multiple choice, answer = letter.

Steps: download the tarball (URL configurable; skipped when ``tarball`` points at a local copy
or the file is already there), check its md5 against the official one (``OFFICIAL_MD5``, the
checksum of ``CUB_200_2011.tgz`` in the Caltech data record; ``verify_md5=False`` skips the
check, e.g. for a repacked tarball), extract it once into ``<download_dir>/CUB_200_2011`` (into a
temporary folder first, renamed when complete: a truncated or corrupt tarball is a clear error
and leaves nothing), then read ``images.txt``, ``classes.txt``, ``image_class_labels.txt`` and
``train_test_split.txt`` and build the official train (is_training_image = 1) and test splits.

Per image (as in the study's ``utils/cub200_to_llava.py``, but seeded): the correct letter is
uniform over A-Z, the 25 distractors are sampled from the other classes, the question is one
of the 10 templates, then the instruction line, then the option lines ``"K. Class name"``.
Every choice comes from a ``random.Random`` seeded by ``(seed, image_id)``, so an image's
question does not depend on ``limit`` or on which other images exist.
"""
from __future__ import annotations

import hashlib
import random
import re
import string
import tarfile
import zlib
from pathlib import Path

from lmmcl.atomic import atomic_dir, atomic_path
from lmmcl.hashing import file_digests
from lmmcl.layout import DataLayout

from .common import BadItem, Report, check_image, progress, take, write_dataset

DEFAULT_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
OFFICIAL_MD5 = "97eceeb196236b17998738112f37df78"  # CUB_200_2011.tgz, data.caltech.edu record 65de6-vp158
_MD5 = re.compile(r"[0-9a-f]{32}")
TEMPLATES = (
    "What species is the bird in this photo?",
    "Can you identify the bird species in this image?",
    "Which bird species is shown in this picture?",
    "What type of bird is depicted in this photograph?",
    "Identify the species of the bird in this image.",
    "What is the bird species presented in this photo?",
    "Which of the following species does this bird belong to?",
    "What would you classify this bird as?",
    "From the options below, what species is this bird?",
    "Looking at this bird, what species would you say it is?",
)
INSTRUCTION = "Answer with the option's letter from the given choices directly."
LETTERS = string.ascii_uppercase
META_FILES = ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt")
SPLITS = ("train", "test")


def clean_class_name(raw: str) -> str:
    """``"001.Black_footed_Albatross"`` -> ``"Black footed Albatross"`` (as in the study)."""
    name = raw.replace("_", " ")
    if "." in name:
        name = name.split(".", 1)[1]
    return name.strip()


def make_question(image_id: int, class_id: int, classes: dict[int, str], seed: int,
                  n_options: int = 26) -> dict:
    """The seeded multiple-choice question of one image."""
    if len(classes) < n_options:
        raise ValueError(f"cub200: {n_options}-way multiple choice needs >= {n_options} classes, "
                         f"found {len(classes)}")
    rng = random.Random(f"cub200:{seed}:{image_id}")
    others = sorted(c for c in classes if c != class_id)
    distractors = rng.sample(others, n_options - 1)
    correct = rng.randrange(n_options)
    option_ids = distractors[:correct] + [class_id] + distractors[correct:]
    template = rng.choice(TEMPLATES)
    options = [f"{LETTERS[i]}. {classes[c]}" for i, c in enumerate(option_ids)]
    question = f"{template}\n{INSTRUCTION}\n" + "\n".join(options)
    return {"question": question, "answer": LETTERS[correct], "options": [classes[c] for c in option_ids]}


# --------------------------------------------------------------------------- download/extract
def download(url: str, dest: Path, timeout: float = 60.0, md5: str | None = None) -> Path:
    """Stream ``url`` to ``dest`` (temp name, renamed when complete and, with ``md5``, only if
    the bytes match it); nothing to do if present."""
    import requests

    if dest.exists():
        return dest
    h = hashlib.md5()
    with atomic_path(dest) as tmp:
        with requests.get(url, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            total = int(r.headers.get("content-length") or 0) or None
            with open(tmp, "wb") as f, progress(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}") as bar:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            if total is not None and tmp.stat().st_size != total:
                raise ValueError(f"{url}: download incomplete ({tmp.stat().st_size} of {total} bytes)")
        if md5 and h.hexdigest() != md5:
            raise ValueError(f"cub200: download from {url} has md5 {h.hexdigest()}, expected {md5}; "
                             "nothing was kept")
    return dest


def _find_root(folder: Path) -> Path | None:
    for cand in [folder, *sorted(p for p in folder.rglob("images.txt"))]:
        root = cand if cand.is_dir() else cand.parent
        if (root / "images.txt").exists():
            return root
    return None


def extract(tarball: Path, dest: Path, tag: str = "") -> Path:
    """Extract ``tarball`` into ``dest`` (once per ``tag``, e.g. the tarball's sha256); return the
    folder holding ``images.txt``. A truncated or corrupt tarball raises ``ValueError`` and
    leaves no folder behind.
    """
    done = dest / ".complete"
    if done.exists() and done.read_text().strip() == tag:
        root = _find_root(dest)
        if root:
            return root
    with atomic_dir(dest) as tmp:  # a kill or an error leaves no folder under the final name
        n = 0
        try:
            with tarfile.open(tarball, "r:*") as tf, progress(desc=f"extract {tarball.name}", unit=" files") as bar:
                for member in tf:
                    tf.extract(member, tmp, filter="data")
                    n += 1
                    bar.update(1)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise ValueError(f"cub200: tarball {tarball} is truncated or corrupt ({type(e).__name__}: {e}) "
                             f"after {n} members; delete it and download it again") from None
        if _find_root(tmp) is None:
            raise ValueError(f"cub200: tarball {tarball} holds no images.txt; is it CUB_200_2011.tgz?")
        (tmp / done.name).write_text(f"{tag}\n")  # inside the folder before it gets its final name
    return _find_root(dest)


# --------------------------------------------------------------------------- metadata
def _read_table(root: Path, name: str) -> list[list[str]]:
    path = root / name
    if not path.exists():
        raise ValueError(f"cub200: {name} missing in {root} (the tarball must hold {list(META_FILES)})")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f"cub200: {name} line {lineno}: expected '<id> <value>', got {line!r}")
            rows.append(parts)
    return rows


def read_metadata(root: Path) -> tuple[dict[int, str], list[dict]]:
    classes = {int(i): clean_class_name(n) for i, n in _read_table(root, "classes.txt")}
    paths = {int(i): p.strip() for i, p in _read_table(root, "images.txt")}
    labels = {int(i): int(c) for i, c in _read_table(root, "image_class_labels.txt")}
    is_train = {int(i): int(t) for i, t in _read_table(root, "train_test_split.txt")}
    images = []
    for image_id in sorted(paths):
        images.append({"image_id": image_id, "path": paths[image_id], "class_id": labels.get(image_id),
                       "split": {1: "train", 0: "test"}.get(is_train.get(image_id))})
    return classes, images


# --------------------------------------------------------------------------- conversion
def convert_folder(root: Path, out_dir: Path, *, seed: int = 0, limit: int | None = None,
                   splits=SPLITS, n_options: int = 26, source: dict | None = None) -> Report:
    classes, images = read_metadata(root)
    report = Report("cub200", source or {"folder": str(root)}, seed=seed, limit=limit)
    report.extra["n_classes"] = len(classes)
    out: dict[str, list[dict]] = {s: [] for s in splits}
    for img in progress(images, desc="cub200 convert", unit=" img"):
        split = img["split"]
        iid = f"cub200_{img['image_id']:05d}"
        if split is None:
            report.skip("unknown", iid, "not in train_test_split.txt")
            continue
        if split not in out or not take(limit, len(out[split])):
            continue
        report.seen(split)
        if img["class_id"] not in classes:
            report.skip(split, iid, f"no class label (class id {img['class_id']!r})")
            continue
        try:
            data = check_image(root / "images" / img["path"])
        except BadItem as e:
            report.skip(split, iid, f"{e} ({img['path']})")
            continue
        q = make_question(img["image_id"], img["class_id"], classes, seed, n_options)
        out[split].append({"id": iid, "image": data, "question": q["question"], "answer": q["answer"],
                           "task": "cub200", "class_id": img["class_id"],
                           "class_name": classes[img["class_id"]], "options": q["options"]})
        report.kept(split)
    write_dataset(out_dir, out, report)
    return report


def convert(out_dir, *, seed: int = 0, limit: int | None = None, url: str = DEFAULT_URL,
            tarball: str | None = None, download_dir: str | None = None, md5: str = OFFICIAL_MD5,
            verify_md5: bool = True, splits=SPLITS, n_options: int = 26) -> Report:
    """Download (unless ``tarball`` is given), check the md5, extract and convert CUB-200-2011."""
    out_dir = Path(out_dir)
    md5 = str(md5 or "").strip().lower()
    if verify_md5 and not _MD5.fullmatch(md5):
        raise ValueError(f"cub200: md5 {md5!r} is not 32 hex digits (the official tarball's is {OFFICIAL_MD5}; "
                         "verify_md5: false skips the check)")
    expected = md5 if verify_md5 else None
    dl = Path(download_dir) if download_dir else Path(DataLayout(out_dir.parent).downloads("cub200"))
    if tarball:
        tar_path = Path(tarball)
    else:
        tar_path = dl / Path(url.split("?")[0]).name
        if not tar_path.exists():
            download(url, tar_path, md5=expected)  # checks the md5 while streaming, keeps nothing bad
    if not tar_path.exists():
        raise FileNotFoundError(f"cub200: tarball {tar_path} not found")
    digests = file_digests(tar_path, ("md5", "sha256"))  # one read of a 1.1 GB tarball
    got_md5, digest = digests["md5"], digests["sha256"]
    if expected and got_md5 != expected:  # a local tarball, or one downloaded before
        raise ValueError(f"cub200: tarball {tar_path} has md5 {got_md5}, expected {expected} (the official "
                         "CUB_200_2011.tgz); delete it and download it again, or set "
                         "data.sources.cub200.verify_md5: false to use a different tarball; nothing was written")
    root = extract(tar_path, dl / "extracted", tag=digest)
    source = {"url": None if tarball else url, "tarball": tar_path.name, "sha256": digest, "md5": got_md5,
              "md5_verified": bool(expected)}
    return convert_folder(root, out_dir, seed=seed, limit=limit, splits=tuple(splits),
                          n_options=n_options, source=source)
