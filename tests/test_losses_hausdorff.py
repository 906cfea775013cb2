"""The two-sided Hausdorff-DT loss (Karimi & Salcudean) on hand-computed cases, and the
``spacing`` key the datasets add for it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.data.patches import PatchDataset, patch_collate
from segline.data.slices import SliceDataset, pad_collate
from segline.distmaps import one_hot_signed_distance
from segline.losses import CombinedLoss
from segline.losses.hausdorff import HausdorffDT, HausdorffGT, prediction_distance
from segline.train.evaluate import volume_batch

# One row of 6 pixels, spacing (y, x) = (1, 2) mm, two classes; class 1:
#   target     t = 0    1    1    1    0    0
#   prob       p = 0.1  0.8  0.7  0.9  0.6  0.2   -> thresholded 0 1 1 1 1 0
#   GT map       = +2   -2   -4   -2   +2   +4    (distmaps convention, mm)
#   d_t = |map|  = 2    2    4    2    2    4
#   d_p          = 2    2    4    4    2    2     (pixel 3: nearest background is 5)
#   (p - t)^2    = .01  .04  .09  .01  .36  .04
SPACING = torch.tensor([[1.0, 2.0]])
T_ROW = torch.tensor([0.0, 1, 1, 1, 0, 0])
P_ROW = torch.tensor([0.1, 0.8, 0.7, 0.9, 0.6, 0.2])
D_ROW = torch.tensor([2.0, -2, -4, -2, 2, 4])
DP_ROW = torch.tensor([2.0, 2, 4, 4, 2, 2])


def two_class(row: torch.Tensor) -> torch.Tensor:
    """(1, 2, 1, N) from the class-1 row (class 0 = 1 - row)."""
    return torch.stack([1 - row, row]).reshape(1, 2, 1, -1)


def row_batch(**extra: torch.Tensor) -> dict[str, torch.Tensor]:
    dist = torch.stack([-D_ROW, D_ROW]).reshape(1, 2, 1, -1)
    return {"target": two_class(T_ROW), "dist": dist, "spacing": SPACING, **extra}


def test_gt_map_of_the_hand_case_is_the_distmaps_convention() -> None:
    label = T_ROW.long().numpy()[None]
    maps = one_hot_signed_distance(label, 2, (1.0, 2.0))
    assert maps[1].ravel().tolist() == D_ROW.tolist()


def test_two_sided_hand_value_alpha_1_and_2() -> None:
    # alpha = 1: weights d_t + d_p = 4 4 8 6 4 6
    #   sum = .01*4 + .04*4 + .09*8 + .01*6 + .36*4 + .04*6
    #       = .04 + .16 + .72 + .06 + 1.44 + .24 = 2.66, mean over 6 pixels
    one = HausdorffDT([1], alpha=1)(None, two_class(P_ROW), row_batch())
    assert one.dtype == torch.float32
    assert float(one) == pytest.approx(2.66 / 6, abs=1e-6)
    # alpha = 2: weights d_t^2 + d_p^2 = 8 8 32 20 8 20
    #   sum = .08 + .32 + 2.88 + .20 + 2.88 + .80 = 7.16
    two = HausdorffDT([1], alpha=2)(None, two_class(P_ROW), row_batch())
    assert float(two) == pytest.approx(7.16 / 6, abs=1e-6)
    # alpha = 0: weights 1 + 1, twice the mean squared error (.55 / 6)
    zero = HausdorffDT([1], alpha=0)(None, two_class(P_ROW), row_batch())
    assert float(zero) == pytest.approx(2 * 0.55 / 6, abs=1e-6)
    # the one-sided form on the same case: weights d_t = 2 2 4 2 2 4 -> 1.44 / 6
    gt = HausdorffGT([1], alpha=1)(None, two_class(P_ROW), row_batch())
    assert float(gt) == pytest.approx((0.02 + 0.08 + 0.36 + 0.02 + 0.72 + 0.16) / 6, abs=1e-6)


def test_prediction_distance_of_the_hand_case() -> None:
    d_p = prediction_distance(two_class(P_ROW)[:, 1:], SPACING.numpy())
    assert d_p.shape == (1, 1, 1, 6)
    assert d_p.ravel().tolist() == DP_ROW.tolist()
    assert not d_p.requires_grad


def test_gradient_ignores_d_p() -> None:
    # d_p is a constant weight: dL/dp = 2 (p - t) (d_t + d_p) / 6 for class 1, 0 for class 0
    probs = two_class(P_ROW).requires_grad_(True)
    HausdorffDT([1], alpha=1)(None, probs, row_batch()).backward()
    want = 2 * (P_ROW - T_ROW) * (D_ROW.abs() + DP_ROW) / 6
    assert torch.allclose(probs.grad[0, 1, 0], want, atol=1e-6)
    assert torch.all(probs.grad[0, 0] == 0)


def test_empty_and_full_prediction_read_the_slice_diagonal() -> None:
    # no pixel above 0.5: d_p = D = sqrt((1 * 1)^2 + (6 * 2)^2) = sqrt(145) mm everywhere
    diag = math.sqrt(145.0)
    low = torch.full((6,), 0.2)
    d_p = prediction_distance(two_class(low)[:, 1:], SPACING.numpy())
    assert torch.allclose(d_p, torch.full_like(d_p, diag))
    # (p - t)^2 = .04 .64 .64 .64 .04 .04 (sum 2.04); sum (p - t)^2 d_t = 5.44
    loss = HausdorffDT([1], alpha=1)(None, two_class(low), row_batch())
    assert float(loss) == pytest.approx((5.44 + 2.04 * diag) / 6, abs=1e-5)
    # every pixel above 0.5: d_p = D as well (the GT map's "full class" constant)
    high = torch.full((6,), 0.9)
    full = prediction_distance(two_class(high)[:, 1:], SPACING.numpy())
    assert torch.allclose(full, torch.full_like(full, diag))
    assert torch.isfinite(HausdorffDT([1])(None, two_class(high), row_batch()))


def test_ignored_pixels_are_not_predicted_and_not_counted() -> None:
    # pixel 4 ignored: the prediction becomes 0 1 1 1 0 0 = t, so d_p = d_t = 2 2 4 2 . 4;
    # counted terms (alpha 1): .01*4 + .04*4 + .09*8 + .01*4 + .04*8 = 1.28 over 5 pixels
    mask = torch.tensor([[[1.0, 1, 1, 1, 0, 1]]])
    probs = two_class(P_ROW).requires_grad_(True)
    loss = HausdorffDT([1], alpha=1)(None, probs, row_batch(mask=mask))
    assert float(loss.detach()) == pytest.approx(1.28 / 5, abs=1e-6)
    loss.backward()
    assert probs.grad[0, 1, 0, 4] == 0
    d_p = prediction_distance(probs[:, 1:], SPACING.numpy(), mask)
    assert d_p.ravel().tolist() == [2.0, 2, 4, 2, 2, 4]


def test_3d_patches_use_their_own_spacing() -> None:
    # one predicted voxel at the centre of a 3x3x3 patch; item 0 spacing (5, 1, 1) mm,
    # item 1 (4, 3, 3) mm. Centre: nearest background in-plane (1 / 3 mm); (0, 1, 1):
    # the centre one z step away (5 / 4 mm); corner (1, 0, 0): sqrt(1+1) / sqrt(9+9).
    probs = torch.zeros(2, 2, 3, 3, 3)
    probs[:, 1, 1, 1, 1] = 0.9
    probs[:, 0] = 1 - probs[:, 1]
    spacing = torch.tensor([[5.0, 1, 1], [4.0, 3, 3]])
    d_p = prediction_distance(probs[:, 1:], spacing.numpy())
    assert d_p.shape == (2, 1, 3, 3, 3)
    assert [float(d_p[b, 0, 1, 1, 1]) for b in (0, 1)] == [1.0, 3.0]
    assert [float(d_p[b, 0, 0, 1, 1]) for b in (0, 1)] == [5.0, 4.0]
    assert float(d_p[0, 0, 1, 0, 0]) == pytest.approx(math.sqrt(2), abs=1e-6)
    assert float(d_p[1, 0, 1, 0, 0]) == pytest.approx(math.sqrt(18), abs=1e-5)
    # the loss on the 3D batch: target = prediction, GT map = +-1 everywhere, alpha 1
    target = (probs > 0.5).float()
    dist = torch.ones(2, 2, 3, 3, 3)
    batch = {"target": target, "dist": dist, "spacing": spacing}
    loss = HausdorffDT([1], alpha=1)(None, probs, batch)
    err = (probs[:, 1:] - target[:, 1:]) ** 2
    assert float(loss) == pytest.approx(float((err * (1 + d_p)).mean()), rel=1e-6)
    assert float(loss) > 0  # the centre voxel: (0.1)^2 * (1 + 1 or 3)


def test_requires_spacing_of_the_right_shape() -> None:
    assert HausdorffDT([1]).requires == {"target", "dist", "spacing"}
    assert HausdorffGT([1]).requires == {"target", "dist"}
    batch = row_batch()
    del batch["spacing"]
    with pytest.raises(ValueError, match="spacing"):
        HausdorffDT([1])(None, two_class(P_ROW), batch)
    with pytest.raises(ValueError, match=r"spacing.*shape \(1, 3\), expected \(1, 2\)"):
        HausdorffDT([1])(None, two_class(P_ROW), row_batch(spacing=torch.ones(1, 3)))
    with pytest.raises(ValueError, match="positive"):
        HausdorffDT([1])(None, two_class(P_ROW), row_batch(spacing=torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="alpha"):
        HausdorffDT([1], alpha=-1)


def test_spec_names_pick_the_two_forms() -> None:
    crit = CombinedLoss.from_spec("hd:1[alpha=1],hausdorff_gt:1[alpha=1]", n_classes=2)
    assert [type(loss) for loss in crit.losses] == [HausdorffDT, HausdorffGT]
    assert crit.requires == {"target", "dist", "spacing"}
    logits = two_class(P_ROW).log()
    total, _ = crit(logits, row_batch(), epoch=0)
    assert float(total) == pytest.approx(2.66 / 6 + 1.36 / 6, abs=1e-5)


# ------------------------------------------------------------------ datasets carry spacing


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CaseStore:
    root: Path = tmp_path_factory.mktemp("hd") / "cases"
    for case, shape, sp in (("c_1", (3, 6, 5), [4.0, 0.5, 0.75]), ("c_2", (2, 5, 4), [2.0, 1, 1])):
        lab = np.zeros(shape, np.uint8)
        lab[:, 1:3, 1:3] = 1
        write_case(
            root, case, lab[None].astype(np.float32), lab, {"shape": list(shape), "spacing": sp}
        )
    atomic.write_json(
        root / "dataset.json", {"name": "hd", "labels": {"0": "bg", "1": "fg"}, "channels": ["CT"]}
    )
    atomic.write_json(root / "split.json", {"train": ["c_1", "c_2"], "val": [], "test": []})
    return CaseStore(root)


def test_slices_and_patches_carry_spacing(store: CaseStore) -> None:
    slices = SliceDataset(store, ["c_1", "c_2"], dist_kind=None)
    batch = pad_collate([slices[0], slices[3]])  # c_1 z=0 (6x5), c_2 z=0 (5x4), padded
    assert batch["spacing"].tolist() == [[0.5, 0.75], [1.0, 1.0]]
    patches = PatchDataset(store, ["c_1", "c_2"], (2, 4, 4), samples_per_epoch=4, seed=0)
    items = [patches[i] for i in range(4)]
    pb = patch_collate(items)
    want = {"c_1": [4.0, 0.5, 0.75], "c_2": [2.0, 1.0, 1.0]}
    assert pb["spacing"].tolist() == [want[c] for c in pb["case"]]
    vb = volume_batch(store, "c_1", frozenset({"target", "spacing"}), dist_kind=None)
    assert vb["spacing"].tolist() == [[4.0, 0.5, 0.75]]
    # and the loss runs on a real slice batch (d_t from a map of the right shape)
    probs = batch["target"].clone()
    batch["dist"] = torch.ones_like(probs)
    assert float(HausdorffDT([1])(None, probs, batch)) == 0.0
