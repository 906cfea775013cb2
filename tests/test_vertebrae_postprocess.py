"""segline.experiments.vertebrae.postprocess: the semantic method's largest-component
clean-up."""

from __future__ import annotations

import numpy as np
import pytest

from segline.experiments.vertebrae.postprocess import largest_component_per_class
from segline.metrics.instances import instance_rows, summary


def _two_vertebrae() -> np.ndarray:
    """Two 4-slice vertebrae (classes 1 and 2) separated by a 2-slice disc."""
    gt = np.zeros((10, 6, 6), np.uint8)
    gt[0:4, 1:5, 1:5] = 1
    gt[6:10, 1:5, 1:5] = 2
    return gt


def test_islands_take_their_neighbours_class() -> None:
    gt = _two_vertebrae()
    pred = gt.copy()
    pred[1, 2, 2] = 2  # an island of class 2 inside vertebra 1
    pred[8, 1:3, 1:3] = 3  # a stray class inside vertebra 2
    out = largest_component_per_class(pred)
    # class 3's largest component is itself: kept; class 2's island refilled with 1
    assert out[1, 2, 2] == 1
    assert np.array_equal(out[8, 1:3, 1:3], np.full((2, 2), 3, np.uint8))
    assert np.array_equal(out != 0, pred != 0)
    assert out.dtype == pred.dtype


def test_split_class_is_cleaned_and_instances_improve() -> None:
    gt = _two_vertebrae()
    pred = gt.copy()
    pred[0, 1:5, 1:5] = 2  # class 2 also covers vertebra 1's lowest slice
    before = summary(instance_rows(pred, gt, (1.0, 1.0, 1.0), {1: "a", 2: "b"}))
    out = largest_component_per_class(pred)
    after = summary(instance_rows(out, gt, (1.0, 1.0, 1.0), {1: "a", 2: "b"}))
    assert np.array_equal(out, gt)
    assert before["dice"] == pytest.approx((6 / 7 + 8 / 9) / 2)
    assert after["dice"] == 1.0
    assert after["id_rate"] == 1.0


def test_background_only_and_bad_shape() -> None:
    empty = np.zeros((3, 4, 5), np.uint8)
    assert np.array_equal(largest_component_per_class(empty), empty)
    with pytest.raises(ValueError, match="Z, Y, X"):
        largest_component_per_class(np.zeros((4, 5), np.uint8))
