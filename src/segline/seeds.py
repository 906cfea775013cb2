"""Where a training's seed lives in the results layout (``SEEDS``, make/common.mk).

With ``SEEDS='0 1 2'`` every method is trained once per seed, each training in its
own folder ``<run>/<method>/seed<k>/``; without, one training per method in
``<run>/<method>/``. Every tool that names a training (the trainer's console lines,
plots, report, pack) reads the method and the seed from the path with this module,
so they agree.

Example:
    >>> split_seed_folder("results/toy/seeds/gdl/seed2")
    ('results/toy/seeds/gdl', 2)
    >>> training_label("results/toy/gdl"), training_label("results/toy/seeds/gdl/seed2")
    ('gdl', 'gdl/seed2')
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SEED_FOLDER = re.compile(r"seed(0|[1-9][0-9]*)")
"""The folder name of one seed's training under its method's folder."""


def split_seed_folder(path: str | os.PathLike[str]) -> tuple[str, int | None]:
    """``(method folder, seed)`` of a training folder; seed None outside ``seed<k>``."""
    p = Path(path)
    m = SEED_FOLDER.fullmatch(p.name)
    return (str(p.parent), int(m.group(1))) if m else (str(p), None)


def training_label(path: str | os.PathLike[str]) -> str:
    """``method`` or ``method/seed<k>``: how a training is named to the user."""
    method, seed = split_seed_folder(os.path.abspath(path))
    name = Path(method).name
    return name if seed is None else f"{name}/seed{seed}"
