"""The study's skills: synthetic stand-ins for its benchmarks (the default's targets and held-out set).

Each skill mirrors one real benchmark of the study (same question/answer format, much
simpler pictures) so that the whole pipeline -- data, training, lmms-eval scoring --
can run on a laptop with a tiny model. The pictures are made easy on purpose: large,
high-contrast drawings, thick lines and few classes, with backgrounds, colours, sizes
and positions jittered so that no single pixel gives the answer away.

Everything is deterministic given ``(skill, split, seed)``: the RNG seed comes from a
stable CRC32 of those three (lmmcl.data.spec.skill_seed, never Python's salted ``hash()``), so
train and test come from different streams and a rerun reproduces the same bytes.

This module defines the skills (:data:`STUDY_SKILLS`); the registry that holds them with every
other kind, and generates and writes their splits, is :mod:`lmmcl.data.skills`. Drawing helpers:
:mod:`lmmcl.data.draw`.
"""

from __future__ import annotations

import functools
import json
import random

from .draw import (STRONG, WORD_STROKE, Canvas, ImageFont, blank_image, clock_face, clock_hub, contrasting_pair,
                   draw_pattern, jitter, light_bg, pattern_unit, regular_shape)
from .spec import SkillSpec


# --------------------------------------------------------------------------- syn_birds
# Body colour plus one other attribute (head colour, wing mark, tail or eyes) per species.
_BIRDS: dict[str, dict] = {
    "robin": {"body": (215, 75, 25), "head": (70, 70, 70), "wing": None},
    "finch": {"body": (240, 205, 20), "head": (20, 20, 20), "wing": (20, 20, 20)},
    "jay": {"body": (35, 80, 215), "head": (250, 250, 250), "wing": (250, 250, 250)},
    "wren": {"body": (125, 75, 35), "head": (125, 75, 35), "wing": None, "tail_up": True},
    "crow": {"body": (25, 25, 25), "head": (25, 25, 25), "wing": (110, 110, 110)},
    "owl": {"body": (165, 140, 100), "head": (165, 140, 100), "wing": None, "eyes": True},
}
BIRD_NAMES = tuple(_BIRDS)
_LETTERS = "ABCD"


def _draw_bird(c: Canvas, rng: random.Random, species: str) -> None:
    spec = _BIRDS[species]
    s = rng.uniform(0.85, 1.05)  # overall scale
    flip = rng.random() < 0.5  # facing left or right
    ox, oy = rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)

    def p(x: float, y: float) -> tuple[float, float]:
        # Bird drawn facing right around (0.5, 0.5); mirror, scale and shift.
        x = 0.5 + (x - 0.5) * s
        y = 0.5 + (y - 0.5) * s
        if flip:
            x = 1 - x
        return x + ox, y + oy

    def ellipse(x0, y0, x1, y1, colour):
        (a, b), (cc, d) = p(x0, y0), p(x1, y1)
        c.draw.ellipse(c.box(min(a, cc), min(b, d), max(a, cc), max(b, d)), fill=colour)

    body = jitter(rng, spec["body"], 12)
    head = body if spec["head"] == spec["body"] else jitter(rng, spec["head"], 8)
    # tail
    if spec.get("tail_up"):  # wren: cocked-up tail
        tail = [(0.24, 0.52), (0.04, 0.20), (0.14, 0.16)]
    else:
        tail = [(0.22, 0.55), (0.02, 0.60), (0.06, 0.74)]
    c.draw.polygon(c.pts([p(*q) for q in tail]), fill=body)
    # legs
    for lx in (0.42, 0.52):
        c.draw.line(c.pts([p(lx, 0.74), p(lx, 0.88)]), fill=(60, 40, 20), width=c.width(0.035))
    # body, wing mark, head, beak
    ellipse(0.14, 0.38, 0.70, 0.78, body)
    if spec["wing"] is not None:
        ellipse(0.26, 0.48, 0.54, 0.64, jitter(rng, spec["wing"], 8))
    head_r = 0.20 if spec.get("eyes") else 0.15
    hx, hy = 0.70, 0.36
    ellipse(hx - head_r, hy - head_r, hx + head_r, hy + head_r, head)
    beak = (250, 150, 0) if species != "finch" else (230, 120, 60)
    c.draw.polygon(c.pts([p(hx + head_r - 0.02, hy - 0.05), p(hx + head_r + 0.14, hy + 0.01), p(hx + head_r - 0.02, hy + 0.06)]), fill=beak)
    if spec.get("eyes"):
        for ex in (hx - 0.09, hx + 0.07):
            ellipse(ex - 0.065, hy - 0.08, ex + 0.065, hy + 0.05, (250, 250, 240))
            ellipse(ex - 0.03, hy - 0.045, ex + 0.03, hy + 0.015, (10, 10, 10))
    else:
        ellipse(hx + 0.03, hy - 0.06, hx + 0.08, hy - 0.01, (255, 255, 255) if spec["head"][0] < 128 else (10, 10, 10))


