"""Make the example skill of config/example_own_skill.yaml: 40 pictures and their LLaVA conversations.

Each picture shows one shape (circle, square, triangle or cross) in one colour; its conversation
asks whether the shape has a colour twice, once with its own colour and once with another, in a
random order, so that half the answers are yes:

    {"id": "color_check_000", "image": "images/000.png",
     "conversations": [{"from": "human", "value": "<image>\\nIs the circle blue?"},
                       {"from": "gpt", "value": "no"},
                       {"from": "human", "value": "Is the circle red?"},
                       {"from": "gpt", "value": "yes"}]}

This is LLaVA's own layout (haotian-liu/LLaVA, docs/Finetune_Custom_Data.md): a JSON list, each
row an `id`, an `image` path relative to an image folder, and `conversations` of human/gpt turns
with the `<image>` token in the text. Every word is one the tiny default's word-level tokenizer
knows (`lmmcl skill words`), so its shipped base can learn it; the base has never been asked such a
question. Plain Pillow, seeded: running it again writes the same pictures (tests/test_own_skill.py
checks the committed ones).

    .venv/bin/python examples/own_skill/make_example.py          # rewrites llava.json and images/
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
N = 40
SIZE, SS = 32, 4  # 32 px pictures (the tiny default's image_size), drawn 4x larger and downsampled
COLOURS = {"red": (215, 30, 30), "green": (30, 165, 45), "blue": (35, 65, 220),
           "yellow": (240, 220, 30), "purple": (135, 40, 170), "orange": (250, 135, 15)}
SHAPES = ("circle", "square", "triangle", "cross")


def draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    else:  # cross
        t = r / 3
        d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
        d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)


def picture(rng: random.Random, shape: str, colour: str) -> Image.Image:
    big = SIZE * SS
    img = Image.new("RGB", (big, big), tuple(rng.randint(200, 245) for _ in range(3)))
    r = rng.uniform(0.22, 0.32)
    cx, cy = rng.uniform(r + 0.04, 0.96 - r), rng.uniform(r + 0.04, 0.96 - r)
    draw_shape(ImageDraw.Draw(img), shape, big * cx, big * cy, big * r, COLOURS[colour])
    return img.resize((SIZE, SIZE), Image.Resampling.BOX)


def make(out: Path = HERE) -> list[dict]:
    rng = random.Random(0)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(N):
        shape, colour = rng.choice(SHAPES), rng.choice(sorted(COLOURS))
        other = rng.choice([c for c in sorted(COLOURS) if c != colour])
        picture(rng, shape, colour).save(out / "images" / f"{i:03d}.png")
        asked = [(colour, "yes"), (other, "no")]
        rng.shuffle(asked)
        turns = []
        for k, (c, answer) in enumerate(asked):
            turns += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + f"Is the {shape} {c}?"},
                      {"from": "gpt", "value": answer}]
        rows.append({"id": f"color_check_{i:03d}", "image": f"images/{i:03d}.png", "conversations": turns})
    (out / "llava.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    rows = make()
    print(f"wrote {len(rows)} conversations to {HERE / 'llava.json'} and their pictures to {HERE / 'images'}")
