"""PIL drawing helpers of the procedural skills (lmmcl.data.synthetic, broad_skills, vision_skills).

A leaf module: it knows no skill. Drawing happens on a canvas :data:`SS` times larger than the
output, which is then downsampled with a box filter: shapes get anti-aliased edges instead of
stair-steps, which keeps them recognisable at 32 px. Everything takes its randomness from the
caller's ``random.Random``, so a skill's pictures are a function of its seed.
"""
from __future__ import annotations

import math
import random


class _LazyModule:
    """A module imported on its first attribute access. Planning a workflow (Snakemake on a submit
    node) reads the skill registry in an environment without Pillow (docs/cluster.md); drawing an
    image needs it, and imports it then."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        import importlib

        return getattr(importlib.import_module(self._name), attr)


Image, ImageDraw, ImageFont = (_LazyModule(f"PIL.{m}") for m in ("Image", "ImageDraw", "ImageFont"))

SS = 4  # supersampling factor

RGB = tuple[int, int, int]

# Saturated / dark colours that contrast with a light background.
STRONG: tuple[RGB, ...] = (
    (200, 30, 30), (30, 140, 40), (30, 60, 210), (130, 40, 160),
    (220, 110, 0), (20, 20, 20), (0, 130, 140), (150, 80, 20),
)

WORD_STROKE = 2  # stroke width on the supersampled canvas: makes the 1-px font strokes bold


def jitter(rng: random.Random, colour: RGB, amount: int) -> RGB:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def light_bg(rng: random.Random) -> RGB:
    """A light, slightly tinted background that varies from image to image."""
    return (rng.randint(200, 245), rng.randint(200, 245), rng.randint(200, 245))


def contrasting_pair(rng: random.Random) -> tuple[RGB, RGB]:
    dark = (rng.randint(0, 90), rng.randint(0, 90), rng.randint(0, 90))
    light = (rng.randint(170, 255), rng.randint(170, 255), rng.randint(170, 255))
    return (dark, light) if rng.random() < 0.5 else (light, dark)


class Canvas:
    """A supersampled drawing surface addressed in fractions of the image side (0..1)."""

    def __init__(self, image_size: int, bg: RGB):
        self.size = image_size
        self.big = image_size * SS
        self.img = Image.new("RGB", (self.big, self.big), bg)
        self.draw = ImageDraw.Draw(self.img)

    def px(self, v: float) -> float:
        return v * self.big

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * self.big, y0 * self.big, x1 * self.big, y1 * self.big]

    def pts(self, points) -> list[tuple[float, float]]:
        return [(x * self.big, y * self.big) for x, y in points]

    def width(self, w: float) -> int:
        """Line width given as a fraction of the image side (at least one output pixel)."""
        return max(SS, round(w * self.big))

    def finish(self) -> Image.Image:
        return self.img.resize((self.size, self.size), Image.Resampling.BOX)


def regular_shape(c: Canvas, shape: str, cx: float, cy: float, r: float, colour: RGB) -> None:
    """Filled shape of half-size ``r`` centred on (cx, cy)."""
    if shape in ("circle", "circles"):
        c.draw.ellipse(c.box(cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape in ("square", "squares"):
        c.draw.rectangle(c.box(cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "triangle":
        c.draw.polygon(c.pts([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]), fill=colour)
    elif shape == "cross":
        t = r / 3
        c.draw.rectangle(c.box(cx - r, cy - t, cx + r, cy + t), fill=colour)
        c.draw.rectangle(c.box(cx - t, cy - r, cx + t, cy + r), fill=colour)
    else:  # pragma: no cover - internal misuse
        raise ValueError(f"unknown shape {shape!r}")


def draw_pattern(rng: random.Random, image_size: int, pattern: str, period: int, fg: RGB, bg: RGB,
                 horizontal: bool | None = None) -> Image.Image:
    """A texture (syn_texture's, also the vision prior's): `pattern` in `fg` on `bg` with the given
    period (pixels), at a random offset; "plain" is the background. Stripes run across if
    `horizontal`, down if not, either at random if None."""
    # Patterns are drawn at output resolution so edges stay crisp.
    img = Image.new("RGB", (image_size, image_size), bg)
    d = ImageDraw.Draw(img)
    off = rng.randrange(period)
    if pattern == "striped":
        if horizontal is None:
            horizontal = rng.random() < 0.5
        for k in range(-period, image_size + period, period):
            a, b = k + off, k + off + period // 2 - 1
            d.rectangle([0, a, image_size, b] if horizontal else [a, 0, b, image_size], fill=fg)
    elif pattern == "checkered":
        cell = period
        for i, y in enumerate(range(-cell + off, image_size, cell)):
            for j, x in enumerate(range(-cell + off, image_size, cell)):
                if (i + j) % 2:
                    d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=fg)
    elif pattern == "dotted":
        r = period / 4
        for y in range(-period + off, image_size + period, period):
            for x in range(-period + off, image_size + period, period):
                cx, cy = x + period / 2, y + period / 2
                d.ellipse([cx - r, cy - r, cx + r - 1, cy + r - 1], fill=fg)
    return img


def pattern_unit(image_size: int) -> int:
    return max(2, image_size // 8)  # 4 px at 32 px


def clock_face(rng: random.Random, image_size: int):
    """A clock dial (syn_clock's, also the vision prior's): (canvas, at, r) where `at(turns, length)`
    is the point at that angle (0 = 12 o'clock, clockwise) and distance from the centre, and `r`
    the dial's inner radius."""
    c = Canvas(image_size, jitter(rng, (150, 190, 160), 25))
    cx, cy = 0.5 + rng.uniform(-0.03, 0.03), 0.5 + rng.uniform(-0.03, 0.03)
    R = rng.uniform(0.43, 0.46)
    c.draw.ellipse(c.box(cx - R, cy - R, cx + R, cy + R), fill=jitter(rng, (35, 35, 45), 15))
    r = R - 0.06
    c.draw.ellipse(c.box(cx - r, cy - r, cx + r, cy + r), fill=jitter(rng, (245, 242, 230), 8))

    def at(angle_turns: float, length: float) -> tuple[float, float]:
        a = 2 * math.pi * angle_turns
        return cx + length * math.sin(a), cy - length * math.cos(a)

    for k in range(12):
        c.draw.line(c.pts([at(k / 12, r * 0.78), at(k / 12, r * 0.98)]), fill=(60, 60, 60), width=c.width(0.03))
    return c, at, r


def clock_hub(c: Canvas, at) -> None:
    cx, cy = at(0, 0)
    hub = 0.05
    c.draw.ellipse(c.box(cx - hub, cy - hub, cx + hub, cy + hub), fill=(30, 30, 30))


def blank_image(rng: random.Random, image_size: int) -> Image.Image:
    """A uniform grey picture (text-only questions: syn_prior, the broad prior's text skills)."""
    g = rng.randint(90, 200)
    return Image.new("RGB", (image_size, image_size), (g, g, g))
