"""PathVQA (target 3): ``flaviagiammarino/path-vqa`` (features image, question, answer).

Question and answer are the raw dataset strings (yes/no or free text), as in the study.
Rows with an empty question or answer, or an image that does not decode, are skipped and
recorded. ``yes_no`` marks the closed questions (answer yes/no).
"""
from __future__ import annotations

from .hub import convert_hub, hub_kwargs, text

REPO = "flaviagiammarino/path-vqa"
SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def row(r: dict, idx: int, split: str) -> dict:
    answer = text(r.get("answer"), "answer")
    return {"id": f"pathvqa_{idx:05d}", "question": text(r.get("question"), "question"), "answer": answer,
            "yes_no": answer.lower() in ("yes", "no")}


def convert(out_dir, *, seed: int = 0, limit: int | None = None, repo: str = REPO, splits=None, **kw):
    return convert_hub("pathvqa", out_dir, row, repo=repo, splits=dict(splits or SPLITS), seed=seed,
                       limit=limit, **hub_kwargs(kw))

