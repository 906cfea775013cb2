"""Tests for segline.metrics.cldice (centreline Dice, Shit et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segline.metrics import cldice, skeleton, topology_precision_sensitivity
from segline.metrics.surface import union_bbox


def tube(length: int, start: int = 5, shape=(9, 9, 32), centre=(4, 4)) -> np.ndarray:
    """A straight 3×3 tube along x covering x in [start, start + length)."""
    m = np.zeros(shape, bool)
    z, y = centre
    m[z - 1 : z + 2, y - 1 : y + 2, start : start + length] = True
    return m


def test_tube_skeleton_is_its_centre_line():
    # Lee's thinning keeps the centre line and trims one voxel at each end.
    s = skeleton(tube(20))
    expected = np.zeros_like(s)
    expected[4, 4, 6:24] = True
    assert np.array_equal(s, expected)


def test_tube_vs_itself_and_disjoint():
    t = tube(20)
    assert cldice(t, t) == 1.0
    assert topology_precision_sensitivity(t, t) == (1.0, 1.0)
    other = tube(20, shape=(9, 20, 32), centre=(4, 14))
    assert cldice(tube(20, shape=(9, 20, 32)), other) == 0.0


def test_tube_vs_half_by_hand():
    # pred: tube x∈[5,25), skeleton x∈[6,24) (18 voxels, see above).
    # gt:   tube x∈[5,15), skeleton x∈[6,14) (8 voxels) — inside pred: Tsens = 1.
    # S(pred) ∩ gt: x∈[6,15) = 9 voxels → Tprec = 9/18 = 1/2.
    # clDice = 2·(1/2)·1 / (1/2 + 1) = 2/3.
    full, half = tube(20), tube(10)
    assert skeleton(half).sum() == 8
    tprec, tsens = topology_precision_sensitivity(full, half)
    assert (tprec, tsens) == (0.5, 1.0)
    assert cldice(full, half) == pytest.approx(2 / 3, abs=1e-12)
    assert cldice(half, full) == pytest.approx(2 / 3, abs=1e-12)  # symmetric formula


def test_lines_2d_by_hand():
    # 1-pixel lines are their own skeletons.
    a = np.zeros((5, 20), bool)
    a[2, 1:11] = True  # 10 pixels
    b = np.zeros_like(a)
    b[2, 1:6] = True  # first half
    assert np.array_equal(skeleton(a), a)
    assert cldice(a, b) == pytest.approx(2 / 3, abs=1e-12)  # Tprec 5/10, Tsens 1
    c = np.zeros_like(a)
    c[2, 6:16] = True  # overlaps a on 5 of its 10 pixels
    assert topology_precision_sensitivity(a, c) == (0.5, 0.5)
    assert cldice(a, c) == pytest.approx(0.5, abs=1e-12)


def test_empty_conventions():
    t = tube(20)
    empty = np.zeros_like(t)
    assert cldice(empty, empty) == 1.0
    assert cldice(t, empty) == 0.0
    assert cldice(empty, t) == 0.0
    assert not skeleton(empty).any()


def test_tiny_object_is_its_own_skeleton():
    cube = np.zeros((6, 6, 6), bool)
    cube[2:4, 2:4, 2:4] = True  # Lee's method thins this to nothing
    assert np.array_equal(skeleton(cube), cube)
    assert cldice(cube, cube) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_crop_equals_no_crop(seed):
    rng = np.random.default_rng(seed)
    f3 = ndimage.gaussian_filter(rng.standard_normal((8, 30, 30)), (1.0, 3.0, 3.0))
    a3 = np.zeros((12, 50, 50), bool)
    b3 = np.zeros_like(a3)
    a3[2:10, 10:40, 5:35] = f3 > 0.0
    b3[2:10, 11:41, 6:36] = f3 > 0.0
    f2 = ndimage.gaussian_filter(rng.standard_normal((30, 30)), 3.0)
    a2 = np.zeros((60, 60), bool)
    b2 = np.zeros_like(a2)
    a2[10:40, 0:30] = f2 > 0.0  # touches the border
    b2[11:41, 1:31] = f2 > 0.0
    for a, b in [(a3, b3), (a2, b2)]:
        box = union_bbox(a, b)
        assert box is not None and np.prod([s.stop - s.start for s in box]) < a.size / 2
        cropped = topology_precision_sensitivity(a, b, crop=True)
        full = topology_precision_sensitivity(a, b, crop=False)
        assert cropped == full
        assert 0.0 < cldice(a, b) < 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        cldice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2D or 3D"):
        skeleton(np.ones(5, bool))
