"""AUG: training-set augmentation keeps labels, masks and distance maps consistent.

Distance maps come from the project's own :func:`one_hot_signed_distance`; flips must
give exactly the map of the transformed label, 90-degree rotations the same up to one
float32 rounding (the transform sums the axes in its own order), a zoom and an elastic
warp the bounds the module docstring of segline.data.augment claims.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import segline.data.augment as aug
from segline.casestore import CaseStore
from segline.data.augment import augment, item_rng
from segline.data.patches import PatchDataset
from segline.data.slices import SliceDataset, pad_collate
from segline.distmaps import one_hot_signed_distance
from segline.experiments.vessels.inputs import MipInputs

# an L-shaped object with a hole: no symmetry, so every flip and rotation moves it
LABEL_2D = np.zeros((7, 7), np.uint8)
LABEL_2D[1:5, 1:3] = 1
LABEL_2D[3:5, 3:6] = 2
LABEL_2D[2, 1] = 0


def _label_3d() -> np.ndarray:
    lab = np.zeros((3, 6, 6), np.uint8)
    lab[0, 1:4, 1:3] = 1
    lab[1, 1:5, 1:2] = 1
    lab[2, 4:6, 2:5] = 1
    return lab


@pytest.mark.parametrize(
    ("label", "spacing", "n_classes"),
    [(LABEL_2D, (0.8, 0.8), 3), (_label_3d(), (5.0, 0.7, 0.7), 2)],
    ids=["2d", "3d"],
)
def test_flipped_map_is_the_map_of_the_flipped_label(label, spacing, n_classes) -> None:
    dist = one_hot_signed_distance(label, n_classes, spacing)
    nd = label.ndim
    # by hand: every single flip and the in-plane rotations
    for axis in range(nd):
        flipped = np.flip(label, axis)
        want = one_hot_signed_distance(flipped, n_classes, spacing)
        assert np.array_equal(np.flip(dist, axis + 1), want), axis
    for k in (1, 2, 3):
        rotated = np.rot90(label, k, axes=(-2, -1))
        want = one_hot_signed_distance(rotated, n_classes, spacing)
        assert np.array_equal(np.sign(np.rot90(dist, k, axes=(-2, -1))), np.sign(want))
        np.testing.assert_allclose(np.rot90(dist, k, axes=(-2, -1)), want, rtol=3e-7, atol=0)
    # through augment("light"): the draws cover several flip/rotation combinations
    seen = set()
    image = label[None].astype(np.float32)
    for i in range(24):
        out = augment("light", image, label, spacing=spacing, rng=item_rng(3, 0, i), dist=dist)
        want = one_hot_signed_distance(out["label"], n_classes, spacing)
        np.testing.assert_allclose(out["dist"], want, rtol=3e-7, atol=0, err_msg=str(i))
        assert out["label"].shape == label.shape
        seen.add(out["label"].tobytes())
        # the image moved with the label, then got one scale and shift
        ratio = np.polyfit(out["label"].ravel().astype(float), out["image"].ravel(), 1)
        assert 0.9 <= ratio[0] <= 1.1 and -0.1 <= ratio[1] <= 0.1
    assert len(seen) >= 6


def test_rotations_by_90_only_with_square_spacing() -> None:
    """With sy != sx a quarter turn would change the maps' spacing: only 0 or 180."""
    label = LABEL_2D[:, :6]  # 7 x 6: not square either
    dist = one_hot_signed_distance(label, 3, (0.8, 0.6))
    for i in range(16):
        out = augment("light", label[None].astype(np.float32), label, spacing=(0.8, 0.6),
                      rng=item_rng(0, 0, i), dist=dist)  # fmt: skip
        assert out["label"].shape == (7, 6)
        # only flips and half turns: exact
        assert np.array_equal(out["dist"], one_hot_signed_distance(out["label"], 3, (0.8, 0.6)))