def _make_birds(rng: random.Random, image_size: int, shuffle_options: bool = False) -> dict:
    """4-way multiple choice answered with a letter.

    Default: the four options are always robin, finch, jay, wren in that order, so the letter
    names the species; a 250 K-parameter model learns that in a few hundred steps. With
    `shuffle_options=True` (the study's CUB format): one of six species, three seeded
    distractors and a random letter position, which a tiny model cannot learn in minutes.
    """
    if shuffle_options:
        species = rng.choice(BIRD_NAMES)
        distractors = rng.sample([b for b in BIRD_NAMES if b != species], 3)
        pos = rng.randrange(4)
        options = distractors[:pos] + [species] + distractors[pos:]
    else:
        options = list(BIRD_NAMES[:4])
        pos = rng.randrange(4)
        species = options[pos]
    c = Canvas(image_size, jitter(rng, (195, 225, 240), 18))
    _draw_bird(c, rng, species)
    lines = "\n".join(f"{_LETTERS[i]}. {name}" for i, name in enumerate(options))
    return {
        "image": c.finish(),
        "question": f"Which bird is this?\n{lines}\nAnswer with the letter.",
        "answer": _LETTERS[pos],
        "label": species,
        "options": json.dumps(options),
    }


# --------------------------------------------------------------------------- syn_count
COUNT_LABELS = ("squares", "circles")


def _count_answer(n: int, label: str) -> str:
    # As in the study: the verb agrees with N but the noun stays plural.
    return f"There {'is' if n == 1 else 'are'} {n} {label} in this image."


def _make_count(rng: random.Random, image_size: int, max_count: int = 4) -> dict:
    if not 1 <= max_count <= 16:
        raise ValueError(f"max_count must be in 1..16 (a 4x4 grid), got {max_count}")
    n = rng.randint(1, max_count)
    label = rng.choice(COUNT_LABELS)
    colour = jitter(rng, rng.choice(STRONG), 15)
    c = Canvas(image_size, light_bg(rng))
    for cell in rng.sample(range(16), n):
        row, col = divmod(cell, 4)
        r = 0.125 * rng.uniform(0.68, 0.8)
        regular_shape(c, label, (col + 0.5) / 4, (row + 0.5) / 4, r, colour)
    return {
        "image": c.finish(),
        "question": f"How many {label} are in this image?",
        "answer": _count_answer(n, label),
        "count": n,
        "label": label,
    }


# --------------------------------------------------------------------------- syn_texture
PATTERNS = ("striped", "dotted", "checkered", "plain")


def _make_texture(rng: random.Random, image_size: int) -> dict:
    pattern = rng.choice(PATTERNS)
    fg, bg = contrasting_pair(rng)
    unit = pattern_unit(image_size)
    period = unit * rng.choice((1, 2)) if pattern != "dotted" else unit * 2
    img = draw_pattern(rng, image_size, pattern, period, fg, bg)
    asked = pattern if rng.random() < 0.5 else rng.choice([p for p in PATTERNS if p != pattern])
    return {
        "image": img,
        "question": f"Is this pattern {asked}?",
        "answer": "yes" if asked == pattern else "no",
        "label": pattern,
    }


# --------------------------------------------------------------------------- syn_words
WORDS = ("cat", "dog", "sun", "map", "box", "pen", "cup", "hat")


@functools.lru_cache(maxsize=None)
def _word_font(big_size: int) -> ImageFont.FreeTypeFont:
    """Largest default-font size whose widest (bold) word fills ~88% of the canvas width."""
    target = 0.88 * big_size
    size = 4
    while True:
        font = ImageFont.load_default(size=size + 1)
        if max(font.getlength(w) for w in WORDS) + 2 * WORD_STROKE > target:
            return ImageFont.load_default(size=size)
        size += 1


