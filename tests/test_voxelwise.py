"""Voxel-wise precision and recall against hand counts, with their empty-mask rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segline.metrics.table import case_metrics
from segline.metrics.voxelwise import precision, recall


def test_hand_counts_3d() -> None:
    gt = np.zeros((2, 4, 4), np.uint8)
    gt[0, :2, :2] = 1  # 4 voxels
    gt[1, 0, 0] = 1  # 5 in all
    pred = np.zeros_like(gt)
    pred[0, 1:3, 1:3] = 1  # 4 voxels, 1 of them in gt
    pred[1, 0, 0] = 1  # 1 more in gt
    assert precision(pred, gt) == pytest.approx(2 / 5)
    assert recall(pred, gt) == pytest.approx(2 / 5)
    pred[1, 3, 3] = 1  # a false positive: precision 2/6, recall unchanged
    assert precision(pred, gt) == pytest.approx(2 / 6)
    assert recall(pred, gt) == pytest.approx(2 / 5)


@pytest.mark.parametrize(
    ("pred", "gt", "want"),
    [
        ([0, 0], [0, 0], (1.0, 1.0)),  # both empty: nothing to find, nothing wrong
        ([0, 0], [1, 0], (math.nan, 0.0)),  # no prediction: precision undefined
        ([1, 0], [0, 0], (0.0, math.nan)),  # no reference: recall undefined
        ([1, 1], [1, 1], (1.0, 1.0)),
    ],
)
def test_empty_masks(pred: list[int], gt: list[int], want: tuple[float, float]) -> None:
    got = (precision(np.array(pred), np.array(gt)), recall(np.array(pred), np.array(gt)))
    for g, w in zip(got, want, strict=True):
        assert (math.isnan(g) and math.isnan(w)) or g == w


def test_case_metrics_computes_them_by_name() -> None:
    gt = np.array([[0, 1, 1, 1]])
    pred = np.array([[1, 1, 0, 0]])
    rows = case_metrics(pred, gt, (1, 1), ["bg", "fg"], metrics=("precision", "recall"))
    assert [(r["metric"], r["value"]) for r in rows] == [("precision", 0.5),
                                                         ("recall", pytest.approx(1 / 3))]
