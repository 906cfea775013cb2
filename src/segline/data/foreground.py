"""Warn when a training set has no foreground at all, or lacks a class.

A data set whose training labels are all background (an empty export, the wrong
label folder, a crop that removed the organ) trains without error: the network
learns to predict background everywhere and Dice is 1 by convention on empty cases.
Likewise a declared class that no training case holds (a lesion class only the test
cases have, a label map that merged it away) has no example to be learnt from. Neither may pass
silently, nor crash: a user may train so on purpose. :func:`warn_if_no_foreground`
prints one ``warning:`` line on stderr (naming the case store, the training split and
the classes) and training goes on; the trainer's log in the method folder keeps it.

The check reads the training labels (memory-mapped) only until every declared class
has been seen, so the usual data set costs one label read; a class that is really
absent costs one pass over the training labels, less than one epoch reads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from segline.casestore import CaseStore

IGNORED = 255  # training-label value of "unlabelled" voxels (segline.data.patches.IGNORE)
_CHUNK = 1 << 24  # voxels counted at a time: the counts never copy a whole volume


def has_foreground(label: np.ndarray) -> bool:
    """Whether any voxel is a foreground class (1..254; 0 is background, 255 ignored)."""
    return bool(np.any((label > 0) & (label != IGNORED)))


def classes_present(label: np.ndarray) -> set[int]:
    """The values (0..255) that occur in a uint8 label, counted a chunk at a time."""
    flat = np.asarray(label).reshape(-1)
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, flat.size, _CHUNK):
        counts += np.bincount(flat[start : start + _CHUNK], minlength=256)[:256]
    return {int(v) for v in np.flatnonzero(counts)}


def missing_classes(
    store: CaseStore,
    cases: Sequence[str],
    label_of: Callable[[str], np.ndarray] | None = None,
) -> tuple[list[int], bool]:
    """The declared foreground classes that no training label holds.

    Args:
        store: the case store (its ``dataset.json`` declares the classes).
        cases: the training case ids.
        label_of: a case's training label map (e.g. a trainer's
            :class:`segline.data.patches.TrainingLabels` ``label``), instead of the
            store's labels.

    Returns:
        ``(absent classes in order, whether any foreground voxel was seen at all)``.
    """
    wanted = set(range(1, store.n_classes))
    seen: set[int] = set()
    for case in cases:
        if label_of is not None:
            label = label_of(case)
        elif store.has_label(case):
            label = store.label(case)
        else:
            continue
        seen |= classes_present(label) - {0, IGNORED}
        if wanted <= seen:
            break
    return sorted(wanted - seen), bool(seen)


def _class_names(store: CaseStore, classes: Sequence[int]) -> str:
    """``2 (lesion), 3 (cyst)``: the classes with their names from ``dataset.json``."""
    names = store.dataset.get("labels", {})
    return ", ".join(f"{c} ({names[str(c)]})" if str(c) in names else str(c) for c in classes)


def warn_if_no_foreground(
    store: CaseStore,
    cases: Sequence[str],
    *,
    label_of: Callable[[str], np.ndarray] | None = None,
    where: str | Path | None = None,
    stream: TextIO | None = None,
    say: Callable[[str], None] | None = None,
) -> bool:
    """Print one warning line when no training label has a foreground voxel, or when
    a declared foreground class is in none of them.

    Args:
        store: the case store.
        cases: the training case ids.
        label_of: a case's training label map instead of the store's labels (a
            trainer whose training labels come from elsewhere).
        where: the path named in the warning (default: the store's folder).
        stream: where the line goes (default: stderr).
        say: prints the line instead (the trainer's, which tags it with the method).

    Returns:
        True when a warning was printed.
    """
    absent, any_foreground = missing_classes(store, cases, label_of)
    if not absent:
        return False
    name = where if where is not None else store.root
    if not any_foreground:
        line = (
            f"warning: {name}: every training label is empty (no foreground in "
            f"{len(cases)} case(s)); training goes on, but the network can only learn "
            "background and Dice is 1 on empty cases by convention"
        )
    else:
        several = len(absent) > 1
        line = (
            f"warning: {name}: class{'es' if several else ''} {_class_names(store, absent)} "
            f"{'are' if several else 'is'} in none of the {len(cases)} training case(s) "
            "(train split); training goes on without an example of "
            f"{'them' if several else 'it'}"
        )
    if say is not None:
        say(line)
    else:
        print(line, file=sys.stderr if stream is None else stream)
    return True
