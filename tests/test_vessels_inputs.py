"""The vessels experiment's inputs of the core's 3D patches
(:mod:`segline.experiments.vessels.inputs`): pseudo-labels as the training labels and
the MIP keys, checked against direct computations, and the MIP loss on a batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segline.casestore import CaseStore
from segline.data.patches import IGNORE, PatchDataset, patch_collate
from segline.errors import InputError
from segline.experiments.vessels.inputs import MipInputs, PseudoLabels, mip_window, read_mip_axis
from segline.experiments.vessels.loss import MIPLoss
from segline.losses import CombinedLoss
from test_patches import PATCH, SHAPES, build, window


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("vessels"))


@pytest.fixture(scope="module")
def store(paths: dict[str, Path]) -> CaseStore:
    return CaseStore(paths["cases"], paths["dist"])


# --------------------------------------------------------------------- pseudo labels


def test_pseudo_ignore_becomes_mask_zero_and_background(store: CaseStore,
                                                       paths: dict[str, Path]) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=12,
                      labels=PseudoLabels(paths["pseudo"]), dist_source="labels", fg_ratio=0.5)
    for i in range(len(ds)):
        it = ds[i]
        shape = SHAPES[it["case"]]
        win = window(it["start"])
        ps = np.load(paths["pseudo"] / it["case"] / "pseudo.npy")[win]
        real = tuple(slice(0, n) for n in ps.shape)
        mask = it["mask"].numpy()
        np.testing.assert_array_equal(mask[real], (ps != IGNORE).astype(np.float32))
        assert mask.sum() == (ps != IGNORE).sum()  # padding (v_2) is ignored too
        tgt = it["target"][(slice(None), *real)].numpy()
        np.testing.assert_array_equal(tgt[1], (ps == 1).astype(np.float32))
        np.testing.assert_array_equal(tgt[0], (ps != 1).astype(np.float32))
        pd = np.load(paths["pseudo"] / it["case"] / "pseudo_dist3d.npy")[(slice(None), *win)]
        np.testing.assert_array_equal(it["dist"][(slice(None), *real)].numpy(), pd)
        assert all(n <= s for n, s in zip(ps.shape, shape, strict=True))


def test_pseudo_foreground_patches_centre_on_pseudo_vessels(store: CaseStore,
                                                           paths: dict[str, Path]) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=20,
                      labels=PseudoLabels(paths["pseudo"]), fg_ratio=1.0)
    for i in range(len(ds)):
        it = ds[i]
        assert float((it["target"][1] * it["mask"]).sum()) > 0


# ------------------------------------------------------------------------ MIP keys


def direct_mip(vol_lab: np.ndarray, depth: np.ndarray, axis: int, start: tuple[int, ...],
               size: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray by ray, the expected (label, relative depth, valid) of a patch footprint."""
    others = [a for a in range(3) if a != axis]
    plane = tuple(size[a] for a in others)
    lab, dep, val = np.zeros(plane, np.int64), np.zeros(plane, np.int64), np.zeros(plane)
    for u in range(plane[0]):
        for v in range(plane[1]):
            gu, gv = start[others[0]] + u, start[others[1]] + v
            if gu >= depth.shape[0] or gv >= depth.shape[1]:
                continue
            lab[u, v] = vol_lab[gu, gv]
            rel = int(depth[gu, gv]) - start[axis]
            if 0 <= rel < size[axis]:
                dep[u, v], val[u, v] = rel, 1.0
    return lab, dep, val


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mip_keys_match_direct_computation(tmp_path: Path, axis: int) -> None:
    p = build(tmp_path, axis=axis)
    store = CaseStore(p["cases"])
    assert read_mip_axis(p["mip"]) == axis
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=15, fg_ratio=0.6,
                      inputs=MipInputs(p["mip"]))
    others = [a for a in range(3) if a != axis]
    n_valid = 0
    for i in range(len(ds)):
        it = ds[i]
        case, start = it["case"], it["start"]
        lab2 = np.load(p["mip"] / case / "mip_label.npy")
        dep2 = np.load(p["mip"] / case / "depth.npy")
        want = direct_mip(lab2, dep2, axis, start, PATCH)
        assert it["mip_axis"] == axis
        assert it["mip_label"].shape == tuple(PATCH[a] for a in others)
        assert it["mip_depth"].dtype == torch.int64 and it["mip_valid"].dtype == torch.float32
        np.testing.assert_array_equal(it["mip_label"].numpy(), want[0])
        np.testing.assert_array_equal(it["mip_depth"].numpy(), want[1])
        np.testing.assert_array_equal(it["mip_valid"].numpy(), want[2])
        # a valid ray's relative depth points at the patch's brightest voxel on that ray,
        # which is the whole volume's maximum (the MIP value)
        mip = np.load(p["mip"] / case / "mip.npy")
        img = it["image"][0].numpy()
        moved = np.moveaxis(img, axis, 0)
        at_depth = np.take_along_axis(moved, it["mip_depth"].numpy()[None], 0)[0]
        fp = tuple(slice(start[a], start[a] + PATCH[a]) for a in others)
        valid = it["mip_valid"].numpy() > 0
        real_mip = np.zeros(valid.shape, np.float32)
        real_mip[tuple(slice(0, n) for n in mip[fp].shape)] = mip[fp]
        np.testing.assert_array_equal(at_depth[valid], real_mip[valid])
        n_valid += int(valid.sum())
    assert n_valid > 0


