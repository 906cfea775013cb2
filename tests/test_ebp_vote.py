"""EBP reconstruction: nearest directions, which pivots are kept, the vote and its
threshold, and whole cases with the target-driven (oracle) shells on toy spleens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segline.datasets.toy_spleen import toy_spleen_cases
from segline.experiments.ebp.geometry import directions, signed_target
from segline.experiments.ebp.inference import ShellConfig, segment, target_step_fn
from segline.experiments.ebp.shells import (
    empty_shells,
    keep_pivots,
    nearest_direction,
    pivot_groups,
)
from segline.experiments.ebp.vote import reconstruct, vote


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_nearest_direction_of_the_grid_directions_and_by_hand():
    for h, w in ((16, 16), (5, 8), (32, 32)):
        u = directions(h, w) * 7.0
        i, j = nearest_direction(u, h, w)
        np.testing.assert_array_equal(i, np.broadcast_to(np.arange(h)[:, None], (h, w)))
        np.testing.assert_array_equal(j, np.broadcast_to(np.arange(w)[None, :], (h, w)))
    # +z: cos p = 1 -> row (2)(17)/2 - 1 = 16, clipped to 15; +y: cos p = 0 -> 7.5 -> 8,
    # q = 90 deg -> column 4; -x: q = 180 deg -> column 8; zero offset: row 8, column 0
    off = np.array([[3, 0, 0], [0, 2, 0], [0, 0, -1], [0, 0, 0], [-5, 0, 0]])
    i, j = nearest_direction(off, 16, 16)
    assert i.tolist() == [15, 8, 8, 8, 0] and j.tolist() == [0, 4, 8, 0, 0]


def test_empty_shells():
    r = np.full((3, 2, 2), 5.0)
    r[0, 0, :] = 0.5  # half the radii below 1: empty
    r[1, 0, 0] = 0.0  # a quarter: kept
    r[2] = 0.99
    assert empty_shells(r).tolist() == [True, False, True]
    assert empty_shells(r, frac=0.75).tolist() == [False, False, True]
    assert empty_shells(r, min_radius=0.9).tolist() == [True, False, False]


def test_pivot_groups_keep_the_largest_cluster():
    h = w = 8
    a = np.array([[10, 10, 10], [10, 10, 14], [10, 10, 18]])  # 4 apart along x
    b = np.array([[10, 60, 10], [10, 60, 14]])
    pivots = np.concatenate([b, a])
    radii = np.full((5, h, w), 5.0)
    labels = pivot_groups(pivots, radii, h, w)
    assert labels.tolist() == [1, 1, 0, 0, 0]
    # radii 3: nobody lies in another's shell, five groups of one (ties: first pivot)
    assert pivot_groups(pivots, np.full((5, h, w), 3.0), h, w).tolist() == [0, 1, 2, 3, 4]
    # one-sided: the middle pivot of a reaches both ends, they reach nothing
    r = np.full((5, h, w), 3.0)
    r[3] = 4.0
    assert pivot_groups(pivots, r, h, w).tolist() == [1, 2, 0, 0, 0]
    assert keep_pivots(pivots, radii).tolist() == [False, False, True, True, True]
    # an empty shell is dropped, and does not join the groups
    radii[3] = 0.0
    assert keep_pivots(pivots, radii).tolist() == [True, True, False, False, False]


def test_vote_one_centred_pivot_is_a_ball():
    n, c, radius = 25, 12, 8
    z, y, x = np.ogrid[:n, :n, :n]
    exact = (z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2 <= radius * radius
    m = vote((n, n, n), np.array([[c, c, c]]), np.full((1, 16, 16), float(radius)))
    assert dice(m, exact) >= 0.97
    np.testing.assert_array_equal(m, exact)  # constant radius: exactly the ball


def test_vote_threshold_tau_by_hand():
    shape = (21, 21, 21)
    pivots = np.array([[10, 10, 5], [10, 10, 15]])
    radii = np.stack([np.full((8, 8), 4.0), np.full((8, 8), 1.0)])
    # (10, 10, 8): 3 from the first pivot (held), 7 from the second (not held), both
    # within reach: share 1/2
    assert vote(shape, pivots, radii, tau=0.5)[10, 10, 8]
    assert not vote(shape, pivots, radii, tau=0.75)[10, 10, 8]
    # with reach 8 the second pivot is out of reach of (10, 10, 2): share 1/1
    assert vote(shape, pivots, radii, tau=0.75, reach=8.0)[10, 10, 2]
    assert not vote(shape, pivots, radii, tau=0.75, reach=27.0)[10, 10, 2]
    # held by nobody: background at any tau
    assert not vote(shape, pivots, radii, tau=0.0)[10, 10, 11]
    m = vote(shape, pivots, radii, tau=0.5)
    assert m.sum() == 257 + 7  # the two voxel balls of radius 4 and 1


def test_reconstruct_keeps_the_largest_component_and_empty_inputs():
    shape = (30, 30, 30)
    pivots = np.array([[8, 8, 8], [22, 22, 22]])
    radii = np.stack([np.full((16, 16), 5.0), np.full((16, 16), 3.0)])
    # far apart (24 voxels, within reach): each voxel held by one of two pivots in reach
    m = reconstruct(shape, pivots, radii, tau=0.5)
    z, y, x = np.ogrid[:30, :30, :30]
    big = (z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 <= 25
    np.testing.assert_array_equal(m, big)
    assert not reconstruct(shape, np.zeros((0, 3), np.int64), np.zeros((0, 16, 16))).any()


def test_reconstruct_fills_holes():
    # six pivots around a centre, 10 away along the axes, radii 8: with reach 9 the
    # centre is within reach of none of them (so not foreground by the vote) but the
    # shells around it close into a hollow shape
    c = 15
    offs = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    pivots = c + 10 * offs
    radii = np.full((6, 16, 16), 8.5)
    fg = vote((31, 31, 31), pivots, radii, tau=0.5, reach=9.0)
    m = reconstruct((31, 31, 31), pivots, radii, tau=0.5, reach=9.0)
    assert not fg[c, c, c] and m[c, c, c]
    assert (m >= fg).all() and m.sum() > fg.sum()


def test_segment_empty_box_gives_an_empty_mask():
    def never(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no pivots, no step")

    cfg = ShellConfig()
    mask, stats = segment(never, (10, 20, 20), (4, 5, 5), (4, 9, 9), cfg, "cpu")
    assert mask.shape == (10, 20, 20) and not mask.any()
    assert stats["pivots"] == 0 and stats["kept"] == 0


@pytest.fixture(scope="module")
def spleens() -> list[np.ndarray]:
    """Labels (Z, Y, X) of three toy spleen cases (96 × 96 in-plane, 28-40 slices)."""
    cases = toy_spleen_cases(seed=0, n_cases=3, n_test=0)
    return [np.ascontiguousarray(np.transpose(c.label, (2, 1, 0)) > 0) for c in cases]


@pytest.mark.parametrize("hw, floor", [(32, 0.99), (16, 0.98)])
def test_target_driven_shells_rebuild_toy_spleens(spleens, hw, floor):
    torch.manual_seed(0)
    for lab in spleens:
        idx = np.nonzero(lab)
        lo = [int(a.min()) for a in idx]
        hi = [int(a.max()) + 1 for a in idx]
        target = torch.from_numpy(signed_target(lab))[None]
        cfg = ShellConfig(h=hw, w=hw)
        step = target_step_fn(target, directions(hw, hw), cfg.step_clip)
        mask, stats = segment(step, lab.shape, lo, hi, cfg, "cpu")
        assert dice(mask, lab) >= floor
        assert 0 < stats["kept"] < stats["pivots"]
        assert 1.0 <= stats["mean_iteration"] <= cfg.iterations
