"""Converters of the real datasets into the parquet data contract (one module per source).

``convert(dataset, out_dir, **options)`` looks the dataset up in the dataset registry (``registry/datasets.yaml``)
(its ``converter``, default ``repo`` and splits), merges ``options`` (from config
``data.sources.<dataset>``, ``data.seed`` and ``data.limit``) and writes
``<out_dir>/<split>.parquet`` plus ``<out_dir>/report.json``.
"""
from __future__ import annotations

import importlib
import inspect
import re

from ... import registry


def converter(dataset: str):
    reg = registry.datasets()
    spec = reg.get(dataset)
    if spec is None or spec.get("source") == "synthetic":
        allowed = sorted(n for n, s in reg.items() if s.get("source") != "synthetic")
        raise ValueError(f"unknown dataset {dataset!r} for conversion; allowed: {allowed}")
    module, _, func = spec["converter"].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), func or "convert"), spec


# options every hub-based converter takes (through lmmcl.data.sources.hub.convert_hub)
HUB_OPTIONS = {"seed", "limit", "repo", "revision", "path", "cache_dir"}


def allowed_options(fn) -> set[str]:
    params = inspect.signature(fn).parameters
    named = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD and n != "out_dir"}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        named |= HUB_OPTIONS
    return named - {"rows", "splits"}  # the registry's splits are the rule's outputs


_INT_OPTIONS = {"seed", "limit", "test_size", "max_retries", "n_options"}


def _coerce(fn, options: dict) -> dict:
    """Strings from the command line (Snakemake passes nested ``--config`` values as strings)
    become the type of the option's default (int, float, bool)."""
    params = inspect.signature(fn).parameters
    out = {}
    for k, v in options.items():
        if isinstance(v, str):
            default = params[k].default if k in params else None
            kind = int if k in _INT_OPTIONS else type(default) if isinstance(default, (bool, int, float)) else None
            try:
                if kind is bool:
                    v = {"true": True, "false": False}[v.lower()]
                elif kind is not None:
                    v = kind(v)
            except (KeyError, ValueError):
                raise ValueError(f"option {k!r}: {v!r} is not a {kind.__name__}") from None
        out[k] = v
    return out


# option names that look like credentials, and URLs with a user:password part
# (not max_tokens, tokenizer, author)
_SECRET_NAME = re.compile(r"token(?![a-z])|secret|passw|api_?key|credential|auth(?!or)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def reject_secret_options(dataset: str, options: dict) -> None:
    """Raise ``ValueError`` if ``data.sources.<dataset>`` carries a credential: secrets come from
    the environment only (they would otherwise end up in the job's command line, the Snakemake
    log and its metadata)."""
    from .common import SECRET_ENV_VARS

    for key, value in (options or {}).items():
        bad = _SECRET_NAME.search(str(key)) or (isinstance(value, str) and _URL_USERINFO.match(value))
        if bad:
            raise ValueError(
                f"data.sources.{dataset}.{key}: credentials are not accepted in the config or on the "
                f"command line; set them in the environment only ({', '.join(SECRET_ENV_VARS)})")


def convert(dataset: str, out_dir, **options):
    """Convert ``dataset``; an option the converter does not know is an error naming the allowed ones."""
    reject_secret_options(dataset, options)
    fn, spec = converter(dataset)
    allowed = allowed_options(fn)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"data.sources.{dataset}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    options = _coerce(fn, options)
    kwargs = dict(spec.get("options") or {})
    if spec.get("repo"):
        kwargs["repo"] = spec["repo"]
    kwargs.update({k: v for k, v in options.items() if v is not None})
    return fn(out_dir, **kwargs)