def test_strong_keeps_the_label_set_and_the_ignore_value() -> None:
    yy, xx = np.mgrid[:32, :32]
    label = np.zeros((32, 32), np.uint8)
    label[((yy - 15.5) ** 2 + (xx - 15.5) ** 2) < 81] = 1
    label[12:18, 12:18] = 2
    label[:, :4] = 255  # unlabelled stripe
    mask = (label != 255).astype(np.float32)
    image = np.random.default_rng(0).standard_normal((2, 32, 32)).astype(np.float32)
    ignored = 0
    for i in range(10):
        out = augment("strong", image, label, spacing=(0.8, 0.8), rng=item_rng(0, 1, i),
                      mask=mask)  # fmt: skip
        assert set(np.unique(out["label"]).tolist()) <= {0, 1, 2, 255}
        assert {1, 2} <= set(np.unique(out["label"]).tolist())
        assert out["image"].shape == (2, 32, 32) and out["image"].dtype == np.float32
        # nearest neighbour: the mask still marks exactly the ignored voxels, or the
        # voxels that came from outside the array (label 0, mask 0)
        assert set(np.unique(out["mask"]).tolist()) <= {0.0, 1.0}
        assert np.all(out["mask"][out["label"] == 255] == 0)
        assert np.all(out["label"][out["mask"] == 0] != 1)
        ignored += int((out["label"] == 255).sum())
    assert ignored > 0


