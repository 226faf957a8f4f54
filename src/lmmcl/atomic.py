"""Atomic file writes: a temporary file in the destination's folder, then os.replace.

A killed or failed writer never leaves a file with the final name (Snakemake and every reader
trust a file that exists to be complete). A writer killed with SIGKILL cannot clean up: it may
leave its temporary file behind, always under a hidden name (``.<name>.<random>.tmp<suffix>``)
that no rule or reader looks for; the rerun writes a new one.

* :func:`atomic_path` -- one file written by any library (parquet, PNG, CSV, bytes);
* :func:`atomic_paths` -- several files that appear together (every split of a dataset);
* :func:`atomic_dir` -- a whole folder (an extracted tarball, a checkpoint folder);
* :func:`atomic_write_text` / :func:`atomic_write_bytes` / :func:`atomic_write_json`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


# errors of the writing itself (a full disk or quota, an I/O error, a read-only file system), as
# opposed to a body that fails to read its input
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}


class WriteFailed(OSError):
    """Writing a file or folder failed before anything was replaced (a full disk, a quota, an I/O
    error): the destination is as it was; the message says so and names it."""

    def __init__(self, cause: OSError, path: Path):
        full = cause.errno in (errno.ENOSPC, errno.EDQUOT)
        state = "keeps its previous contents" if path.exists() else "was not created"
        super().__init__(cause.errno, f"writing {path} failed ({cause.strerror or cause}); nothing was replaced: "
                                      f"{path} {state}" + ("; free space (or raise the quota) and rerun" if full else ""))


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc), else set and
    restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temp_file(path: Path) -> Path:
    """An empty hidden file next to ``path`` with the mode a plain ``open(path, "w")`` would give
    (mkstemp makes it 0600: shared results would be readable by their owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination's directory; on success move it to ``path``.

    The temporary file keeps the destination's suffix (so writers that sniff the
    extension, e.g. matplotlib, behave) and is removed if the body raises.
    """
    tmp_path = _new_temp_file(Path(path))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.errno in _WRITE_ERRORS and not isinstance(e, WriteFailed):
            raise WriteFailed(e, Path(path)) from e
        raise


@contextlib.contextmanager
def atomic_paths(paths: Iterable[str | os.PathLike]) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several files: yield one temporary path per destination (same
    order); only when the body finished are they all moved to their final names, one
    ``os.replace`` each. If the body raises, every temporary file is removed and no
    destination is touched.

    A kill between two of the final renames can leave some destinations new and some old or
    missing; write a marker file after this block (e.g. ``report.json``) when readers need to
    know that the set is complete (Snakemake reruns such a job: its outputs are incomplete).
    """
    finals = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for p in finals:
            tmps.append(_new_temp_file(p))
        yield list(tmps)
        for tmp, p in zip(tmps, finals):
            os.replace(tmp, p)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``path``; on success it replaces ``path``.

    If ``path`` already exists it is deleted just before the rename, so between the two a
    reader finds no folder (never a half-written one). The temporary folder is removed if the
    body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    replacing = False
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
        yield tmp
        for f in tmp.rglob("*"):  # some writers (safetensors) create their files 0600
            if f.is_file() and not f.is_symlink():
                os.chmod(f, 0o666 & ~_umask())
        replacing = True
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in _WRITE_ERRORS and not isinstance(e, WriteFailed) and not replacing:
            raise WriteFailed(e, path) from e
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj, default=str) -> Path:
    """Write ``obj`` as indented JSON (keys in their order) atomically; ``default`` converts what
    JSON cannot hold (``str``: paths; ``float``: numpy numbers)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=default) + "\n")
