"""Label descriptions written beside every prediction folder, for the viewers.

Two small text files name and colour the classes of the case store's
``dataset.json`` (``labels``: index -> name):

* ``labels.txt``: an ITK-SNAP label description file, one line per class with the
  columns ``IDX -R- -G- -B- -A-- VIS MSH LABEL``: index, red, green, blue (0..255),
  opacity (0..1), visibility and mesh visibility (0/1) and the quoted name;
* ``labels.ctbl``: a 3D Slicer colour table (header line ``# Color table file``, then
  ``index name R G B A`` with 0..255 components and spaces in names replaced by ``_``).

Colours come from the fixed :data:`PALETTE` (class k > 0 takes entry ``(k - 1) mod
len``), so a class has the same colour in every prediction of every method; the
background (0) is black and fully transparent in both files.

Example:
    >>> print(itksnap_text({0: "background", 1: "spleen"}).splitlines()[-1])
        1   230    25    75     1  1  1    "spleen"
"""

from __future__ import annotations

from pathlib import Path

from segline import atomic

ITKSNAP_FILE = "labels.txt"
SLICER_FILE = "labels.ctbl"

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (255, 225, 25),  # yellow
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (170, 110, 40),  # brown
)
"""Distinct RGB colours (0..255) of the foreground classes, in class order."""


def colour(index: int) -> tuple[int, int, int]:
    """RGB (0..255) of class ``index``: black for the background, else the palette."""
    if index == 0:
        return (0, 0, 0)
    return PALETTE[(index - 1) % len(PALETTE)]


def _classes(labels: dict[int, str] | dict[str, str]) -> list[tuple[int, str]]:
    return sorted((int(k), str(v)) for k, v in labels.items())


def itksnap_text(labels: dict[int, str] | dict[str, str]) -> str:
    """The ITK-SNAP label description file of ``labels`` (index -> name)."""
    lines = [
        "# ITK-SNAP label description file written by segline (segline.predicting.labels)",
        "# columns: IDX -R- -G- -B- -A-- VIS MSH LABEL",
        "#   index; red, green, blue 0..255; opacity 0..1; visible 0/1; in 3D mesh 0/1; name",
    ]
    for k, name in _classes(labels):
        r, g, b = colour(k)
        shown = 0 if k == 0 else 1
        text = name.replace('"', "'")
        lines.append(f'{k:5d} {r:5d} {g:5d} {b:5d} {shown:5d} {shown:2d} {shown:2d}    "{text}"')
    return "\n".join(lines) + "\n"


def slicer_text(labels: dict[int, str] | dict[str, str]) -> str:
    """The 3D Slicer colour table of ``labels`` (index -> name)."""
    classes = _classes(labels)
    lines = [
        "# Color table file written by segline (segline.predicting.labels)",
        f"# {len(classes)} values",
    ]
    for k, name in classes:
        r, g, b = colour(k)
        alpha = 0 if k == 0 else 255
        lines.append(f"{k} {'_'.join(name.split()) or f'class_{k}'} {r} {g} {b} {alpha}")
    return "\n".join(lines) + "\n"


def write_label_files(folder: str | Path, labels: dict[int, str] | dict[str, str]) -> list[Path]:
    """Write ``labels.txt`` (ITK-SNAP) and ``labels.ctbl`` (3D Slicer) into ``folder``."""
    folder = Path(folder)
    atomic.write_text(folder / ITKSNAP_FILE, itksnap_text(labels))
    atomic.write_text(folder / SLICER_FILE, slicer_text(labels))
    return [folder / ITKSNAP_FILE, folder / SLICER_FILE]
