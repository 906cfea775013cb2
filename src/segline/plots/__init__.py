"""The figure plumbing the plot CLIs share: colours, style, PNG output.

The plot CLIs (:mod:`segline.plots.curves`, ``boxplot``, ``progress``, ``overlays``,
``figures``) read the training folders through :mod:`segline.results` (the same
reader as the report) and draw with the helpers here.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, so no
global state and no GUI backend) under matplotlib's default style (a user's
``matplotlibrc`` does not change the output), and saved as PNG without the
``Software`` text chunk, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from segline import atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100


def method_colours(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A fixed colour per method: position in the sorted names picks a tab10 colour.

    The same set of methods gets the same colours in every plot.

    Example:
        >>> c = method_colours(["unet_dice", "unet_boundary"])
        >>> c["unet_boundary"] == method_colours(["unet_boundary"])["unet_boundary"]
        True
    """
    from matplotlib import colormaps

    palette = list(colormaps["tab10"].colors)
    if len(names) > len(palette):
        palette = list(colormaps["tab20"].colors)
    return {name: tuple(palette[i % len(palette)]) for i, name in enumerate(sorted(names))}


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """matplotlib's default style for the duration (ignores a user's ``matplotlibrc``)."""
    import matplotlib.style

    with matplotlib.style.context("default"):
        yield


def png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG bytes without varying metadata (no Software chunk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def save_png(fig: Figure, out: str | os.PathLike[str]) -> None:
    """Render ``fig`` and write it atomically to ``out``."""
    atomic.write_bytes(out, png_bytes(fig))
