"""A broad instruction prior for the tiny base (research configs, not the default).

A real LMM has been instruction-tuned on thousands of kinds of questions before anyone fine-tunes
it on a new skill, so no single stage's answer format can take over its outputs. The default tiny
base has seen four (the three held-out skills and the targets' formats in `syn_prior`). These
sixteen procedurally generated skills each ask a different kind of question with its own answer
format, eight about a picture and eight text-only (on a blank picture). None is a held-out or a
target skill: no square's colour, no shape name as the answer, no dot position, no bird, count,
texture, printed word or clock.

They are base-only (train split), and their words are only in the `word_broad` tokenizer's
vocabulary (`model.tiny.tokenizer: word_broad`), so the default's tokenizer, model and numbers
do not change when they exist. `config/tiny_broad.yaml` uses them; docs/tiny_default.md has the
measurements.
"""

from __future__ import annotations

import random

import dataclasses

from .draw import STRONG, Canvas, blank_image, jitter, light_bg, regular_shape
from .spec import SkillSpec
from .synthetic import COLOURS, SHAPES  # the study's colour and shape names (its held-out words)

_ORDINALS = ("first", "second", "third")
_SPELL = ("tree", "fish", "book", "star", "moon", "ship", "frog", "milk", "rain", "bell")
_OPPOSITES = {"big": "small", "hot": "cold", "up": "down", "day": "night", "fast": "slow",
              "old": "new", "open": "closed", "happy": "sad"}
_OPPOSITES.update({v: k for k, v in list(_OPPOSITES.items())})
_NOUNS = ("apple", "river", "stone", "cloud", "chair", "lamp", "bread", "door")


def _two_shapes(rng: random.Random, image_size: int, *, same: bool = False, sizes=(0.13, 0.13)):
    """Two shapes side by side on a light background: (canvas, (left shape, right shape))."""
    a = rng.choice(SHAPES)
    b = a if same else rng.choice([s for s in SHAPES if s != a])
    c = Canvas(image_size, light_bg(rng))
    cy = rng.uniform(0.35, 0.65)
    for shape, cx, r in ((a, 0.27, sizes[0]), (b, 0.73, sizes[1])):
        regular_shape(c, shape, cx + rng.uniform(-0.03, 0.03), cy, r, jitter(rng, rng.choice(STRONG), 15))
    return c, (a, b)


# ------------------------------------------------------------------ about a picture
def _make_bigger(rng, image_size):
    big, small = rng.uniform(0.17, 0.21), rng.uniform(0.07, 0.10)
    left_big = rng.random() < 0.5
    c, (a, b) = _two_shapes(rng, image_size, sizes=(big, small) if left_big else (small, big))
    names = (a, b) if rng.random() < 0.5 else (b, a)
    winner = a if left_big else b
    return {"image": c.finish(), "question": f"Which is bigger, the {names[0]} or the {names[1]}?",
            "answer": f"the {winner}", "label": winner}


def _make_circle_colour(rng, image_size):
    colour, other = rng.sample(sorted(COLOURS), 2)
    c = Canvas(image_size, jitter(rng, (150, 150, 150), 10))
    circle_left = rng.random() < 0.5
    cy = rng.uniform(0.35, 0.65)
    for is_circle, cx in ((circle_left, 0.27), (not circle_left, 0.73)):
        shape, name = ("circle", colour) if is_circle else ("square", other)
        regular_shape(c, shape, cx, cy, 0.15, jitter(rng, COLOURS[name], 15))
    return {"image": c.finish(), "question": "What color is the circle?",
            "answer": f"The circle is {colour}.", "label": colour}


def _make_order(rng, image_size):
    c, (left, right) = _two_shapes(rng, image_size)
    first, second = (left, right) if rng.random() < 0.5 else (right, left)
    side = "left" if first == left else "right"
    return {"image": c.finish(), "question": f"Is the {first} to the left or to the right of the {second}?",
            "answer": f"to the {side}", "label": side}


