"""The skill registry: every skill the workflow can train on or evaluate, whatever its kind.

Three kinds register here the same way, through :func:`register` (:class:`lmmcl.data.spec.SkillSpec`):

==========  =====================================================  ==================================
kind        where it is defined                                    how its data is made
==========  =====================================================  ==================================
study       :mod:`lmmcl.data.synthetic` (the default's targets,    drawn in code (:func:`generate`,
            held-out skills and ``syn_prior``)                     rule ``make_synthetic``)
research    :mod:`lmmcl.data.broad_skills`,                         drawn in code, base-only
            :mod:`lmmcl.data.vision_skills` (research overlays)
declared    a config's ``skills:`` (:mod:`lmmcl.data.declared`,     converted from your files or a hub
            docs/own_skill.md)                                     dataset (rules ``convert_skill_*``)
==========  =====================================================  ==================================

The real datasets of the study (CUB-200, PixMo-Count, ...) are not skills of this registry: they
have one converter each (:mod:`lmmcl.data.sources`, ``registry/datasets.yaml``).
``lmmcl.registry.datasets()`` and ``lmmcl.registry.benchmarks()`` read this registry, so a
skill's name is a ``sequence`` task and (a declared skill's) a benchmark.

Imports go one way: this module imports the modules that define skills, which import only
:mod:`lmmcl.data.spec` and :mod:`lmmcl.data.draw` (and the research priors the study's word lists).
"""
from __future__ import annotations

import functools
import json
import random
import string
from pathlib import Path

from . import broad_skills, vision_skills
from .spec import KINDS, SkillSpec, skill_seed
from .synthetic import BIRD_NAMES, STUDY_SKILLS

__all__ = ["SKILLS", "KINDS", "SkillSpec", "register", "declare", "declared_benchmarks", "register_saved",
           "generate", "write_skill", "vocabulary_texts", "PRIOR_TOKENIZERS", "skill_seed"]

SKILLS: dict[str, SkillSpec] = {}


def register(spec: SkillSpec) -> SkillSpec:
    """Add one skill; a name already taken by a skill of another kind is an error."""
    old = SKILLS.get(spec.name)
    if old is not None and old.kind != spec.kind:
        raise ValueError(f"skill {spec.name!r} ({spec.kind}) is already a {old.kind} skill; pick another name")
    SKILLS[spec.name] = spec
    return spec


def declare(specs: dict[str, SkillSpec]) -> None:
    """Make ``specs`` the declared skills of this process (a config's ``skills:``, or the
    benchmarks an evaluation found saved under its data root), replacing the previous ones."""
    for name in [n for n, s in SKILLS.items() if s.kind == "declared"]:
        del SKILLS[name]
    for spec in specs.values():
        if spec.kind != "declared":
            raise ValueError(f"skill {spec.name!r}: declare() takes declared skills, got kind {spec.kind!r}")
        register(spec)


def declared_benchmarks() -> dict[str, dict]:
    """{name: benchmark entry} of the declared skills (what ``lmmcl.registry.benchmarks()`` adds)."""
    return {n: dict(s.declaration["benchmark"]) for n, s in SKILLS.items()
            if s.kind == "declared" and (s.declaration or {}).get("benchmark")}


def register_saved(data_root, names) -> list[str]:
    """Declare the skills among ``names`` that the registry lacks but whose benchmark was written
    under ``data_root`` by their conversion (``<data_root>/<name>/benchmark.json``): how an
    evaluation (or the gallery) of a declared skill knows its scorer without the config. Returns
    the names declared."""
    from .declared import BENCHMARK_FILE

    found = {}
    for name in names:
        if name in SKILLS and SKILLS[name].kind != "declared":
            continue
        path = Path(data_root) / name / BENCHMARK_FILE
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            found[name] = SkillSpec(name, None, [], None, splits=("test",), kind="declared",
                                    declaration={"benchmark": saved["benchmark"]})
    if found:
        keep = {n: s for n, s in SKILLS.items() if s.kind == "declared" and n not in found}
        declare({**keep, **found})
    return list(found)


for _spec in (*STUDY_SKILLS.values(), *broad_skills.BROAD_SKILLS.values(), *vision_skills.VISION_SKILLS.values()):
    register(_spec)

# the prefix that marks each research prior's skills -> the tiny tokenizers whose vocabulary has their words
PRIOR_TOKENIZERS = {"syn_broad_": broad_skills.TOKENIZERS, "syn_vis_": vision_skills.TOKENIZERS}


def _procedural(skill: str) -> SkillSpec:
    spec = SKILLS.get(skill)
    if spec is None or spec.make is None:
        allowed = [n for n, s in SKILLS.items() if s.make is not None]
        raise ValueError(f"unknown skill {skill!r}; allowed: {', '.join(allowed)}")
    return spec


def generate(skill: str, split: str, n: int, seed: int, image_size: int = 32, **options) -> list[dict]:
    """``n`` deterministic records of the procedural skill ``skill`` for ``split``.

    ``options`` go to the skill's maker (``max_count`` for syn_count, ``minute_step``
    for syn_clock). The train split of a skill with ``variants`` asks one of them per record
    (drawn from a separate stream: the pictures are those of the canonical split).
    """
    spec = _procedural(skill)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    rng = random.Random(skill_seed(skill, split, seed))
    variants = spec.variants if split == "train" else None
    wording = random.Random(skill_seed(skill, f"{split}/wording", seed))
    records = []
    for i in range(n):
        rec = spec.make(rng, image_size, **options)
        if variants:
            rec["question"] = wording.choice(variants)
        records.append({"id": f"{skill}_{split}_{i:05d}", "task": skill, **rec})
    return records


def write_skill(skill: str, split: str, n: int, seed: int, out_path, image_size: int = 32, **options) -> Path:
    """Generate a split and write it with :func:`lmmcl.data.contract.write_split`."""
    from . import contract  # heavy (datasets): the registries read SKILLS without it

    return contract.write_split(generate(skill, split, n, seed, image_size, **options), out_path)


@functools.lru_cache(maxsize=4)
def _vocabulary_texts(broad: bool, vision: bool) -> tuple[str, ...]:
    texts: list[str] = []
    for name, spec in SKILLS.items():
        if spec.make is None:  # declared skills never change a tokenizer
            continue
        if (name in broad_skills.BROAD_SKILLS and not broad) or (name in vision_skills.VISION_SKILLS and not vision):
            continue
        texts += spec.classes + spec.answers + list(spec.variants)
        # the question templates with every label they take (a seeded sample covers them all)
        for rec in generate(name, "vocabulary", 100, 0, image_size=8):  # small: only the texts matter
            texts += [rec["question"], rec["answer"]]
    texts += list(string.digits) + list(BIRD_NAMES) + list(string.ascii_uppercase)
    return tuple(dict.fromkeys(texts))


def vocabulary_texts(broad: bool = False, vision: bool = False) -> list[str]:
    """Every question and answer text the procedural skills can produce (the word-level tiny
    tokenizer's vocabulary is built from these: lmmcl.models.tiny.build_word_tokenizer). ``broad``
    adds the broad instruction prior's skills (lmmcl.data.broad_skills; the `word_broad`
    tokenizer), ``vision`` the vision prior's (lmmcl.data.vision_skills; `word_vision`); the
    default's vocabulary leaves both out so that its tokenizer and numbers stay as they are.
    Declared skills add nothing: their words must be in the tokenizer already (lmmcl.data.declared)."""
    return list(_vocabulary_texts(broad, vision))