def test_mip_window_small_example_and_ignore_label() -> None:
    lab = np.array([[1, 0, 1, IGNORE]], np.uint8)
    dep = np.array([[2, 5, 3, 2]], np.int16)
    label, rel, valid = mip_window(lab, dep, 0, (2, 0, 1), (3, 1, 4))
    assert label.tolist() == [[0, 1, 0, 0]]   # 255 -> 0, padding -> 0
    assert rel.tolist() == [[3 - 3, 1, 0, 0]]
    assert valid.tolist() == [[0.0, 1.0, 0.0, 0.0]]  # depth 5 - 2 = 3 is outside 0..2


def test_missing_mip_json_is_an_input_error(tmp_path: Path) -> None:
    p = build(tmp_path)
    (p["mip"] / "mip.json").unlink()
    with pytest.raises(InputError, match="mip.json"):
        MipInputs(p["mip"])
    ds = PatchDataset(CaseStore(p["cases"]), ["v_1"], PATCH, inputs=MipInputs(p["mip"], axis=0))
    assert ds[0]["mip_valid"].shape == PATCH[1:]
    (p["mip"] / "mip.json").write_text(json.dumps({"axis": 3}))
    with pytest.raises(InputError, match="axis"):
        read_mip_axis(p["mip"])
    with pytest.raises(ValueError, match="mip_axis"):
        MipInputs(p["mip"], axis=3)


def test_mip_shape_mismatch_is_an_input_error(tmp_path: Path) -> None:
    p = build(tmp_path)
    np.save(p["mip"] / "v_1" / "depth.npy", np.zeros((3, 3), np.int16))
    ds = PatchDataset(CaseStore(p["cases"]), ["v_1"], PATCH, inputs=MipInputs(p["mip"]))
    with pytest.raises(InputError, match="mip_depth shape"):
        ds[0]


# ------------------------------------------------------------------ collate + losses


def test_collate_and_losses_on_a_batch(store: CaseStore, paths: dict[str, Path]) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=4, fg_ratio=1.0,
                      labels=PseudoLabels(paths["pseudo"]), dist_source="labels",
                      inputs=MipInputs(paths["mip"]))
    batch = patch_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 1, *PATCH) and batch["target"].shape == (4, 2, *PATCH)
    assert batch["mask"].shape == (4, *PATCH) and batch["dist"].shape == (4, 2, *PATCH)
    assert batch["mip_label"].shape == (4, *PATCH[1:]) and batch["start"].shape == (4, 3)
    assert batch["mip_axis"].tolist() == [0] * 4 and len(batch["case"]) == 4
    crit = CombinedLoss.from_spec("ce:1,dice:1,mip:1,boundary:0.01", n_classes=2)
    assert {"mip_label", "mip_depth", "mip_valid", "dist"} <= crit.requires
    logits = torch.randn(4, 2, *PATCH, generator=torch.Generator().manual_seed(0))
    logits.requires_grad_(True)
    total, values = crit(logits, batch)
    total.backward()
    assert sorted(values) == ["boundary", "ce", "dice", "mip"] and torch.isfinite(total)
    mip = MIPLoss([1])(None, logits.detach().softmax(1), batch)
    assert values["mip"] == pytest.approx(float(mip))
    # the 3D terms ignore the pseudo-labels' 255 voxels: no gradient there
    logits.grad = None
    CombinedLoss.from_spec("ce:1,dice:1,boundary:0.01", n_classes=2)(logits, batch)[0].backward()
    ignored = batch["mask"] == 0
    assert int(ignored.sum()) > 0
    assert float(logits.grad.abs().sum(1)[ignored].max()) == 0.0
    assert float(logits.grad.abs().sum(1)[~ignored].min()) > 0.0


def test_true_labels_give_zero_mip_loss(store: CaseStore, paths: dict[str, Path]) -> None:
    """Vessels are the brightest voxels: the true 3D label, read at each ray's argmax
    depth, reproduces the 2D label, so a perfect prediction has MIP loss 0."""
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=8, fg_ratio=1.0,
                      inputs=MipInputs(paths["mip"]))
    batch = patch_collate([ds[i] for i in range(8)])
    assert float(batch["mip_valid"].sum()) > 0
    loss = MIPLoss([1])(None, batch["target"], batch)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    wrong = batch["target"].flip(1)  # background and vessel swapped
    assert float(MIPLoss([1])(None, wrong, batch)) > 0.5
