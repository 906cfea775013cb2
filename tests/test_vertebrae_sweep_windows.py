"""The iterative sweep in windows of the training patch (segline.experiments.vertebrae.
inference.sweep): the network sees patches of the training size, centred on what it
finds, and each instance's completeness is recorded."""

from __future__ import annotations

import numpy as np

from segline.experiments.vertebrae.inference import iterative_segment, sweep
from segline.experiments.vertebrae.instances import instance_table

PATCH = (10, 8, 8)
# id: (z range, y range, x range) in a (30, 24, 24) volume, off the cross-section's centre
BOXES = {
    1: ((2, 6), (14, 18), (15, 19)),
    2: ((12, 16), (14, 18), (15, 19)),
    3: ((24, 30), (3, 7), (2, 6)),
}


def boxes_image() -> np.ndarray:
    image = np.zeros((1, 30, 24, 24), np.float32)
    for k, (z, y, x) in BOXES.items():
        image[0, slice(*z), slice(*y), slice(*x)] = k
    return image


class LowestBox:
    """Fake net: the lowest box id with a voxel in the patch and none in the memory;
    complete when all its voxels are in the patch. Records the patch shapes."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, image: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, float]:
        self.shapes.append(image.shape)
        assert memory.shape == image.shape[1:]
        ids = np.unique(image[0][(image[0] > 0) & ~memory]).astype(int)
        if ids.size == 0:
            return np.zeros(memory.shape, bool), 0.0
        k = int(ids.min())
        mask = image[0] == k
        size = np.prod([hi - lo for lo, hi in BOXES[k]])
        return mask, 1.0 if int(mask.sum()) == size else 0.0


def test_windows_of_the_training_patch_find_every_box() -> None:
    net = LowestBox()
    found = sweep(net, boxes_image(), PATCH, stride=5)
    assert set(net.shapes) == {(1, *PATCH)}  # never the whole cross-section
    expected = np.zeros((30, 24, 24), np.uint16)
    for k, (z, y, x) in BOXES.items():
        expected[slice(*z), slice(*y), slice(*x)] = k
    np.testing.assert_array_equal(found.labels, expected)
    # box 3 (z 24..29) is cut by the volume's last slice but lies whole in its patch
    assert found.completeness == {1: 1.0, 2: 1.0, 3: 1.0}
    rows = instance_table(found.labels, found.completeness)
    assert [(r["label"], r["touches_border"], r["partial"]) for r in rows] == [
        (1, 0, 0), (2, 0, 0), (3, 1, 1)
    ]


def test_whole_cross_section_when_it_fits() -> None:
    # an int patch (z only) or a patch as large as the cross-section: one window per z,
    # the same labels and calls as before windows existed
    image = boxes_image()[:, :, 10:18, 12:20]
    a = iterative_segment(LowestBox(), image, 10, stride=5)
    b = iterative_segment(LowestBox(), image, (10, 8, 8), stride=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_a_box_larger_than_the_patch_is_flagged_partial() -> None:
    # 12 voxels along y: never whole in an 8-voxel window; accepted as it is, in two
    # pieces, each with the network's low completeness: both flagged partial
    image = np.zeros((1, 12, 20, 20), np.float32)
    image[0, 2:8, 2:14, 4:8] = 9
    BOXES[9] = ((2, 8), (2, 14), (4, 8))
    try:
        found = sweep(LowestBox(), image, (8, 8, 8), stride=4)
    finally:
        del BOXES[9]
    assert found.completeness == {1: 0.0, 2: 0.0}
    np.testing.assert_array_equal(found.labels > 0, image[0] > 0)
    rows = instance_table(found.labels, found.completeness)
    assert [(r["touches_border"], r["partial"]) for r in rows] == [(0, 1), (0, 1)]
