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
from collections.abc import Sequence
from pathlib import Path

SEED_FOLDER = re.compile(r"seed(0|[1-9][0-9]*)")
"""The folder name of one seed's training under its method's folder."""
FOLD_FOLDER = re.compile(r"fold(0|[1-9][0-9]*)")
"""The folder name of one cross-validation fold under its method's folder (``FOLDS``:
``<method>/fold<i>``, with seeds ``<method>/fold<i>/seed<k>``)."""


def split_seed_folder(path: str | os.PathLike[str]) -> tuple[str, int | None]:
    """``(method folder, seed)`` of a training folder; seed None outside ``seed<k>``."""
    p = Path(path)
    m = SEED_FOLDER.fullmatch(p.name)
    return (str(p.parent), int(m.group(1))) if m else (str(p), None)


def split_training_folder(path: str | os.PathLike[str]) -> tuple[str, int | None, int | None]:
    """``(method folder, fold, seed)`` of a training folder: ``<method>``,
    ``<method>/seed<k>``, ``<method>/fold<i>`` or ``<method>/fold<i>/seed<k>``.

    Example:
        >>> split_training_folder("r/gdl/fold1/seed2")
        ('r/gdl', 1, 2)
    """
    folder, seed = split_seed_folder(path)
    p = Path(folder)
    m = FOLD_FOLDER.fullmatch(p.name)
    return (str(p.parent), int(m.group(1)), seed) if m else (folder, None, seed)


def sub_label(fold: int | None, seed: int | None) -> str:
    """``fold<i>/seed<k>``, ``fold<i>``, ``seed<k>`` or ``""``: a training within its
    method."""
    return "/".join(([] if fold is None else [f"fold{fold}"])
                    + ([] if seed is None else [f"seed{seed}"]))


def training_label(path: str | os.PathLike[str]) -> str:
    """``method``, ``method/seed<k>``, ``method/fold<i>`` or ``method/fold<i>/seed<k>``:
    how a training is named to the user."""
    method, fold, seed = split_training_folder(os.path.abspath(path))
    name = Path(method).name
    sub = sub_label(fold, seed)
    return f"{name}/{sub}" if sub else name


def trainings_word(folds: Sequence[int | None], seeds: Sequence[int | None]) -> str:
    """What several trainings of one method are, for figure legends and titles:
    ``seeds``, ``folds`` or ``trainings (folds × seeds)``.

    Example:
        >>> trainings_word([0, 1], [None, None]), trainings_word([None], [0])
        ('folds', 'seeds')
    """
    has_folds = any(f is not None for f in folds)
    has_seeds = any(s is not None for s in seeds)
    if has_folds and has_seeds:
        return "trainings (folds × seeds)"
    return "folds" if has_folds else "seeds"
