"""One skill of the registry (:mod:`lmmcl.data.skills`), whatever makes its data.

A leaf module: the modules that define skills (``synthetic``, ``broad_skills``, ``vision_skills``,
``declared``) import it, and the registry imports them, so nothing imports in a circle.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

# study: the default's synthetic skills (lmmcl.data.synthetic); research: the priors of the research
# overlays (lmmcl.data.broad_skills, lmmcl.data.vision_skills); declared: a config's `skills:` entry
# (lmmcl.data.declared, docs/own_skill.md)
KINDS = ("study", "research", "declared")


@dataclass(frozen=True)
class SkillSpec:
    """One skill.

    ``classes``: the labels (for docs); ``answers``: every answer string the skill can produce
    with default options; ``make(rng, image_size)`` returns one record without ``id``/``task``
    (procedural skills; None for a declared one, whose data is converted from files);
    ``splits``: the splits the workflow writes (lmmcl.registry.datasets); ``variants``: the
    wordings a train split asks its question in (one per record, drawn from its own stream; the
    test split asks the make's own, canonical, wording); ``kind``: one of :data:`KINDS`;
    ``declaration``: a declared skill's checked config entry (lmmcl.data.declared.parse), with its
    benchmark under ``"benchmark"``.
    """

    name: str
    mirrors: str | None
    classes: list[str]
    make: Callable[..., dict] | None
    answers: list[str] = field(default_factory=list)
    splits: tuple[str, ...] = ("train", "test")
    variants: tuple[str, ...] = ()
    kind: str = "study"
    declaration: dict | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"skill {self.name!r}: unknown kind {self.kind!r}; allowed: {list(KINDS)}")


def skill_seed(skill: str, split: str, seed: int) -> int:
    """Stable per-(skill, split, seed) RNG seed (CRC32; Python's hash() is salted)."""
    return zlib.crc32(f"{skill}/{split}/{seed}".encode())
