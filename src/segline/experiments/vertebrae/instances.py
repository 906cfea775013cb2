"""Per-instance flags of a vertebra prediction: ``instances.csv``.

The published method flags vertebrae that are only partly visible. Beside each
prediction folder of a vertebra method (the training's ``test/instances.csv`` and
``segline-predict``'s output folder) a table lists, per case and predicted instance:

- ``case``; ``label``: the value written in the prediction (an instance id of the
  iterative method, a VerSe value of the semantic one);
- ``voxels``: its voxels in the case store's grid (the grid it was predicted in,
  SPACING), not the written file's;
- ``touches_border``: 1 when a voxel of it lies on a face of that volume (its first or
  last z slice, or the edge of the cross-section): the scan cuts it, or the crop;
- ``completeness``: the iterative method's completeness probability for the patch it
  was accepted in (empty for the semantic method, which has no such head);
- ``partial``: 1 when it touches the border or its completeness is below
  :data:`PARTIAL_BELOW` (a vertebra the sweep could not bring wholly into a patch).

Example:
    >>> lab = np.zeros((4, 5, 5), np.uint8)
    >>> lab[0:2, 1:3, 1:3] = 1   # cut by the first slice
    >>> lab[2:3, 2:4, 2:4] = 2   # inside
    >>> [(r["label"], r["voxels"], r["touches_border"]) for r in instance_table(lab)]
    [(1, 8, 1), (2, 4, 0)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from segline.csvio import csv_text

__all__ = [
    "COLUMNS",
    "INSTANCES_FILE",
    "PARTIAL_BELOW",
    "border_labels",
    "instance_table",
    "instances_csv",
]

INSTANCES_FILE = "instances.csv"
COLUMNS = ("case", "label", "voxels", "touches_border", "completeness", "partial")
PARTIAL_BELOW = 0.5
"""Completeness probability under which an instance is flagged partial (the sweep's
acceptance threshold: such a mask was accepted only because the patch could not move
to hold it whole)."""


def border_labels(labels: np.ndarray) -> set[int]:
    """The non-zero values on the faces of a (Z, Y, X) label map."""
    if labels.ndim != 3:
        raise ValueError(f"labels must be (Z, Y, X), got shape {labels.shape}")
    faces = [labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]]
    return {int(v) for f in faces for v in np.unique(f)} - {0}


def instance_table(
    labels: np.ndarray, completeness: Mapping[int, float] | None = None
) -> list[dict[str, Any]]:
    """One row per non-zero value of ``labels`` (ascending): ``label``, ``voxels``,
    ``touches_border``, ``completeness`` (NaN when ``completeness`` lacks it) and
    ``partial`` (module docstring); no ``case``."""
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))
    border = border_labels(np.asarray(labels))
    rows = []
    for value in np.nonzero(counts)[0]:
        v = int(value)
        if v == 0:
            continue
        prob = float(completeness[v]) if completeness and v in completeness else math.nan
        touches = int(v in border)
        rows.append(
            {
                "label": v,
                "voxels": int(counts[v]),
                "touches_border": touches,
                "completeness": prob,
                "partial": int(bool(touches) or prob < PARTIAL_BELOW),
            }
        )
    return rows


def instances_csv(
    labels: Mapping[str, np.ndarray],
    completeness: Mapping[str, Mapping[int, float]] | None = None,
) -> str:
    """The ``instances.csv`` text of cases ``labels`` (case -> (Z, Y, X) written
    values), with each case's completeness probabilities (case -> {label: p})."""
    completeness = completeness or {}
    rows = [
        {"case": case, **row}
        for case, lab in labels.items()
        for row in instance_table(lab, completeness.get(case))
    ]
    return csv_text(pd.DataFrame(rows, columns=list(COLUMNS)))
