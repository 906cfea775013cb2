"""Tests for segline.metrics: Dice, surface distances (HD95, HD, ASSD) and tables.

Surface distances are checked against an independent brute-force reference written
here: surface voxels found by explicit neighbour checks, all pairwise distances in mm
(scipy.spatial.distance.cdist), pooled percentile / mean.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from segline.metrics import (
    assd,
    case_metrics,
    cldice,
    dice,
    hausdorff_distance,
    hd95,
    mean_foreground,
    percentile_hausdorff,
    summarise,
    surface,
    surface_distances,
)
from segline.metrics.surface import check_spacing, union_bbox
from segline.metrics.table import class_name_map

SPACING = (5.0, 0.8, 0.8)


# --------------------------------------------------------------------- reference
def brute_surface_points(mask: np.ndarray) -> np.ndarray:
    """Indices of foreground voxels with a background (or outside) face neighbour."""
    points = []
    for idx in np.argwhere(mask):
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            nb = idx.copy()
            nb[axis] += step
            outside = nb[axis] < 0 or nb[axis] >= mask.shape[axis]
            if outside or not mask[tuple(nb)]:
                points.append(idx)
                break
    return np.array(points, dtype=float).reshape(-1, mask.ndim)


def brute_directed(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    pa = brute_surface_points(a) * np.asarray(spacing)
    pb = brute_surface_points(b) * np.asarray(spacing)
    d = cdist(pa, pb)  # all pairwise Euclidean distances in mm
    return d.min(axis=1), d.min(axis=0)


def brute_hd(a, b, spacing, q=95.0, mode="pooled") -> float:
    d_ab, d_ba = brute_directed(a, b, spacing)
    if mode == "pooled":
        return float(np.percentile(np.concatenate([d_ab, d_ba]), q))
    return float(max(np.percentile(d_ab, q), np.percentile(d_ba, q)))


def brute_assd(a, b, spacing) -> float:
    d_ab, d_ba = brute_directed(a, b, spacing)
    return float(np.concatenate([d_ab, d_ba]).mean())


def blob(shape, seed: int, sigma=(1.0, 3.0, 3.0), frac: float = 0.25) -> np.ndarray:
    """A smooth random blob: Gaussian-smoothed noise, top ``frac`` of values."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma[: len(shape)])
    return field > np.quantile(field, 1.0 - frac)


def blob_pair(seed: int, shape=(12, 30, 30)) -> tuple[np.ndarray, np.ndarray]:
    """A blob and a perturbed copy (shifted, with part of it re-drawn)."""
    a = blob(shape, seed)
    b = np.roll(a, shift=(seed % 2, 1, -2), axis=(0, 1, 2))
    b ^= blob(shape, seed + 1000, frac=0.03)
    return a, b


# --------------------------------------------------------------------------- dice
@pytest.mark.parametrize("seed", range(4))
def test_dice_matches_formula(seed):
    rng = np.random.default_rng(seed)
    p = rng.random((6, 7, 8)) < 0.4
    g = rng.random((6, 7, 8)) < 0.5
    expected = 2 * np.logical_and(p, g).sum() / (p.sum() + g.sum())
    assert dice(p, g) == pytest.approx(expected, abs=1e-15)
    assert dice(p.astype(np.uint8) * 3, g.astype(np.int64)) == pytest.approx(expected, abs=1e-15)


def test_dice_hand_and_conventions():
    a = np.zeros((4, 4), bool)
    a[:2] = True  # 8 voxels
    b = np.zeros((4, 4), bool)
    b[1:3] = True  # 8 voxels, 4 shared
    assert dice(a, b) == 0.5
    assert dice(a, a) == 1.0
    empty = np.zeros((4, 4), bool)
    assert dice(empty, empty) == 1.0
    assert dice(a, empty) == 0.0
    assert dice(empty, a) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        dice(a, np.zeros((4, 5), bool))


