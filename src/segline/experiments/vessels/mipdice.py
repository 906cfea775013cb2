"""The ``mip_dice`` metric: a 3D mask scored by its maximum-intensity projection.

``mip_dice`` of a class is the Dice of two 2D masks: the projection of the predicted
mask and the projection of the reference mask along one axis of the (Z, Y, X)
volume. A pixel of a projection is foreground when its ray meets at least one
foreground voxel, which is how a 2D annotation drawn on a maximum-intensity
projection relates to the 3D structure (the vessels pipeline's weak labels).

Importing this module registers the metric's record (:data:`METRIC`, kind
``"projection"``) in :mod:`segline.metrics.registry`, so the trainer's ``--metrics``,
the report's columns and conventions and the figures' titles know it: the vessel
trainer imports it, and the report and figures of ``vessels.make`` run through
:mod:`segline.experiments.vessels.report` and :mod:`segline.experiments.vessels.figures`,
which import it before the core's modules build their tables. No other dataset's stage
imports it.

Two places compute it, the same quantity on their grid (Dice of projections):

- the training scores its validation and test cases against the MIP store's 2D labels
  (``data/<ds>/mip``: the projection of the stored 3D label), :class:`MipDiceRows`
  (the trainer's per-case rows, :meth:`segline.train.loop.Trainer._case_rows`);
- the evaluation stage projects the original 3D label file itself, in its own
  geometry, :class:`SourceScorer` (the trainer class's
  :meth:`~segline.train.loop.Trainer.source_scorer`): the store keeps the source's
  axes (only transposed from NIfTI's (X, Y, Z)), so the same axis of the
  source-geometry prediction and of the original label is projected.

Example:
    >>> gt = np.zeros((3, 2, 2), np.uint8); gt[2, 0, 0] = 1
    >>> pred = np.zeros_like(gt); pred[0, 0, 0] = 1  # another depth, same ray
    >>> projection_dice(pred == 1, gt == 1, axis=0)
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segline.casestore import CaseStore
from segline.errors import InputError
from segline.experiments.vessels.inputs import MIP_LABEL, read_mip_axis
from segline.experiments.vessels.mip import project_labels
from segline.metrics.overlap import dice
from segline.metrics.registry import Metric, register

__all__ = [
    "METRIC",
    "NAME",
    "MipDiceRows",
    "SourceScorer",
    "projection_dice",
    "projection_rows",
]

NAME = "mip_dice"
"""The metric's name in ``metrics.csv``."""

METRIC = register(
    Metric(
        NAME, "MIP Dice", True, "projection",
        function="segline.experiments.vessels.mipdice:projection_dice",
        convention="- MIP Dice: Dice of the maximum-intensity projection of the predicted"
        " mask\n  against the 2D MIP label (in the source geometry: the projection of the"
        " original\n  3D label along the same axis); empty-mask conventions as Dice.\n",
    )
)  # fmt: skip
"""The registry record (:class:`segline.metrics.registry.Metric`)."""


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


class MipDiceRows:
    """The training's ``mip_dice`` rows of a predicted case: per foreground class, the
    Dice of the projected prediction and the MIP store's 2D label
    (:data:`segline.train.metricpool.CaseRows`; pickled to the metric processes).

    Args:
        mip_root: the MIP folder (``<case>/mip_label.npy``).
        axis: the projection axis of the stored (Z, Y, X) volume.
    """

    def __init__(self, mip_root: str | Path, axis: int) -> None:
        self.mip_root = Path(mip_root)
        self.axis = int(axis)

    def __call__(self, store: CaseStore, case: str, pred: np.ndarray) -> list[dict[str, Any]]:
        lab2d = np.load(self.mip_root / case / MIP_LABEL)
        names = {int(k): v for k, v in store.dataset["labels"].items()}
        rows = []
        for k in sorted(names):
            if k == 0:
                continue
            proj = project_labels(pred == k, self.axis).astype(bool)
            rows.append({"class": names[k], "metric": NAME, "value": dice(proj, lab2d == k)})
        return rows


class SourceScorer:
    """The evaluation stage's scores of a vessel training (the object
    :meth:`segline.train.loop.Trainer.source_scorer` describes): the per-class metrics
    of :func:`segline.eval_stage.score_file`, then ``mip_dice`` by
    :func:`projection_rows` along the axis of the training's MIP store.

    Args:
        method: the trained method folder (its ``test/metrics.csv`` gives the metrics
            and their order, its ``args.json`` ``mip`` the MIP store).

    Raises:
        InputError: the training reports ``mip_dice`` but names no readable MIP store.
    """

    def __init__(self, method: Path) -> None:
        from segline.eval_stage import reported_test_metrics
        from segline.metrics.table import METRICS
        from segline.predicting.infer import read_args

        self.metrics: tuple[str, ...] = (*METRICS, NAME)
        names = reported_test_metrics(method)
        self.volume = tuple(m for m in names if m != NAME)
        self.axis: int | None = None
        self.record: dict[str, Any] = {}
        if NAME in names:
            mip = read_args(method).get("mip")
            if not mip:
                raise InputError(method / "args.json", f"{NAME} needs the MIP store (--mip)")
            self.axis = read_mip_axis(mip)
            self.record = {"mip_axis": self.axis}

    def extend(self, metrics: Sequence[str]) -> None:
        """Score the per-class ``metrics`` too (the evaluation stage's extra metrics),
        after the training's volume metrics and before ``mip_dice``."""
        self.volume = (*self.volume, *(m for m in metrics if m not in self.volume))

    def _extra(
        self, pred: np.ndarray, truth: np.ndarray, classes: Mapping[int, str]
    ) -> list[dict[str, Any]]:
        return [] if self.axis is None else projection_rows(pred, truth, classes, self.axis)

    def score(
        self, case: str, pred: Path, label: Path, store: CaseStore, epoch: int
    ) -> list[dict[str, Any]]:
        """Rows of one written prediction against its original label file."""
        from segline.eval_stage import score_file

        return score_file(case, pred, label, store, self.volume, epoch, extra=self._extra)