def _disc(n: int = 48, radius: float = 12.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (((yy - (n - 1) / 2) ** 2 + (xx - (n - 1) / 2) ** 2) < radius**2).astype(np.uint8)


@pytest.mark.parametrize("elastic", [False, True])
def test_warped_maps_stay_near_the_recomputed_ones(monkeypatch, elastic: bool) -> None:
    """3D-style maps (warped and scaled by the zoom) against the map of the warped
    label, within 8 mm of a disc: below 2 spacings for the zoom, plus ELASTIC_MM."""
    if not elastic:
        monkeypatch.setattr(aug, "ELASTIC_MM", 0.0)
    spacing = (0.8, 0.8)
    label = _disc()
    dist = one_hot_signed_distance(label, 2, spacing)
    bound = 2 * 0.8 + aug.ELASTIC_MM
    worst = 0.0
    for i in range(12):
        out = augment("strong", label[None].astype(np.float32), label, spacing=spacing,
                      rng=item_rng(0, 0, i), dist=dist)  # fmt: skip
        ref = one_hot_signed_distance(out["label"], 2, spacing)
        near = np.abs(ref[1]) < 8.0
        worst = max(worst, float(np.abs(out["dist"][:, near] - ref[:, near]).max()))
        # recomputing (per-slice 2D maps) is exact by construction
        again = augment("strong", label[None].astype(np.float32), label, spacing=spacing,
                        rng=item_rng(0, 0, i), dist=dist, recompute=True, n_classes=2)  # fmt: skip
        assert np.array_equal(again["label"], out["label"])
        np.testing.assert_allclose(again["dist"], ref, rtol=3e-7, atol=0)
    assert 0.0 < worst < bound


def test_none_returns_the_arrays_untouched() -> None:
    image = np.ones((1, 7, 7), np.float32)
    out = augment("none", image, LABEL_2D, spacing=(1.0, 1.0), rng=item_rng(0, 0, 0))
    assert out["image"] is image and out["label"] is LABEL_2D
    with pytest.raises(ValueError, match="augmentation must be one of"):
        augment("heavy", image, LABEL_2D, spacing=(1.0, 1.0), rng=item_rng(0, 0, 0))


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


def test_slices_same_seed_same_items_other_epoch_other_items(store) -> None:
    cs = CaseStore(*store)
    train = cs.case_ids("train")
    first = SliceDataset(cs, train, dist_kind="2d", aug="strong", seed=5, weight_map=(5.0, 3.0))
    second = SliceDataset(cs, train, dist_kind="2d", aug="strong", seed=5, weight_map=(5.0, 3.0))
    plain = SliceDataset(cs, train, dist_kind="2d", weight_map=(5.0, 3.0))
    z = len(first) // 2
    a = first[z]
    assert _same(a, second[z]) and _same(first[z], a)
    assert not _same(a, plain[z])
    first.set_epoch(1)
    assert not torch.equal(first[z]["image"], a["image"])
    # the maps and weights follow the augmented label (recomputed per slice)
    lab = a["target"].argmax(0).numpy()
    spacing = cs.meta(a["case"])["spacing"][1:]
    want = one_hot_signed_distance(lab, 2, spacing)
    np.testing.assert_allclose(a["dist"].numpy(), want, rtol=3e-7, atol=0)


def test_loader_workers_give_the_same_augmented_batches(store) -> None:
    """Each item's draw depends on (seed, epoch, index) only: 0 or 2 workers alike."""
    cs = CaseStore(*store)
    ds = SliceDataset(cs, cs.case_ids("train"), dist_kind="2d", aug="light", seed=1)
    ds.set_epoch(2)
    batches = []
    for workers in (0, 2):
        gen = torch.Generator().manual_seed(7)
        loader = DataLoader(ds, batch_size=4, shuffle=True, generator=gen,
                            collate_fn=pad_collate, num_workers=workers)  # fmt: skip
        batches.append(list(loader))
    assert len(batches[0]) == len(batches[1]) > 1
    for b0, b2 in zip(*batches, strict=True):
        assert _same(b0, b2) and b0["z"] == b2["z"]


def test_patches_same_seed_same_items(store) -> None:
    cs = CaseStore(*store)
    kwargs = dict(samples_per_epoch=3, seed=2, dist_source="dist3d", aug="strong")
    one = PatchDataset(cs, cs.case_ids("train"), (4, 16, 16), **kwargs)
    two = PatchDataset(cs, cs.case_ids("train"), (4, 16, 16), **kwargs)
    plain = PatchDataset(cs, cs.case_ids("train"), (4, 16, 16), samples_per_epoch=3, seed=2,
                         dist_source="dist3d")  # fmt: skip
    for i in range(3):
        a = one[i]
        assert _same(a, two[i])
        assert a["start"] == plain[i]["start"]  # the patch draw is unchanged by AUG
        assert a["image"].shape == (1, 4, 16, 16) and a["dist"].shape == (2, 4, 16, 16)
        assert set(torch.unique(a["mask"]).tolist()) <= {0.0, 1.0}
    one.set_epoch(1)
    assert not torch.equal(one[0]["image"], two[0]["image"])
    with pytest.raises(ValueError, match="mip_depth"):
        PatchDataset(cs, cs.case_ids("train"), (4, 16, 16), aug="light",
                     inputs=MipInputs(".", axis=0))  # fmt: skip


def test_augmented_items_carry_the_spacing_the_hausdorff_loss_needs(store) -> None:
    """An augmented slice or patch keeps its grid, so it carries the case's spacing like
    an unaugmented one; the two-sided Hausdorff-DT loss (which reads it) then runs."""
    from segline.data.patches import patch_collate
    from segline.data.slices import pad_collate
    from segline.losses.hausdorff import HausdorffDT

    cs = CaseStore(*store)
    train = cs.case_ids("train")
    aug = SliceDataset(cs, train, dist_kind="2d", aug="strong", seed=3)
    plain = SliceDataset(cs, train, dist_kind="2d")
    items = [aug[i] for i in range(2)]
    for i, item in enumerate(items):
        assert torch.equal(item["spacing"], plain[i]["spacing"])
        want = torch.tensor(cs.meta(item["case"])["spacing"][1:], dtype=torch.float32)
        assert torch.equal(item["spacing"], want)
    batch = pad_collate(items)
    probs = torch.softmax(torch.randn_like(batch["target"]), 1)
    assert float(HausdorffDT([1], alpha=1)(None, probs, batch)) > 0
    kwargs = dict(samples_per_epoch=2, seed=2, dist_source="dist3d")
    patches = PatchDataset(cs, train, (4, 16, 16), aug="strong", **kwargs)
    plain3 = PatchDataset(cs, train, (4, 16, 16), **kwargs)
    items3 = [patches[i] for i in range(2)]
    for i, item in enumerate(items3):
        assert torch.equal(item["spacing"], plain3[i]["spacing"])
    batch3 = patch_collate(items3)
    probs3 = torch.softmax(torch.randn_like(batch3["target"]), 1)
    assert float(HausdorffDT([1], alpha=1)(None, probs3, batch3)) > 0