def _make_odd(rng, image_size):
    common = rng.choice(SHAPES)
    odd = rng.choice([s for s in SHAPES if s != common])
    where = rng.randrange(3)
    c = Canvas(image_size, light_bg(rng))
    colour = jitter(rng, rng.choice(STRONG), 15)
    cy = rng.uniform(0.4, 0.6)
    for k, cx in enumerate((0.18, 0.5, 0.82)):
        regular_shape(c, odd if k == where else common, cx, cy, 0.12, colour)
    return {"image": c.finish(), "question": "Which of the three shapes is the odd one out?",
            "answer": f"the {_ORDINALS[where]} one", "label": _ORDINALS[where]}


def _make_same(rng, image_size):
    same = rng.random() < 0.5
    c, _ = _two_shapes(rng, image_size, same=same, sizes=(0.15, 0.15))
    verdict = "true" if same else "false"
    return {"image": c.finish(), "question": "Are the two shapes the same? Answer true or false.",
            "answer": verdict, "label": verdict}


def _make_fill(rng, image_size):
    filled = rng.random() < 0.5
    c = Canvas(image_size, light_bg(rng))
    r = rng.uniform(0.22, 0.32)
    cx, cy = rng.uniform(r + 0.05, 0.95 - r), rng.uniform(r + 0.05, 0.95 - r)
    colour = jitter(rng, rng.choice(STRONG), 15)
    if filled:
        c.draw.ellipse(c.box(cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        c.draw.ellipse(c.box(cx - r, cy - r, cx + r, cy + r), outline=colour, width=c.width(0.06))
    verdict = "filled" if filled else "hollow"
    return {"image": c.finish(), "question": "Is the circle filled or hollow?", "answer": verdict, "label": verdict}


def _make_background(rng, image_size):
    dark = rng.random() < 0.5
    g = rng.randint(15, 70) if dark else rng.randint(190, 245)
    c = Canvas(image_size, jitter(rng, (g, g, g), 10))
    r = rng.uniform(0.08, 0.14)
    cx, cy = rng.uniform(r + 0.05, 0.95 - r), rng.uniform(r + 0.05, 0.95 - r)
    regular_shape(c, rng.choice(SHAPES), cx, cy, r, jitter(rng, rng.choice(list(COLOURS.values())), 15))
    word = "dark" if dark else "light"
    return {"image": c.finish(), "question": "Is the background dark or light?",
            "answer": f"It is {word}.", "label": word}


def _make_line(rng, image_size):
    way = rng.choice(("horizontally", "vertically", "diagonally"))
    c = Canvas(image_size, light_bg(rng))
    t, lo, hi = rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.18), rng.uniform(0.82, 0.92)
    pts = {"horizontally": [(lo, t), (hi, t)], "vertically": [(t, lo), (t, hi)],
           "diagonally": [(lo, lo), (hi, hi)] if rng.random() < 0.5 else [(lo, hi), (hi, lo)]}[way]
    c.draw.line(c.pts(pts), fill=jitter(rng, rng.choice(STRONG), 15), width=c.width(0.08))
    return {"image": c.finish(), "question": "Which way does the line run?", "answer": way, "label": way}


# ------------------------------------------------------------------ text-only (blank picture)
def _make_add(rng, image_size):
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return {"image": blank_image(rng, image_size), "question": f"What is {a} plus {b}?", "answer": str(a + b),
            "label": "sum"}


def _make_larger(rng, image_size):
    a, b = rng.sample(range(10), 2)
    return {"image": blank_image(rng, image_size), "question": f"Which number is larger, {a} or {b}?",
            "answer": f"{max(a, b)} is larger.", "label": "larger"}


def _make_spell(rng, image_size):
    w = rng.choice(_SPELL)
    return {"image": blank_image(rng, image_size), "question": f"Spell the word {w}.", "answer": "-".join(w),
            "label": w}


def _make_next_letter(rng, image_size):
    i = rng.randrange(25)
    return {"image": blank_image(rng, image_size), "question": f"Which letter comes after {chr(65 + i)}?",
            "answer": f"The letter {chr(66 + i)}.", "label": "letter"}


def _make_opposite(rng, image_size):
    w = rng.choice(sorted(_OPPOSITES))
    return {"image": blank_image(rng, image_size), "question": f"What is the opposite of {w}?",
            "answer": _OPPOSITES[w], "label": w}


def _make_repeat(rng, image_size):
    words = " ".join(rng.sample(_NOUNS, 3))
    return {"image": blank_image(rng, image_size), "question": f"Repeat after me: {words}", "answer": words,
            "label": "repeat"}


def _make_sort(rng, image_size):
    d = [rng.randint(0, 9) for _ in range(3)]
    return {"image": blank_image(rng, image_size), "question": f"Sort these digits: {' '.join(map(str, d))}",
            "answer": ", ".join(map(str, sorted(d))), "label": "sort"}


def _make_last_word(rng, image_size):
    words = rng.sample(_NOUNS, 3)
    return {"image": blank_image(rng, image_size), "question": f"What is the last word of: {' '.join(words)}?",
            "answer": f"The last word is {words[-1]}.", "label": words[-1]}


def _sorted_triples() -> list[str]:
    return sorted({", ".join(map(str, sorted((a, b, c)))) for a in range(10) for b in range(10) for c in range(10)})


def _repeats() -> list[str]:
    return [f"{a} {b} {c}" for a in _NOUNS for b in _NOUNS for c in _NOUNS if len({a, b, c}) == 3]


_ORIENT = ["horizontally", "vertically", "diagonally"]
BROAD_SKILLS: dict[str, SkillSpec] = {
    s.name: dataclasses.replace(s, kind="research")
    for s in (
        # about a picture
        SkillSpec("syn_broad_bigger", None, list(SHAPES), _make_bigger, [f"the {s}" for s in SHAPES], ("train",)),
        SkillSpec("syn_broad_circle_colour", None, list(COLOURS), _make_circle_colour,
                  [f"The circle is {c}." for c in COLOURS], ("train",)),
        SkillSpec("syn_broad_order", None, ["left", "right"], _make_order, ["to the left", "to the right"], ("train",)),
        SkillSpec("syn_broad_odd", None, list(_ORDINALS), _make_odd, [f"the {o} one" for o in _ORDINALS], ("train",)),
        SkillSpec("syn_broad_same", None, ["true", "false"], _make_same, ["true", "false"], ("train",)),
        SkillSpec("syn_broad_fill", None, ["filled", "hollow"], _make_fill, ["filled", "hollow"], ("train",)),
        SkillSpec("syn_broad_background", None, ["dark", "light"], _make_background,
                  ["It is dark.", "It is light."], ("train",)),
        SkillSpec("syn_broad_line", None, _ORIENT, _make_line, _ORIENT, ("train",)),
        # text-only
        SkillSpec("syn_broad_add", None, ["sum"], _make_add, [str(n) for n in range(19)], ("train",)),
        SkillSpec("syn_broad_larger", None, ["larger"], _make_larger, [f"{n} is larger." for n in range(1, 10)],
                  ("train",)),
        SkillSpec("syn_broad_spell", None, list(_SPELL), _make_spell, ["-".join(w) for w in _SPELL], ("train",)),
        SkillSpec("syn_broad_next_letter", None, ["letter"], _make_next_letter,
                  [f"The letter {chr(66 + i)}." for i in range(25)], ("train",)),
        SkillSpec("syn_broad_opposite", None, sorted(_OPPOSITES), _make_opposite, sorted(set(_OPPOSITES.values())),
                  ("train",)),
        SkillSpec("syn_broad_repeat", None, ["repeat"], _make_repeat, _repeats(), ("train",)),
        SkillSpec("syn_broad_sort", None, ["sort"], _make_sort, _sorted_triples(), ("train",)),
        SkillSpec("syn_broad_last_word", None, list(_NOUNS), _make_last_word,
                  [f"The last word is {w}." for w in _NOUNS], ("train",)),
    )
}
# the tiny tokenizers whose vocabulary has these skills' words (lmmcl.models.tiny.TOKENIZERS)
TOKENIZERS = ("word_broad", "word_broad_vision", "byte")