# ----------------------------------------------------------------------- surface
def test_surface_matches_neighbour_checks_and_erosion():
    for seed in range(3):
        m = blob((8, 20, 20), seed, frac=0.4)
        m[0, 5:10, 5:10] = True  # touches the array border
        ours = surface(m)
        ref = np.zeros_like(m)
        ref[tuple(brute_surface_points(m).astype(int).T)] = True
        assert np.array_equal(ours, ref)
        cross = ndimage.generate_binary_structure(3, 1)
        eroded = ndimage.binary_erosion(m, structure=cross, border_value=0)
        assert np.array_equal(ours, m & ~eroded)


def test_surface_hand():
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    expected = m.copy()
    expected[2, 2] = False
    assert np.array_equal(surface(m), expected)
    full = np.ones((3, 3, 3), bool)  # every voxel but the centre touches the outside
    assert surface(full).sum() == 26 and not surface(full)[1, 1, 1]


def test_union_bbox():
    a = np.zeros((6, 8, 9), bool)
    a[2, 3, 4] = True
    b = np.zeros_like(a)
    b[4, 0, 8] = True
    assert union_bbox(a, b, margin=1) == (slice(1, 6), slice(0, 5), slice(3, 9))
    assert union_bbox(a, margin=0) == (slice(2, 3), slice(3, 4), slice(4, 5))
    assert union_bbox(np.zeros_like(a), np.zeros_like(a)) is None


def test_check_spacing():
    assert check_spacing((5, 0.8, 0.8), 3) == (5.0, 0.8, 0.8)
    assert check_spacing(2, 2) == (2.0, 2.0)
    for bad in [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -1.0, 1.0), (1.0, float("nan"), 1.0)]:
        with pytest.raises(ValueError):
            check_spacing(bad, 3)


# ------------------------------------------------------ distances vs brute force
@pytest.mark.parametrize("seed", range(5))
def test_distances_match_brute_force_3d(seed):
    a, b = blob_pair(seed)
    d_ab, d_ba = surface_distances(a, b, SPACING)
    r_ab, r_ba = brute_directed(a, b, SPACING)
    # same surface voxels in the same (C) order, same distances
    np.testing.assert_allclose(d_ab, r_ab, rtol=0, atol=1e-6)
    np.testing.assert_allclose(d_ba, r_ba, rtol=0, atol=1e-6)
    assert hd95(a, b, SPACING) == pytest.approx(brute_hd(a, b, SPACING), abs=1e-6)
    assert hd95(a, b, SPACING, mode="max") == pytest.approx(
        brute_hd(a, b, SPACING, mode="max"), abs=1e-6
    )
    assert assd(a, b, SPACING) == pytest.approx(brute_assd(a, b, SPACING), abs=1e-6)
    assert hausdorff_distance(a, b, SPACING) == pytest.approx(
        brute_hd(a, b, SPACING, q=100), abs=1e-6
    )
    assert hd95(a, b, SPACING) > 0  # the pair really differs


