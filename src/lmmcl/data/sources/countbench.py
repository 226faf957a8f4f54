"""CountBench (extra eval only): ``vikhyatk/CountBenchQA`` split ``test`` (image, question, number).

Answer = the integer as text (e.g. ``"7"``); ``count`` keeps it as an int. Rows with an empty
question, a missing/negative number or a broken image are skipped and recorded.
"""
from __future__ import annotations

from .common import BadItem
from .hub import convert_hub, hub_kwargs, text

REPO = "vikhyatk/CountBenchQA"
SPLITS = {"test": "test"}


def row(r: dict, idx: int, split: str) -> dict:
    n = r.get("number")
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise BadItem(f"bad number: {n!r}") from None
    if n < 0:
        raise BadItem(f"bad number: {n!r}")
    return {"id": f"countbench_{idx:05d}", "question": text(r.get("question"), "question"), "answer": str(n),
            "count": n}


def convert(out_dir, *, seed: int = 0, limit: int | None = None, repo: str = REPO, splits=None, **kw):
    return convert_hub("countbench", out_dir, row, repo=repo, splits=dict(splits or SPLITS), seed=seed,
                       limit=limit, **hub_kwargs(kw))
