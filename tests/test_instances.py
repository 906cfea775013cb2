"""Tests for segline.metrics.instances against values counted by hand.

Most label maps are (1, 2, N): one z slice, two rows, so every foreground voxel is a
surface voxel (its z neighbours lie outside the array) and overlaps are counted as
2 × (columns in common).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from segline.metrics.instances import (
    CASE_CLASS,
    dice_matrix,
    instance_rows,
    match_instances,
    summary,
)

ISO = (1.0, 1.0, 1.0)
NAMES = {1: "L1", 2: "L2", 5: "T11", 6: "T12", 7: "L1b"}


def strip(columns: list[int]) -> np.ndarray:
    """A (1, 2, len) label map whose column x holds ``columns[x]`` in both rows."""
    return np.tile(np.asarray(columns, np.uint8), (1, 2, 1))


def values(rows: list[dict]) -> dict[tuple[str, str], float]:
    """{(class, metric): value}, checking each key appears once."""
    out = {(r["class"], r["metric"]): r["value"] for r in rows}
    assert len(out) == len(rows)
    return out


def test_perfect_prediction_with_permuted_ids() -> None:
    """Three vertebrae, one z slice each, predicted exactly under other ids."""
    gt = np.zeros((3, 2, 2), np.uint8)
    gt[0], gt[1], gt[2] = 5, 6, 7
    pred = np.zeros_like(gt)
    pred[0], pred[1], pred[2] = 3, 1, 2
    assert match_instances(pred, gt) == [(5, 3), (6, 1), (7, 2)]
    v = values(instance_rows(pred, gt, ISO, NAMES))
    for name in ("T11", "T12", "L1b"):
        assert v[(name, "dice")] == 1.0
        assert v[(name, "assd")] == 0.0
    assert v[(CASE_CLASS, "id_rate")] == 1.0
    assert v[(CASE_CLASS, "false_positives")] == 0.0
    assert v[(CASE_CLASS, "misses")] == 0.0
    assert v[(CASE_CLASS, "dice")] == 1.0
    assert v[(CASE_CLASS, "assd")] == 0.0


SPLIT_GT = [1, 1, 1, 1, 2, 2, 2, 2]
# L1 (8 voxels) split into id 4 (columns 0-2: 6 voxels) and id 9 (column 3: 2 voxels)
SPLIT_PRED = [4, 4, 4, 9, 2, 2, 2, 2]


def test_split_vertebra_gives_one_false_positive() -> None:
    """Dice(L1, id 4) = 2·6 / (8 + 6) = 6/7 > Dice(L1, id 9) = 2·2 / (8 + 2) = 0.4.

    ASSD(L1, id 4), spacing 1 mm: L1's 2 voxels in column 3 lie 1 mm from column 2,
    the other 6 + 6 surface voxels at 0: 2 / (8 + 6) = 1/7 mm.
    """
    gt, pred = strip(SPLIT_GT), strip(SPLIT_PRED)
    assert dice_matrix(pred, gt)[3][0].tolist() == pytest.approx([0.0, 6 / 7, 0.4])
    assert match_instances(pred, gt) == [(1, 4), (2, 2)]
    v = values(instance_rows(pred, gt, ISO, NAMES))
    assert v[("L1", "dice")] == pytest.approx(6 / 7)
    assert v[("L1", "assd")] == pytest.approx(1 / 7)
    assert v[("L2", "dice")] == 1.0
    assert v[("L2", "assd")] == 0.0
    assert v[(CASE_CLASS, "false_positives")] == 1.0
    assert v[(CASE_CLASS, "misses")] == 0.0
    assert v[(CASE_CLASS, "id_rate")] == 1.0
    assert v[(CASE_CLASS, "dice")] == pytest.approx((6 / 7 + 1) / 2)
    assert v[(CASE_CLASS, "assd")] == pytest.approx((1 / 7 + 0) / 2)


MISSED_GT = [1, 1, 1, 1, 2, 2, 2, 2]
MISSED_PRED = [3, 3, 3, 3, 0, 0, 0, 0]


def test_missed_vertebra() -> None:
    """L2 has no predicted voxel: Dice 0, ASSD undefined, one miss, no FP."""
    gt, pred = strip(MISSED_GT), strip(MISSED_PRED)
    assert match_instances(pred, gt) == [(1, 3)]
    v = values(instance_rows(pred, gt, ISO, NAMES))
    assert (v[("L1", "dice")], v[("L1", "assd")]) == (1.0, 0.0)
    assert v[("L2", "dice")] == 0.0
    assert math.isnan(v[("L2", "assd")])
    assert v[(CASE_CLASS, "id_rate")] == 0.5
    assert v[(CASE_CLASS, "misses")] == 1.0
    assert v[(CASE_CLASS, "false_positives")] == 0.0
    assert v[(CASE_CLASS, "dice")] == 0.5
    assert v[(CASE_CLASS, "assd")] == 0.0  # over the matched vertebra only


def test_merged_prediction_matches_one_vertebra() -> None:
    """One instance over L1 (8 voxels) and L2 (4 voxels), 12 voxels in all.

    Dice(L1) = 2·8 / (8 + 12) = 0.8, Dice(L2) = 2·4 / (4 + 12) = 0.5: the instance goes
    to L1; L2 is unmatched (Dice 0, a miss). ASSD(L1): pred columns 4 and 5 lie 1 and
    2 mm from column 3, two rows each: (2·1 + 2·2) / (8 + 12) = 0.3 mm.
    """
    gt, pred = strip([1, 1, 1, 1, 2, 2]), strip([8] * 6)
    assert dice_matrix(pred, gt)[3][:, 0].tolist() == pytest.approx([0.8, 0.5])
    assert match_instances(pred, gt) == [(1, 8)]
    v = values(instance_rows(pred, gt, ISO, NAMES))
    assert v[("L1", "dice")] == pytest.approx(0.8)
    assert v[("L1", "assd")] == pytest.approx(0.3)
    assert v[("L2", "dice")] == 0.0
    assert math.isnan(v[("L2", "assd")])
    assert v[(CASE_CLASS, "id_rate")] == 0.5
    assert v[(CASE_CLASS, "misses")] == 1.0
    assert v[(CASE_CLASS, "false_positives")] == 0.0
    assert v[(CASE_CLASS, "dice")] == pytest.approx(0.4)
    assert v[(CASE_CLASS, "assd")] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        # x (0.5 mm): 9 voxels of the leading face at 0.5 mm, plus the centre of the
        # trailing face (surface of gt, centre of pred): its nearest pred surface voxel
        # is 0.5 mm away along x; by symmetry the same from pred: 2 · 5 / (26 + 26)
        (2, 2 * (9 * 0.5 + 0.5) / 52),
        # z (2 mm): 9 face voxels at 2 mm, the trailing face centre 0.5 mm (along x)
        (0, 2 * (9 * 2.0 + 0.5) / 52),
    ],
)
def test_assd_one_voxel_shift_anisotropic(axis: int, expected: float) -> None:
    """A 3×3×3 cube (26 surface voxels) shifted by one voxel, spacing (2, 1, 0.5) mm."""
    gt = np.zeros((6, 6, 6), np.uint8)
    gt[1:4, 1:4, 1:4] = 1
    pred = np.roll(gt, 1, axis=axis) * 2
    v = values(instance_rows(pred, gt, (2.0, 1.0, 0.5), NAMES))
    assert v[("L1", "assd")] == pytest.approx(expected)
    assert v[("L1", "dice")] == pytest.approx(2 * 18 / 54)
    assert v[(CASE_CLASS, "assd")] == pytest.approx(expected)


def test_empty_prediction_and_empty_ground_truth() -> None:
    """The documented edge cases."""
    gt = strip([1, 1, 2, 2])
    none = np.zeros_like(gt)
    v = values(instance_rows(none, gt, ISO, NAMES))
    assert (v[("L1", "dice")], v[("L2", "dice")]) == (0.0, 0.0)
    assert math.isnan(v[("L1", "assd")]) and math.isnan(v[(CASE_CLASS, "assd")])
    assert v[(CASE_CLASS, "id_rate")] == 0.0
    assert v[(CASE_CLASS, "misses")] == 2.0
    assert v[(CASE_CLASS, "false_positives")] == 0.0
    both = values(instance_rows(none, none, ISO, NAMES))
    assert set(both) == {
        (CASE_CLASS, m) for m in ("dice", "assd", "id_rate", "false_positives", "misses")
    }
    assert (both[(CASE_CLASS, "dice")], both[(CASE_CLASS, "assd")]) == (1.0, 0.0)
    assert math.isnan(both[(CASE_CLASS, "id_rate")])
    assert (both[(CASE_CLASS, "misses")], both[(CASE_CLASS, "false_positives")]) == (0.0, 0.0)
    fp_only = values(instance_rows(strip([3, 0, 4, 4]), none, ISO, NAMES))
    assert (fp_only[(CASE_CLASS, "dice")], fp_only[(CASE_CLASS, "false_positives")]) == (0.0, 2.0)
    assert math.isnan(fp_only[(CASE_CLASS, "assd")])


def test_bad_names_and_shapes_refused() -> None:
    gt = strip([1, 2])
    with pytest.raises(ValueError, match="id 2 has no class name"):
        instance_rows(gt, gt, ISO, {1: "L1"})
    with pytest.raises(ValueError, match="per-case rows"):
        instance_rows(gt, gt, ISO, {1: "L1", 2: CASE_CLASS})
    with pytest.raises(ValueError, match="shapes differ"):
        match_instances(gt[:, :, :1], gt)
    with pytest.raises(ValueError, match="integer ids"):
        match_instances(gt.astype(float), gt)


def test_summary_pools_vertebrae_over_cases() -> None:
    """The split case and the missed case together (values from the tests above).

    Per-vertebra Dice 6/7, 1 (split) and 1, 0 (missed): mean 5/7; identified 3 of 4
    vertebrae; ASSD over the 3 matched: (1/7 + 0 + 0) / 3 = 1/21 mm; false positives
    1 and 0, misses 0 and 1: 0.5 per case.
    """
    rows = instance_rows(strip(SPLIT_PRED), strip(SPLIT_GT), ISO, NAMES)
    rows += instance_rows(strip(MISSED_PRED), strip(MISSED_GT), ISO, NAMES)
    s = summary({"case": "c", "epoch": 3} | r for r in rows)
    assert s == pytest.approx(
        {"dice": 5 / 7, "assd": 1 / 21, "id_rate": 0.75, "false_positives": 0.5, "misses": 0.5}
    )


def test_summary_id_rate_is_pooled_not_a_mean_of_rates() -> None:
    """One vertebra found in a 1-vertebra case, 1 of 2 in another: 2/3 (not 0.75)."""
    rows = instance_rows(strip([1, 1]), strip([1, 1]), ISO, NAMES)
    rows += instance_rows(strip(MISSED_PRED), strip(MISSED_GT), ISO, NAMES)
    assert summary(rows)["id_rate"] == pytest.approx(2 / 3)
    assert math.isnan(summary([])["dice"])


def brute_force_best(pred: np.ndarray, gt: np.ndarray) -> float:
    """Largest summed Dice of any one-to-one pairing, every pairing enumerated."""
    g_ids = [int(i) for i in np.unique(gt) if i]
    p_ids = [int(i) for i in np.unique(pred) if i]

    def dice(g: int, p: int) -> float:
        a, b = gt == g, pred == p
        return 2.0 * float(np.sum(a & b)) / float(np.sum(a) + np.sum(b))

    best = 0.0
    if len(g_ids) <= len(p_ids):
        for perm in itertools.permutations(p_ids, len(g_ids)):
            best = max(best, sum(dice(g, p) for g, p in zip(g_ids, perm, strict=True)))
    else:
        for perm in itertools.permutations(g_ids, len(p_ids)):
            best = max(best, sum(dice(g, p) for g, p in zip(perm, p_ids, strict=True)))
    return best


def test_matching_equals_brute_force_on_random_maps() -> None:
    """Random 2×3×4 maps with up to 4 instances each: the matching reaches the best
    summed Dice of all pairings, is one-to-one, sorted, and only pairs overlaps."""
    rng = np.random.default_rng(13)
    for _ in range(200):
        n_g, n_p = rng.integers(0, 5, size=2)
        gt = rng.integers(0, n_g + 1, size=(2, 3, 4))
        pred = rng.integers(0, n_p + 1, size=(2, 3, 4)) * 3  # ids 3, 6, ...: not gt's
        pairs = match_instances(pred, gt)
        assert pairs == sorted(pairs)
        assert len({g for g, _ in pairs}) == len({p for _, p in pairs}) == len(pairs)
        for g, p in pairs:
            assert np.any((gt == g) & (pred == p))
        total = sum(
            2.0 * np.sum((gt == g) & (pred == p)) / (np.sum(gt == g) + np.sum(pred == p))
            for g, p in pairs
        )
        assert total == pytest.approx(brute_force_best(pred, gt))
        assert match_instances(pred, gt) == pairs  # deterministic


def test_assd_on_the_pair_box_equals_the_whole_volume() -> None:
    """instance_rows measures each pair on its bounding box + 1 voxel: the same ASSD
    as on the whole arrays (random blobs touching the borders included)."""
    from segline.metrics.surface import assd

    rng = np.random.default_rng(7)
    spacing = (2.0, 0.7, 0.5)
    for _ in range(30):
        gt = np.zeros((6, 7, 8), np.uint8)
        pred = np.zeros_like(gt)
        for k in (1, 2):
            lo = rng.integers(0, 4, size=3)
            hi = lo + rng.integers(1, 5, size=3)
            gt[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = k
            shift = lo + rng.integers(-1, 2, size=3)
            sl = tuple(slice(max(a, 0), b) for a, b in zip(shift, shift + hi - lo, strict=True))
            pred[sl] = 3 * k
        v = values(instance_rows(pred, gt, spacing, NAMES))
        for g, p in match_instances(pred, gt):
            assert v[(NAMES[g], "assd")] == pytest.approx(assd(pred == p, gt == g, spacing))
