"""lmms-eval task hooks for lmmcl benchmarks.

`lmmcl.evaluation.taskgen` copies this file next to the task YAMLs it generates, because
lmms-eval resolves `!function utils.<name>` relative to the YAML's folder. The file is
therefore loaded as a stand-alone module named `utils`: it must only use absolute imports.

Scoring is delegated to `lmmcl.evaluation.scoring`. A task YAML names its scorer and primary
metric in the function name, `!function utils.process_results__<scorer>__<metric>` (resolved
by the module-level `__getattr__` below), so the YAML alone says how it is scored; a scorer's
options (a declared skill's `scorer_options`) follow as `__o<hex of their JSON>`.
"""
from __future__ import annotations

import io
import json
import re

from lmmcl.evaluation import scoring

_PR_PREFIX = "process_results__"


def doc_to_visual(doc):
    """The doc's image as an RGB PIL image, in a list (lmms-eval expects a list of visuals)."""
    from PIL import Image

    img = doc["image"]
    if isinstance(img, dict):  # parquet without HF feature metadata: {"bytes", "path"}
        img = img.get("bytes") or img.get("path")
    if isinstance(img, (bytes, bytearray)):
        img = Image.open(io.BytesIO(img))
    elif isinstance(img, str):
        img = Image.open(img)
    return [img.convert("RGB")]


def _prompt_kwargs(lmms_eval_specific_kwargs) -> dict:
    kw = lmms_eval_specific_kwargs or {}
    if "pre_prompt" not in kw and "post_prompt" not in kw and isinstance(kw.get("default"), dict):
        kw = kw["default"]
    return kw


def _question(doc) -> str:
    """The doc's question without `<image>` placeholders (the model wrapper places the image),
    followed by its multiple-choice options ("A. robin" lines) when the doc has an `options`
    column and the question does not list them already."""
    q = re.sub(r"\s*<image>\s*", "\n", str(doc["question"])).strip()
    options = scoring._options(doc)
    if options:
        lines = [f"{scoring._LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
        if not all(line in q for line in lines):
            q = q + "\n" + "\n".join(lines)
    return q


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """pre_prompt + question + post_prompt, from the task's `lmms_eval_specific_kwargs` (the
    study's tasks took the whole kwargs dict as `pre_prompt` and pasted its repr into the
    prompt; here the strings themselves are used)."""
    kw = _prompt_kwargs(lmms_eval_specific_kwargs)
    return f"{kw.get('pre_prompt', '') or ''}{_question(doc)}{kw.get('post_prompt', '') or ''}"


def nanmean(values) -> float:
    """Mean ignoring NaN (metrics that do not apply to every sample, e.g. PathVQA's binary
    accuracy on open questions); NaN when no sample has a value."""
    vals = [float(v) for v in values if v is not None and v == v]
    return sum(vals) / len(vals) if vals else float("nan")


def doc_to_target(doc):
    return doc["answer"]


def _prediction(results) -> str:
    if not results:
        return ""
    pred = results[0]
    while isinstance(pred, (list, tuple)):  # tolerate nested responses
        pred = pred[0] if pred else ""
    return "" if pred is None else str(pred)


def make_process_results(scorer: str, metric: str, options: dict | None = None):
    options = scoring.check_options(scorer, options)  # ValueError for an unknown scorer or option

    def process_results(doc, results, **_):
        return scoring.score_all(scorer, metric, _prediction(results), doc, options)

    process_results.__name__ = process_results.__qualname__ = \
        f"{_PR_PREFIX}{scorer}__{metric}{scoring.options_suffix(options)}"
    return process_results


def __getattr__(name: str):
    m = re.fullmatch(_PR_PREFIX + r"([a-z0-9_]+?)__([A-Za-z0-9_]+?)(?:__o([0-9a-f]+))?", name)
    if m:
        options = json.loads(bytes.fromhex(m.group(3)).decode()) if m.group(3) else None
        return make_process_results(m.group(1), m.group(2), options)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
