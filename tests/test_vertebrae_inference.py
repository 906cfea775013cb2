"""The iterative sweep (segline.experiments.vertebrae.inference) with fake networks."""

from __future__ import annotations

import numpy as np

from segline.experiments.vertebrae.inference import iterative_segment

BOXES = {1: (2, 6), 2: (12, 16), 3: (22, 26)}  # id: z range [lo, hi), 30 slices


def boxes_image() -> np.ndarray:
    """(1, 30, 4, 4): the box id as intensity, boxes at BOXES in y, x 1..2."""
    image = np.zeros((1, 30, 4, 4), np.float32)
    for k, (lo, hi) in BOXES.items():
        image[0, lo:hi, 1:3, 1:3] = k
    return image


class LowestBox:
    """Fake net: the lowest box (by id) with a voxel in the patch and none in the
    memory; complete when all its voxels are in the patch. Records each call."""

    def __init__(self) -> None:
        self.memory_sizes: list[int] = []

    def __call__(self, image: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, float]:
        self.memory_sizes.append(int(memory.sum()))
        ids = np.unique(image[0][(image[0] > 0) & ~memory]).astype(int)
        if ids.size == 0:
            return np.zeros(memory.shape, bool), 0.0
        k = int(ids.min())
        mask = image[0] == k
        complete = int(mask.sum()) == 4 * (BOXES[k][1] - BOXES[k][0])
        return mask, 1.0 if complete else 0.0


def test_three_boxes_ids_memory_and_calls() -> None:
    net = LowestBox()
    labels, calls = iterative_segment(net, boxes_image(), 10, stride=5)
    # by hand (patch 10, last origin 20): z0=0 finds box 1 complete -> z0=floor(3.5+.5)=4;
    # [4,14) sees box 2 partly (z 12,13) -> centre 12.5 -> z0=floor(12.5-5+.5)=8;
    # [8,18) box 2 complete -> z0=14; [14,24) box 3 partly -> z0=18; [18,28) box 3
    # complete -> z0=min(24, 20)=20; [20,30) nothing left at the last origin: stop.
    assert calls == 6
    expected = np.zeros((30, 4, 4), np.uint16)
    for k, (lo, hi) in BOXES.items():
        expected[lo:hi, 1:3, 1:3] = k
    np.testing.assert_array_equal(labels, expected)
    # the memory the net sees: box 1's slices 4, 5 in [4, 14) (8 voxels), none of it in
    # [8, 18); box 2's slices 14, 15 in [14, 24); all of box 3 in [20, 30)
    assert net.memory_sizes == [0, 8, 0, 8, 0, 16]


def test_empty_net_sweeps_once() -> None:
    calls_seen: list[int] = []

    def empty(image: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, float]:
        calls_seen.append(1)
        return np.zeros(memory.shape, bool), 0.0

    labels, calls = iterative_segment(empty, boxes_image(), 10, stride=5)
    assert calls == 5  # origins 0, 5, 10, 15, 20
    assert not labels.any()


def test_incomplete_at_border_is_accepted_and_cap_holds() -> None:
    image = np.zeros((1, 8, 2, 2), np.float32)
    image[0, 5:] = 1  # a "vertebra" cut by the volume's top border

    def never_complete(img: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, float]:
        return (img[0] > 0) & ~memory, 0.0

    labels, calls = iterative_segment(never_complete, image, 4, stride=2)
    # z0=0 sees nothing; z0=2 sees z 5 (of 5..7) -> centre 5 -> z0=min(floor(5-2+.5),4)=3;
    # [3,7) sees 5,6 -> centre 5.5 -> z0=4; [4,8) sees all, centre 6 -> z0=4 is the
    # current origin: accepted as id 1; z0=clamp(6)=4; nothing left at the last origin.
    assert calls == 5
    assert labels[5:].min() == 1 and not labels[:5].any()

    def creeping(img: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, float]:
        mask = np.zeros(memory.shape, bool)
        mask[-1] = True  # always the patch's top slice, never complete: moves up by 1
        return mask, 0.0

    volume = np.zeros((1, 400, 2, 2), np.float32)
    _, capped = iterative_segment(creeping, volume, 4, max_calls=7)
    assert capped == 7
