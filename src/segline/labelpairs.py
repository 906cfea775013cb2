"""A prediction and its label file read for scoring, on one grid, and their values.

Shared by ``segline-evaluate`` (:mod:`segline.evaluate`, a folder of predictions) and
the evaluation stage (:mod:`segline.eval_stage`, a training's test cases in source
geometry). Kept apart from both so that the evaluation stage's code dependencies (its
``.d`` file) hold no report or plotting module: a change to how a report looks never
re-runs the predictions of the test cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segline.errors import InputError
from segline.preprocess.geometry import check_same_grid, read_nifti

SHOWN = 10
"""How many bad values a refusal names."""


@dataclass
class Volume:
    """A label map read for scoring: (Z, Y, X) class indices and spacing (z, y, x) mm."""

    data: np.ndarray
    spacing: tuple[float, float, float]


def read_pair(pred_path: Path, label_path: Path) -> tuple[Volume, Volume]:
    """Prediction and label, checked to share one grid (shape and affine).

    Raises:
        InputError: unreadable, not 3D, non-integer, or another grid than the label's.
    """
    label = read_nifti(label_path, kind="label")
    pred = read_nifti(pred_path, kind="label")
    check_same_grid(label, pred)
    spacing = label.spacing_xyz[::-1]
    return Volume(label.data.T, spacing), Volume(pred.data.T, spacing)  # type: ignore[arg-type]


def check_values(volume: np.ndarray, path: Path, classes: dict[int, str] | None) -> set[int]:
    """The values of a label map; each must be a class of dataset.json (or >= 0)."""
    values = {int(v) for v in np.unique(volume)}
    bad = sorted(v for v in values if v < 0 or (classes is not None and v not in classes))
    if bad:
        known = (
            f"the classes of dataset.json ({', '.join(map(str, classes))})" if classes else ">= 0"
        )
        raise InputError(path, f"value(s) {', '.join(map(str, bad[:SHOWN]))} not among {known}")
    return values
