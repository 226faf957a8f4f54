"""A vision prior for the tiny base (research configs, not the default).

A real LMM's vision tower has been pre-trained on hundreds of millions of pictures: when it is
fine-tuned on reading clocks or text, the features are mostly there and a stage learns to route
them to an answer. The default tiny base has only seen coloured shapes and dots, so each target
(textures, printed words, clock hands) is also new perception. These four procedurally generated
skills show the base pictures of the targets' kinds, drawn as the targets draw them, and ask about
what a target must perceive, in questions and answers no target uses:

- `syn_vis_fineness`: a striped, dotted or checkered texture: `Is the pattern fine or coarse?`
  -> `fine` / `coarse` (its period; a texture's kind is the syn_texture target's question)
- `syn_vis_stripes`: a striped texture: `Do the stripes run across or down?` -> `across` / `down`
- `syn_vis_letter`: one capital letter in the printed words' font:
  `Which letter is this?` -> `It is the letter K.` (the target reads lower-case words)
- `syn_vis_hand`: a clock dial with one hand at 12, 3, 6 or 9: `Where does the hand point?`
  -> `It points up.` / `down` / `left` / `right` (the target reads the time from two hands)

Base-only (train split); their words are only in the `word_vision` tokenizer's vocabulary
(`model.tiny.tokenizer: word_vision`), so the default's and `word_broad`'s tokenizers, models and
numbers do not change when they exist. `config/tiny_vision.yaml` uses them; docs/tiny_default.md
has the measurements.
"""

from __future__ import annotations

import dataclasses
import functools
import string

from .draw import ImageFont  # Pillow, imported when a letter is drawn (draw._LazyModule)
from .draw import (WORD_STROKE, Canvas, clock_face, clock_hub, contrasting_pair, draw_pattern, jitter, light_bg,
                   pattern_unit)
from .spec import SkillSpec
from .synthetic import PATTERNS  # syn_texture's patterns

_DIRECTIONS = ("up", "right", "down", "left")  # the hand at 12, 3, 6, 9 o'clock


def _make_fineness(rng, image_size):
    pattern = rng.choice([p for p in PATTERNS if p != "plain"])
    fg, bg = contrasting_pair(rng)
    coarse = rng.random() < 0.5
    unit = pattern_unit(image_size)
    img = draw_pattern(rng, image_size, pattern, unit * (2 if coarse else 1) * (2 if pattern == "dotted" else 1),
                       fg, bg)
    word = "coarse" if coarse else "fine"
    return {"image": img, "question": "Is the pattern fine or coarse?", "answer": word, "label": word}


def _make_stripes(rng, image_size):
    fg, bg = contrasting_pair(rng)
    period = pattern_unit(image_size) * rng.choice((1, 2))
    across = rng.random() < 0.5
    img = draw_pattern(rng, image_size, "striped", period, fg, bg, horizontal=across)
    word = "across" if across else "down"
    return {"image": img, "question": "Do the stripes run across or down?", "answer": word, "label": word}


@functools.lru_cache(maxsize=None)
def _letter_font(big_size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(4, round(0.6 * big_size)))


def _make_letter(rng, image_size):
    letter = rng.choice(string.ascii_uppercase)
    c = Canvas(image_size, light_bg(rng))
    font = _letter_font(c.big)
    x0, y0, x1, y1 = c.draw.textbbox((0, 0), letter, font=font, stroke_width=WORD_STROKE)
    x = (c.big - (x1 - x0)) * rng.uniform(0.2, 0.8) - x0
    y = (c.big - (y1 - y0)) * rng.uniform(0.2, 0.8) - y0
    ink = (rng.randint(0, 60), rng.randint(0, 60), rng.randint(0, 60))
    c.draw.text((x, y), letter, font=font, fill=ink, stroke_width=WORD_STROKE, stroke_fill=ink)
    return {"image": c.finish(), "question": "Which letter is this?", "answer": f"It is the letter {letter}.",
            "label": letter}


def _make_hand(rng, image_size):
    k = rng.randrange(4)
    c, at, r = clock_face(rng, image_size)
    c.draw.line(c.pts([at(0, 0), at(k / 4, r * 0.85)]), fill=jitter(rng, (30, 60, 200), 15), width=c.width(0.06))
    clock_hub(c, at)
    word = _DIRECTIONS[k]
    return {"image": c.finish(), "question": "Where does the hand point?", "answer": f"It points {word}.",
            "label": word}


VISION_SKILLS: dict[str, SkillSpec] = {
    s.name: dataclasses.replace(s, kind="research")
    for s in (
        SkillSpec("syn_vis_fineness", None, ["fine", "coarse"], _make_fineness, ["fine", "coarse"], ("train",)),
        SkillSpec("syn_vis_stripes", None, ["across", "down"], _make_stripes, ["across", "down"], ("train",)),
        SkillSpec("syn_vis_letter", None, list(string.ascii_uppercase), _make_letter,
                  [f"It is the letter {c}." for c in string.ascii_uppercase], ("train",)),
        SkillSpec("syn_vis_hand", None, list(_DIRECTIONS), _make_hand, [f"It points {d}." for d in _DIRECTIONS],
                  ("train",)),
    )
}
# the tiny tokenizers whose vocabulary has these skills' words (lmmcl.models.tiny.TOKENIZERS)
TOKENIZERS = ("word_vision", "word_broad_vision", "byte")
