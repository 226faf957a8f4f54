"""Figure helpers shared by every PNG the package writes (report plots, probes, gallery).

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot), so
nothing touches the global backend / pyplot state and every figure is released when saved.
Methods get the same colour in every figure (:func:`method_colors`, in plan order).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_path

__all__ = ["DPI", "HALO", "CHANCE_STYLE", "method_colors", "new_figure", "save_figure", "no_data"]

DPI = 120
#: white outline so reference lines stay visible on top of any bar colour
HALO = [patheffects.withStroke(linewidth=4, foreground="white")]
#: how a chance level is drawn
CHANCE_STYLE = {"color": "0.35", "ls": (0, (1, 1.2)), "lw": 2.2}


def method_colors(methods: Sequence[str]) -> dict[str, tuple]:
    """A stable colour per method (tab10 / tab20 in the given order)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def new_figure(width: float, height: float, dpi: int = DPI) -> Figure:
    """A figure of `width` x `height` inches on its own Agg canvas (not registered with pyplot)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Lay out `fig`, write it as PNG atomically and release its artists; returns the path."""
    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        fig.clear()  # release artists; the Figure is not registered with pyplot
    return path


def no_data(ax, msg: str) -> None:
    """Say in the middle of an empty axes why it is empty."""
    ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes, color="0.4")