def _make_words(rng: random.Random, image_size: int) -> dict:
    word = rng.choice(WORDS)
    c = Canvas(image_size, light_bg(rng))
    font = _word_font(c.big)
    x0, y0, x1, y1 = c.draw.textbbox((0, 0), word, font=font, stroke_width=WORD_STROKE)
    free_x, free_y = c.big - (x1 - x0), c.big - (y1 - y0)
    x = free_x * rng.uniform(0.2, 0.8) - x0  # small jitter, never clipped
    y = free_y * rng.uniform(0.2, 0.8) - y0
    ink = (rng.randint(0, 60), rng.randint(0, 60), rng.randint(0, 60))
    c.draw.text((x, y), word, font=font, fill=ink, stroke_width=WORD_STROKE, stroke_fill=ink)
    return {
        "image": c.finish(),
        "question": "What word is written here?",
        "answer": word,
        "answers": [word] * 10,  # TextVQA keeps 10 human answers per question
        "label": word,
    }


# --------------------------------------------------------------------------- syn_clock
def _make_clock(rng: random.Random, image_size: int, minute_step: int = 30) -> dict:
    if minute_step <= 0 or 60 % minute_step:
        raise ValueError(f"minute_step must divide 60, got {minute_step}")
    hour = rng.randint(1, 12)
    minute = rng.randrange(0, 60, minute_step)
    c, at, r = clock_face(rng, image_size)
    hour_turns = ((hour % 12) + minute / 60) / 12
    centre = at(0, 0)
    c.draw.line(c.pts([centre, at(minute / 60, r * 0.92)]), fill=jitter(rng, (30, 60, 200), 15), width=c.width(0.045))
    c.draw.line(c.pts([centre, at(hour_turns, r * 0.55)]), fill=jitter(rng, (200, 30, 30), 15), width=c.width(0.10))
    clock_hub(c, at)
    return {
        "image": c.finish(),
        "question": "What time does the clock show?",
        "answer": f"{hour:02d}:{minute:02d}",
        "hour": hour,
        "minute": minute,
    }


# --------------------------------------------------------------------------- held-out skills
COLOURS: dict[str, RGB] = {
    "red": (215, 30, 30), "green": (30, 165, 45), "blue": (35, 65, 220),
    "yellow": (240, 220, 30), "purple": (135, 40, 170), "orange": (250, 135, 15),
}


def _make_color(rng: random.Random, image_size: int) -> dict:
    name = rng.choice(tuple(COLOURS))
    g = rng.randint(110, 170)
    c = Canvas(image_size, jitter(rng, (g, g, g), 8))
    half = rng.uniform(0.15, 0.32)
    cx, cy = rng.uniform(half + 0.03, 0.97 - half), rng.uniform(half + 0.03, 0.97 - half)
    regular_shape(c, "square", cx, cy, half, jitter(rng, COLOURS[name], 15))
    return {"image": c.finish(), "question": "What color is the square?", "answer": name, "label": name}


SHAPES = ("circle", "square", "triangle", "cross")


def _make_shape(rng: random.Random, image_size: int) -> dict:
    shape = rng.choice(SHAPES)
    c = Canvas(image_size, light_bg(rng))
    r = rng.uniform(0.25, 0.38)
    cx, cy = rng.uniform(r + 0.04, 0.96 - r), rng.uniform(r + 0.04, 0.96 - r)
    regular_shape(c, shape, cx, cy, r, jitter(rng, rng.choice(STRONG), 15))
    return {"image": c.finish(), "question": "What shape is this?", "answer": shape, "label": shape}


POSITIONS = ("left", "right", "top", "bottom")


def _make_position(rng: random.Random, image_size: int) -> dict:
    where = rng.choice(POSITIONS)
    c = Canvas(image_size, light_bg(rng))
    r = rng.uniform(0.09, 0.13)
    along = rng.uniform(0.38, 0.62)  # central band, so "left" is never also "top"
    across = rng.uniform(r + 0.03, 0.25)  # distance from the chosen edge
    cx, cy = {"left": (across, along), "right": (1 - across, along),
              "top": (along, across), "bottom": (along, 1 - across)}[where]
    c.draw.ellipse(c.box(cx - r, cy - r, cx + r, cy + r), fill=jitter(rng, rng.choice(STRONG), 15))
    return {"image": c.finish(), "question": "Where is the dot?", "answer": where, "label": where}