@pytest.mark.parametrize("seed", range(3))
def test_distances_match_brute_force_2d(seed):
    a = blob((40, 40), seed, sigma=(3.0, 3.0))
    b = np.roll(a, (2, -1), axis=(0, 1))
    sp = (0.7, 1.3)
    assert hd95(a, b, sp) == pytest.approx(brute_hd(a, b, sp), abs=1e-6)
    assert assd(a, b, sp) == pytest.approx(brute_assd(a, b, sp), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_crop_equals_no_crop(seed):
    small_a, small_b = blob_pair(seed, shape=(6, 20, 18))
    a = np.zeros((10, 40, 36), bool)
    b = np.zeros_like(a)
    a[2:8, 10:30, 9:27] = small_a
    b[3:9, 12:32, 5:23] = small_b
    if seed % 2:  # make the union box touch the array border
        a[-1, 12:14, :3] = True
    box = union_bbox(a, b)
    assert box is not None and np.prod([s.stop - s.start for s in box]) < a.size / 2
    for p, g in [(a, b), (b, a), (a, a)]:
        c1, c2 = surface_distances(p, g, SPACING, crop=True)
        n1, n2 = surface_distances(p, g, SPACING, crop=False)
        assert np.array_equal(c1, n1) and np.array_equal(c2, n2)


@pytest.mark.parametrize("seed", range(3))
def test_symmetry(seed):
    a, b = blob_pair(seed)
    d_ab, d_ba = surface_distances(a, b, SPACING)
    e_ba, e_ab = surface_distances(b, a, SPACING)
    assert np.array_equal(d_ab, e_ab) and np.array_equal(d_ba, e_ba)
    assert hd95(a, b, SPACING) == hd95(b, a, SPACING)
    assert hd95(a, b, SPACING, mode="max") == hd95(b, a, SPACING, mode="max")
    assert assd(a, b, SPACING) == pytest.approx(assd(b, a, SPACING), abs=1e-12)


def test_single_voxels_known_distance():
    a = np.zeros((6, 12, 12), bool)
    b = np.zeros_like(a)
    a[1, 2, 2] = True
    b[3, 5, 9] = True
    expected = math.sqrt((2 * 5.0) ** 2 + (3 * 0.8) ** 2 + (7 * 0.8) ** 2)
    assert hd95(a, b, SPACING) == pytest.approx(expected, abs=1e-9)
    assert hd95(a, b, SPACING, mode="max") == pytest.approx(expected, abs=1e-9)
    assert assd(a, b, SPACING) == pytest.approx(expected, abs=1e-9)
    assert hausdorff_distance(a, b, SPACING) == pytest.approx(expected, abs=1e-9)


def test_shifted_cube_by_hand():
    # A 4×4×4 cube and a copy shifted by one voxel along x (0.6 mm).
    # Each cube has 64 − 8 = 56 surface voxels. A→B: A's face x=2 (16 voxels) is
    # 0.6 mm from B's face x=3; the 4 interior voxels of A's face x=5 are 0.6 mm from
    # B's face x=6 (B's ring at x=5 is 0.8 mm away in y, 5 mm in z); the other 36
    # lie on B's surface (0 mm). B→A is the mirror image: 20 at 0.6 mm, 36 at 0.
    # Pooled: 112 values, 40 of them 0.6 mm → HD95 = 0.6, ASSD = 40·0.6/112.
    sp = (5.0, 0.8, 0.6)
    a = np.zeros((8, 8, 10), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 1, axis=2)
    d_ab, d_ba = surface_distances(a, b, sp)
    assert d_ab.size == d_ba.size == 56
    assert np.count_nonzero(d_ab) == np.count_nonzero(d_ba) == 20
    assert np.allclose(d_ab[d_ab > 0], 0.6) and np.allclose(d_ba[d_ba > 0], 0.6)
    assert hd95(a, b, sp) == pytest.approx(0.6, abs=1e-12)
    assert assd(a, b, sp) == pytest.approx(40 * 0.6 / 112, abs=1e-12)


def test_pooled_versus_max_convention():
    # pred surface: 10 voxels at 0 mm; gt surface: 10 voxels, one at 10 mm.
    d_pg = np.zeros(10)
    d_gp = np.zeros(10)
    d_gp[-1] = 10.0
    # pooled: 20 values, sorted position 0.95·19 = 18.05 → 0 + 0.05·10 = 0.5
    assert percentile_hausdorff(d_pg, d_gp, 95, "pooled") == pytest.approx(0.5)
    # max: gt side alone, position 0.95·9 = 8.55 → 0.55·10 = 5.5
    assert percentile_hausdorff(d_pg, d_gp, 95, "max") == pytest.approx(5.5)
    assert percentile_hausdorff(d_pg, d_gp, 100, "pooled") == 10.0
    assert percentile_hausdorff(d_pg, d_gp, 100, "max") == 10.0
    with pytest.raises(ValueError):
        percentile_hausdorff(d_pg, d_gp, 95, "mean")  # type: ignore[arg-type]


def test_empty_conventions():
    empty = np.zeros((4, 10, 10), bool)
    a = empty.copy()
    a[1, 2:5, 2:5] = True
    assert hd95(empty, empty, SPACING) == 0.0
    assert assd(empty, empty, SPACING) == 0.0
    assert hausdorff_distance(empty, empty, SPACING) == 0.0
    for p, g in [(a, empty), (empty, a)]:
        assert math.isnan(hd95(p, g, SPACING))
        assert math.isnan(hd95(p, g, SPACING, mode="max"))
        assert math.isnan(assd(p, g, SPACING))
        assert math.isnan(hausdorff_distance(p, g, SPACING))
    d_ae, d_ea = surface_distances(a, empty, SPACING)
    assert d_ae.size == 9 and np.all(np.isinf(d_ae)) and d_ea.size == 0
    for crop in (True, False):
        d1, d2 = surface_distances(empty, empty, SPACING, crop=crop)
        assert d1.size == d2.size == 0


def test_identical_masks_and_label_input():
    a, _ = blob_pair(3)
    assert hd95(a, a, SPACING) == 0.0 and assd(a, a, SPACING) == 0.0
    lab = a.astype(np.uint8) * 7  # non-zero = foreground
    assert hd95(lab, a, SPACING) == 0.0
    with pytest.raises(ValueError):
        hd95(a, a, (1.0, 1.0))


# ------------------------------------------------------------------------ tables
def _labels():
    gt = np.zeros((6, 24, 24), np.uint8)
    pred = np.zeros_like(gt)
    gt[1:4, 4:12, 4:12] = 1
    pred[1:4, 5:13, 4:12] = 1
    gt[2:5, 14:20, 14:20] = 2  # class 2 only in gt
    pred[0, 0:2, 0:2] = 3  # class 3 only in pred
    return pred, gt  # class 4 in neither


def test_case_metrics_rows_and_values():
    pred, gt = _labels()
    names = ["background", "liver", "tumour", "cyst", "vessel"]
    rows = case_metrics(pred, gt, SPACING, names)
    assert [(r["class"], r["metric"]) for r in rows] == [
        (c, m) for c in names[1:] for m in ("dice", "hd95", "assd")
    ]
    v = {(r["class"], r["metric"]): r["value"] for r in rows}
    p1, g1 = pred == 1, gt == 1
    assert v["liver", "dice"] == dice(p1, g1)
    assert v["liver", "hd95"] == pytest.approx(brute_hd(p1, g1, SPACING), abs=1e-6)
    assert v["liver", "assd"] == pytest.approx(brute_assd(p1, g1, SPACING), abs=1e-6)
    assert v["tumour", "dice"] == 0.0 and math.isnan(v["tumour", "hd95"])
    assert v["cyst", "dice"] == 0.0 and math.isnan(v["cyst", "assd"])
    assert (v["vessel", "dice"], v["vessel", "hd95"], v["vessel", "assd"]) == (1.0, 0.0, 0.0)
    assert all(isinstance(r["value"], float) for r in rows)


def test_case_metrics_options():
    pred, gt = _labels()
    names = {"0": "background", "1": "liver", "2": "tumour"}  # JSON-style keys
    assert class_name_map(names) == {0: "background", 1: "liver", 2: "tumour"}
    rows = case_metrics(
        pred, gt, SPACING, names, metrics=("hd", "cldice", "hd95"), classes=[1], hd_mode="max"
    )
    assert [r["metric"] for r in rows] == ["hd", "cldice", "hd95"]
    p1, g1 = pred == 1, gt == 1
    assert rows[0]["value"] == pytest.approx(brute_hd(p1, g1, SPACING, q=100), abs=1e-6)
    assert rows[1]["value"] == cldice(p1, g1)
    assert rows[2]["value"] == pytest.approx(brute_hd(p1, g1, SPACING, mode="max"), abs=1e-6)
    with pytest.raises(ValueError, match="unknown metric"):
        case_metrics(pred, gt, SPACING, names, metrics=("dice", "iou"))
    with pytest.raises(ValueError, match="no name"):
        case_metrics(pred, gt, SPACING, names, classes=[7])
    with pytest.raises(ValueError, match="shapes differ"):
        case_metrics(pred, gt[:-1], SPACING, names)


def _table() -> pd.DataFrame:
    nan = float("nan")
    rows = []
    values = {  # (epoch, class, metric) -> per-case values for cases c1..c3
        (1, "liver", "dice"): [0.8, 0.6, 0.7],
        (1, "liver", "hd95"): [4.0, nan, 2.0],
        (1, "tumour", "hd95"): [nan, nan, nan],
        (2, "liver", "dice"): [0.9, 0.9, 0.9],
        (2, "background", "dice"): [1.0, 1.0, 1.0],
    }
    for (epoch, cls, metric), vals in values.items():
        for case, val in zip(["c1", "c2", "c3"], vals, strict=True):
            rows.append(
                {
                    "epoch": epoch,
                    "split": "val",
                    "case": case,
                    "class": cls,
                    "metric": metric,
                    "value": val,
                }
            )
    return pd.DataFrame(rows)


def test_summarise_counts_undefined():
    s = summarise(_table())
    assert list(s.columns) == [
        "epoch",
        "split",
        "class",
        "metric",
        "mean",
        "sd",
        "n",
        "n_undefined",
    ]
    assert len(s) == 5
    r = s.set_index(["epoch", "class", "metric"])
    assert r.loc[(1, "liver", "dice"), "mean"] == pytest.approx(0.7)
    assert r.loc[(1, "liver", "dice"), "sd"] == pytest.approx(0.1)
    assert r.loc[(1, "liver", "hd95"), "mean"] == pytest.approx(3.0)
    assert r.loc[(1, "liver", "hd95"), "sd"] == pytest.approx(math.sqrt(2.0))
    assert r.loc[(1, "liver", "hd95"), "n"] == 3
    assert r.loc[(1, "liver", "hd95"), "n_undefined"] == 1
    assert math.isnan(r.loc[(1, "tumour", "hd95"), "mean"])
    assert r.loc[(1, "tumour", "hd95"), "n_undefined"] == 3
    assert r.loc[(2, "liver", "dice"), "sd"] == pytest.approx(0.0)
    # grouping columns absent from the table are skipped
    s2 = summarise(_table().drop(columns=["epoch", "split"]))
    assert list(s2.columns[:2]) == ["class", "metric"] and s2["n"].sum() == 15


def test_mean_foreground():
    m = mean_foreground(_table())
    r = m.set_index(["epoch", "metric"])
    assert r.loc[(1, "dice"), "mean"] == pytest.approx(0.7)
    # hd95 at epoch 1: liver 4, 2 defined; 1 + 3 undefined
    assert r.loc[(1, "hd95"), "mean"] == pytest.approx(3.0)
    assert r.loc[(1, "hd95"), "n"] == 6 and r.loc[(1, "hd95"), "n_undefined"] == 4
    # background excluded by default
    assert r.loc[(2, "dice"), "mean"] == pytest.approx(0.9) and r.loc[(2, "dice"), "n"] == 3
    kept = mean_foreground(_table(), background=None).set_index(["epoch", "metric"])
    assert kept.loc[(2, "dice"), "mean"] == pytest.approx(0.95)
    # rows straight from case_metrics work too
    pred, gt = _labels()
    names = ["background", "liver", "tumour"]
    rows = [dict(r, epoch=0, split="val") for r in case_metrics(pred, gt, SPACING, names)]
    out = mean_foreground(rows).set_index("metric")
    assert out.loc["hd95", "n"] == 2 and out.loc["hd95", "n_undefined"] == 1
    assert out.loc["dice", "mean"] == pytest.approx(dice(pred == 1, gt == 1) / 2)
