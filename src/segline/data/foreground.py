"""Warn when a training set has no foreground at all.

A data set whose training labels are all background (an empty export, the wrong
label folder, a crop that removed the organ) trains without error: the network
learns to predict background everywhere and Dice is 1 by convention on empty cases.
That must not pass silently, nor crash: :func:`warn_if_no_foreground` prints one
``warning:`` line on stderr and training goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from segline.casestore import CaseStore
from segline.data.patches import PSEUDO

IGNORED = 255  # pseudo-label value for "unlabelled" voxels (not foreground)


def has_foreground(label: np.ndarray) -> bool:
    """Whether any voxel is a foreground class (1..254; 0 is background, 255 ignored)."""
    return bool(np.any((label > 0) & (label != IGNORED)))


def warn_if_no_foreground(
    store: CaseStore,
    cases: Sequence[str],
    *,
    pseudo_root: str | Path | None = None,
    where: str | Path | None = None,
    stream: TextIO | None = None,
    say: Callable[[str], None] | None = None,
) -> bool:
    """Print one warning line when no training label has a foreground voxel.

    Stops at the first case with foreground, so the usual data set costs one label
    read (memory-mapped).

    Args:
        store: the case store.
        cases: the training case ids.
        pseudo_root: read ``<pseudo_root>/<case>/pseudo.npy`` instead of the store's
            labels (training on pseudo-labels).
        where: the path named in the warning (default: the store's folder).
        stream: where the line goes (default: stderr).
        say: prints the line instead (the trainer's, which tags it with the method).

    Returns:
        True when the warning was printed.
    """
    for case in cases:
        if pseudo_root is not None:
            label = np.load(Path(pseudo_root) / case / PSEUDO, mmap_mode="r")
        elif store.has_label(case):
            label = store.label(case)
        else:
            continue
        if has_foreground(label):
            return False
    name = where if where is not None else store.root
    line = (
        f"warning: {name}: every training label is empty (no foreground in "
        f"{len(cases)} case(s)); training goes on, but the network can only learn "
        "background and Dice is 1 on empty cases by convention"
    )
    if say is not None:
        say(line)
    else:
        print(line, file=sys.stderr if stream is None else stream)
    return True
