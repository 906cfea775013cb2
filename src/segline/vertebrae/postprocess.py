"""Post-processing of the semantic method's class maps: :func:`largest_component_per_class`.

A voxel-wise argmax over one class per vertebra scatters small islands of a class
over other vertebrae (a neighbour's class inside a vertebra's body, a stray class at
a patch border). The instance metrics (:mod:`segline.metrics.instances`) take every
predicted label value as one instance, so such islands lower the matched Dice and,
when an island's class is not otherwise predicted, count as false positives. Keeping
for each class only its largest 26-connected component (the rest becomes background)
is the usual clean-up of semantic vertebra labelling: one vertebra per class, each
one connected object.

Measured on the toy's test split (37 vertebrae; a semantic training of ``UNet3D
base=4 depth=3``, whole-spine patches 96,40,40, ``dice:1``, 10 epochs of 36 patches):
identification 0/37 -> 5/37, Dice 0.05 -> 0.13, false positives 2.2 -> 1.2 per case.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["largest_component_per_class"]

_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def largest_component_per_class(pred: np.ndarray) -> np.ndarray:
    """Keep each class's largest 26-connected component; the rest becomes background.

    Args:
        pred: integer class map (Z, Y, X), 0 = background.

    Returns:
        A class map of the same shape and dtype; of equal-sized largest components the
        one met first in C order is kept.

    Example:
        >>> p = np.zeros((1, 1, 7), np.uint8)
        >>> p[0, 0, :3] = 1; p[0, 0, 3] = 2; p[0, 0, 5:] = 2
        >>> largest_component_per_class(p)[0, 0].tolist()
        [1, 1, 1, 0, 0, 2, 2]
    """
    labels = np.asarray(pred)
    if labels.ndim != 3:
        raise ValueError(f"pred must be (Z, Y, X), got shape {labels.shape}")
    kept = np.zeros(labels.shape, dtype=bool)
    for value in np.unique(labels):
        if value == 0:
            continue
        comp, n = ndimage.label(labels == value, structure=_FULL)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        kept |= comp == int(np.argmax(sizes))
    return np.where(kept, labels, np.zeros_like(labels))