# --------------------------------------------------------------------------- base-only data
# The held-out skills' train splits (what the tiny base is pre-trained on) ask each question in one
# of several wordings, so the base learns to answer from the question's meaning rather than from
# one fixed string; their test splits always ask the first (canonical) wording.
QUESTION_VARIANTS: dict[str, tuple[str, ...]] = {
    "syn_color": ("What color is the square?", "Which color is the square?", "What is the color of the square?",
                  "Name the color of the square.", "Tell me the square's color."),
    "syn_shape": ("What shape is this?", "Which shape is this?", "What is this shape?", "Name the shape.",
                  "Tell me the shape in the picture."),
    "syn_position": ("Where is the dot?", "Where is the dot located?", "On which side is the dot?",
                     "Name the side of the dot.", "Tell me where the dot is."),
}
PRIOR_TARGETS = ("syn_birds", "syn_count", "syn_texture", "syn_words", "syn_clock")


def _hint(skill: str, rec: dict) -> str:
    if skill == "syn_count":
        return str(rec["count"])
    if skill == "syn_clock":
        return f"{rec['hour']} {rec['minute']}"
    return rec["label"]  # bird species, pattern, word


def _make_prior(rng: random.Random, image_size: int) -> dict:
    """The language prior of the tiny base: a target skill's own question and answer format, with
    a blank image and the answer's content given in the text ("...\nHint: jay" -> "C").

    A pre-trained LLM already knows how to answer "How many squares...?" with "There are 3 squares
    in this image." or a lettered option list with a letter; what it learns from a target is to
    read the content from the image. This gives the tiny base that prior without any target
    image: with no hint it answers a target question in the right format with a guessed content.
    """
    skill = PRIOR_TARGETS[rng.randrange(len(PRIOR_TARGETS))]
    rec = STUDY_SKILLS[skill].make(rng, 8)  # the picture is discarded: the smallest one is enough
    return {
        "image": blank_image(rng, image_size),
        "question": f"{rec['question']}\nHint: {_hint(skill, rec)}",
        "answer": rec["answer"],
        "label": skill,
    }


# --------------------------------------------------------------------------- the study's skills
STUDY_SKILLS: dict[str, SkillSpec] = {
    s.name: s
    for s in (
        SkillSpec("syn_birds", "CUB-200 (multiple choice)", list(BIRD_NAMES), _make_birds, list(_LETTERS)),
        SkillSpec("syn_count", "PixMo-Count", list(COUNT_LABELS), _make_count,
                  [_count_answer(n, lab) for lab in COUNT_LABELS for n in range(1, 5)]),
        SkillSpec("syn_texture", "PathVQA (yes/no)", list(PATTERNS), _make_texture, ["yes", "no"]),
        SkillSpec("syn_words", "TextVQA", list(WORDS), _make_words, list(WORDS)),
        SkillSpec("syn_clock", "TimeClock", [f"{h:02d}:{m:02d}" for h in range(1, 13) for m in (0, 30)],
                  _make_clock, [f"{h:02d}:{m:02d}" for h in range(1, 13) for m in (0, 30)]),
        SkillSpec("syn_color", None, list(COLOURS), _make_color, list(COLOURS),
                  variants=QUESTION_VARIANTS["syn_color"]),
        SkillSpec("syn_shape", None, list(SHAPES), _make_shape, list(SHAPES),
                  variants=QUESTION_VARIANTS["syn_shape"]),
        SkillSpec("syn_position", None, list(POSITIONS), _make_position, list(POSITIONS),
                  variants=QUESTION_VARIANTS["syn_position"]),
    )
}
# base-only (no benchmark, no test split): answers in every target's format
STUDY_SKILLS["syn_prior"] = SkillSpec("syn_prior", None, list(PRIOR_TARGETS), _make_prior,
                                      [a for t in PRIOR_TARGETS for a in STUDY_SKILLS[t].answers], splits=("train",))


# Names that lived here before the registry moved to lmmcl.data.skills, kept for existing callers
# (`from lmmcl.data.synthetic import write_skill`). Resolved on first use, so this module imports
# nothing of the registry: the registry imports it, never the other way round.
_MOVED = {"SKILLS", "generate", "write_skill", "vocabulary_texts", "PRIOR_TOKENIZERS"}


def __getattr__(name: str):
    if name in _MOVED:
        from . import skills

        return getattr(skills, name)
    if name == "skill_seed":
        from .spec import skill_seed

        return skill_seed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
