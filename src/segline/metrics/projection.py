"""Projection Dice: a 3D mask scored by its maximum-intensity projection.

``mip_dice`` of a class is the Dice of two 2D masks: the projection of the predicted
mask and the projection of the reference mask along one axis of the (Z, Y, X)
volume. A pixel of a projection is foreground when its ray meets at least one
foreground voxel, which is how a 2D annotation drawn on a maximum-intensity
projection relates to the 3D structure (the vessels pipeline's weak labels).

The training scores its validation and test cases against the case store's 2D labels
(``data/<ds>/mip``: the projection of the stored 3D label); the evaluation stage
(:mod:`segline.eval_stage`) projects the original 3D label file itself, in its own
geometry. Both are the same quantity on their grid: Dice of projections.

Example:
    >>> import numpy as np
    >>> gt = np.zeros((3, 2, 2), np.uint8); gt[2, 0, 0] = 1
    >>> pred = np.zeros_like(gt); pred[0, 0, 0] = 1  # another depth, same ray
    >>> projection_dice(pred == 1, gt == 1, axis=0)
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from segline.metrics.overlap import dice

__all__ = ["NAME", "projection_dice", "projection_rows"]

NAME = "mip_dice"
"""The metric's name in ``metrics.csv``."""


def projection_dice(pred: np.ndarray, gt: np.ndarray, axis: int) -> float:
    """Dice of the projections (maximum along ``axis``) of two binary masks; 1.0 when
    both projections are empty (:func:`segline.metrics.overlap.dice`)."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: pred {pred.shape} vs gt {gt.shape}")
    return dice(np.asarray(pred).any(axis=axis), np.asarray(gt).any(axis=axis))


def projection_rows(
    pred: np.ndarray, gt: np.ndarray, classes: Mapping[int, str], axis: int
) -> list[dict[str, Any]]:
    """``mip_dice`` rows ``{"class", "metric", "value"}``, one per foreground class
    (index > 0) in index order, of two (Z, Y, X) label maps of class indices."""
    return [
        {"class": name, "metric": NAME, "value": projection_dice(pred == k, gt == k, axis)}
        for k, name in sorted(classes.items())
        if k != 0
    ]
