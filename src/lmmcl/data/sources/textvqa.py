"""TextVQA (target 4): ``lmms-lab/textvqa`` (question_id, question, image, answers, ...).

All 10 human answers are kept in ``answers`` (VQA accuracy needs them); the target ``answer``
is the majority answer (``Counter.most_common``: ties go to the answer seen first), as in the
study. Rows without any non-empty answer (e.g. the unlabeled test split) are skipped and
recorded, so only train and validation are converted by default.
"""
from __future__ import annotations

from collections import Counter

from .common import BadItem
from .hub import convert_hub, hub_kwargs, text

REPO = "lmms-lab/textvqa"
SPLITS = {"train": "train", "validation": "validation"}


def majority_answer(answers) -> str:
    """The most common non-empty answer; ties go to the first occurrence."""
    clean = [str(a).strip() for a in (answers or []) if a is not None and str(a).strip()]
    if not clean:
        raise BadItem("empty answers")
    return Counter(clean).most_common(1)[0][0]


def row(r: dict, idx: int, split: str) -> dict:
    answers = [str(a) for a in (r.get("answers") or []) if a is not None]
    qid = r.get("question_id")
    return {"id": f"textvqa_{qid}" if qid not in (None, "") else f"textvqa_{idx:05d}",
            "question": text(r.get("question"), "question"), "answer": majority_answer(answers),
            "answers": answers, "image_id": str(r.get("image_id") or "")}


def convert(out_dir, *, seed: int = 0, limit: int | None = None, repo: str = REPO, splits=None, **kw):
    return convert_hub("textvqa", out_dir, row, repo=repo, splits=dict(splits or SPLITS), seed=seed,
                       limit=limit, **hub_kwargs(kw))
