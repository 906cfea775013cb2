"""Tests for segline.data.patches: 3D patch sampling on a tiny synthetic store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.data.patches import (
    IGNORE,
    PatchDataset,
    fg_flags,
    mip_window,
    patch_collate,
    read_mip_axis,
)
from segline.errors import InputError
from segline.losses import CombinedLoss, MIPLoss

PATCH = (8, 16, 16)
SHAPES = {"v_1": (20, 24, 28), "v_2": (6, 10, 30), "v_3": (16, 20, 20)}


def tube_label(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A thin tube along x plus a short one along z: sparse 'vessels' (class 1)."""
    z, y, x = shape
    lab = np.zeros(shape, np.uint8)
    rng = np.random.default_rng(seed)
    zc, yc = int(rng.integers(1, z - 1)), int(rng.integers(1, y - 1))
    lab[zc, yc, 2 : x - 2] = 1
    lab[zc - 1 : zc + 1, yc, x // 3] = 1
    lab[1 : z - 1, 1, x - 2] = 1
    return lab


def build(root: Path, axis: int = 0) -> dict[str, Path]:
    """Case store, dist store, pseudo and MIP folders with 3 cases (one smaller than
    the patch along z and y). Images are bright on vessels, so the MIP sees them."""
    cases, dist, pseudo, mip = (root / n for n in ("cases", "dist", "pseudo", "mip"))
    for i, (case, shape) in enumerate(SHAPES.items()):
        lab = tube_label(shape, i)
        rng = np.random.default_rng(100 + i)
        img = (lab * 10.0 + rng.random(shape)).astype(np.float32)[None]
        write_case(cases, case, img, lab, {"shape": list(shape), "spacing": [1.0, 1.0, 1.0]})
        (dist / case).mkdir(parents=True)
        d = rng.normal(size=(2, *shape)).astype(np.float32)
        atomic.save_npy(dist / case / "dist3d.npy", d)
        ps = lab.copy()
        ps[rng.random(shape) < 0.3] = IGNORE
        (pseudo / case).mkdir(parents=True)
        atomic.save_npy(pseudo / case / "pseudo.npy", ps)
        atomic.save_npy(pseudo / case / "pseudo_dist3d.npy", (d * 2).astype(np.float32))
        (mip / case).mkdir(parents=True)
        atomic.save_npy(mip / case / "mip.npy", img[0].max(axis))
        atomic.save_npy(mip / case / "depth.npy", img[0].argmax(axis).astype(np.int16))
        atomic.save_npy(mip / case / "mip_label.npy", lab.max(axis))
    atomic.write_json(mip / "mip.json", {"axis": axis})
    atomic.write_json(cases / "dataset.json",
                      {"name": "toyvessels", "labels": {"0": "background", "1": "vessel"},
                       "channels": ["CT"]})
    atomic.write_json(cases / "split.json", {"train": list(SHAPES), "val": [], "test": []})
    return {"cases": cases, "dist": dist, "pseudo": pseudo, "mip": mip}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("vessels"))


@pytest.fixture(scope="module")
def store(paths: dict[str, Path]) -> CaseStore:
    return CaseStore(paths["cases"], paths["dist"])


def window(start: tuple[int, ...], size: tuple[int, ...] = PATCH) -> tuple[slice, ...]:
    return tuple(slice(s, s + p) for s, p in zip(start, size, strict=True))


# ----------------------------------------------------------------------------- basics


def test_item_shapes_dtypes_and_content(store: CaseStore) -> None:
    ds = PatchDataset(store, ["v_1"], PATCH, samples_per_epoch=12, dist_source="dist3d")
    assert len(ds) == 12
    for i in range(len(ds)):
        it = ds[i]
        assert it["case"] == "v_1"
        assert it["image"].shape == (1, *PATCH) and it["image"].dtype == torch.float32
        assert it["target"].shape == (2, *PATCH) and it["target"].dtype == torch.float32
        assert it["mask"].shape == PATCH and float(it["mask"].min()) == 1.0
        assert it["dist"].shape == (2, *PATCH)
        room = np.array(SHAPES["v_1"]) - np.array(PATCH)
        assert (np.array(it["start"]) >= 0).all() and (np.array(it["start"]) <= room).all()
        win = window(it["start"])
        np.testing.assert_array_equal(it["image"].numpy(), store.image("v_1")[(slice(None), *win)])
        np.testing.assert_array_equal(it["target"].argmax(0).numpy(), store.label("v_1")[win])
        np.testing.assert_array_equal(it["target"].sum(0).numpy(), 1.0)
        dist = store.dist("v_1", "3d")[(slice(None), *win)]
        np.testing.assert_array_equal(it["dist"].numpy(), dist)


def test_small_volume_is_padded_and_padding_ignored(store: CaseStore) -> None:
    ds = PatchDataset(store, ["v_2"], PATCH, samples_per_epoch=6, dist_source="dist3d",
                      pad_value=-3.0)
    for i in range(len(ds)):
        it = ds[i]
        z, y, _ = SHAPES["v_2"]  # z 6 < 8, y 10 < 16: start 0, padded at the high end
        assert it["start"][:2] == (0, 0)
        x0 = it["start"][2]
        real = store.image("v_2")[:, :, :, x0 : x0 + PATCH[2]]
        np.testing.assert_array_equal(it["image"][:, :z, :y].numpy(), real)
        assert float(it["image"][:, z:].max()) == -3.0
        assert float(it["image"][:, :, y:].min()) == -3.0
        assert float(it["mask"][:z, :y].min()) == 1.0
        assert float(it["mask"][z:].max()) == 0.0 and float(it["mask"][:, y:].max()) == 0.0
        assert float(it["target"][0, z:].min()) == 1.0
        assert float(it["target"][1, :, y:].max()) == 0.0
        d = store.dist("v_2", "3d")[:, :, :, x0 : x0 + PATCH[2]]
        np.testing.assert_array_equal(it["dist"][:, z:, :y].numpy(),
                                      np.repeat(d[:, z - 1 : z], PATCH[0] - z, axis=1))
        np.testing.assert_array_equal(it["dist"][:, :z, y:].numpy(),
                                      np.repeat(d[:, :, y - 1 : y], PATCH[1] - y, axis=2))


# ------------------------------------------------------------------- oversampling


def test_fg_flags_exact_counts() -> None:
    assert fg_flags(6, 0.5).tolist() == [False, True] * 3
    for r in (0.0, 0.1, 0.33, 0.5, 0.9, 1.0):
        for n in (1, 7, 100, 301):
            assert int(fg_flags(n, r).sum()) == int(np.floor(n * r + 1e-9))


def test_fg_ratio_one_every_patch_centred_on_foreground(store: CaseStore) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=40, fg_ratio=1.0, seed=3)
    for i in range(len(ds)):
        case, start, centred = ds.sample(i)
        assert centred
        assert float(ds[i]["target"][1].sum()) > 0, (i, case, start)


def test_fg_ratio_rate_and_random_patches_often_miss_vessels(store: CaseStore) -> None:
    n = 60
    ds = PatchDataset(store, ["v_1"], PATCH, samples_per_epoch=n, fg_ratio=0.33, seed=1)
    flags = [ds.sample(i)[2] for i in range(n)]
    assert sum(flags) == int(n * 0.33)  # 19 foreground-centred patches of 60
    none = PatchDataset(store, ["v_1"], PATCH, samples_per_epoch=n, fg_ratio=0.0, seed=1)
    with_fg = [float(none[i]["target"][1].sum()) > 0 for i in range(n)]
    assert not any(none.sample(i)[2] for i in range(n))
    assert 0 < sum(with_fg) < n  # uniform patches: some hit the sparse tubes, some do not


def test_fg_patch_is_centred_on_a_foreground_voxel_shifted_inside(store: CaseStore) -> None:
    ds = PatchDataset(store, ["v_1"], PATCH, samples_per_epoch=30, fg_ratio=1.0, seed=5)
    shape = SHAPES["v_1"]
    fg = np.argwhere(store.label("v_1") == 1)
    for i in range(len(ds)):
        _, start, _ = ds.sample(i)
        expected = np.clip(fg - np.array(PATCH) // 2, 0, np.array(shape) - np.array(PATCH))
        assert (expected == np.array(start)).all(1).any(), start


# -------------------------------------------------------------------- determinism


def test_same_seed_and_epoch_same_patches_in_any_order(store: CaseStore) -> None:
    a = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=10, seed=7)
    b = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=10, seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    forward = [a[i] for i in range(10)]
    backward = [b[i] for i in reversed(range(10))][::-1]
    for x, y in zip(forward, backward, strict=True):
        assert (x["case"], x["start"]) == (y["case"], y["start"])
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["target"], y["target"])
    starts = [(it["case"], it["start"]) for it in forward]
    b.set_epoch(3)
    assert [b.sample(i)[:2] for i in range(10)] != starts
    c = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=10, seed=8)
    c.set_epoch(2)
    assert [c.sample(i)[:2] for i in range(10)] != starts


def test_dataloader_workers_do_not_change_batches(store: CaseStore) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=8, seed=4)
    ds.set_epoch(1)

    def batches(workers: int) -> list[dict]:
        gen = torch.Generator().manual_seed(0)
        loader = DataLoader(ds, batch_size=2, shuffle=True, generator=gen, num_workers=workers,
                            collate_fn=patch_collate)
        return list(loader)

    for x, y in zip(batches(0), batches(2), strict=True):
        assert x["case"] == y["case"] and torch.equal(x["start"], y["start"])
        assert torch.equal(x["image"], y["image"])


def test_set_epoch_and_arguments_are_checked(store: CaseStore, paths: dict[str, Path]) -> None:
    ds = PatchDataset(store, ["v_1"], PATCH)
    assert len(ds) == 8
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)
    with pytest.raises(IndexError):
        ds.sample(8)
    with pytest.raises(ValueError, match="label_source"):
        PatchDataset(store, ["v_1"], PATCH, label_source="labels")
    with pytest.raises(ValueError, match="pseudo_root"):
        PatchDataset(store, ["v_1"], PATCH, label_source="pseudo")
    with pytest.raises(ValueError, match="fg_ratio"):
        PatchDataset(store, ["v_1"], PATCH, fg_ratio=1.5)
    with pytest.raises(ValueError, match="dist_root"):
        PatchDataset(CaseStore(paths["cases"]), ["v_1"], PATCH, dist_source="dist3d")


# --------------------------------------------------------------------- pseudo labels


def test_pseudo_ignore_becomes_mask_zero_and_background(store: CaseStore,
                                                       paths: dict[str, Path]) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=12, label_source="pseudo",
                      pseudo_root=paths["pseudo"], dist_source="pseudo", fg_ratio=0.5)
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
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=20, label_source="pseudo",
                      pseudo_root=paths["pseudo"], fg_ratio=1.0)
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
                      mip_root=p["mip"])
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
        PatchDataset(CaseStore(p["cases"]), ["v_1"], PATCH, mip_root=p["mip"])
    ds = PatchDataset(CaseStore(p["cases"]), ["v_1"], PATCH, mip_root=p["mip"], mip_axis=0)
    assert ds[0]["mip_valid"].shape == PATCH[1:]
    (p["mip"] / "mip.json").write_text(json.dumps({"axis": 3}))
    with pytest.raises(InputError, match="axis"):
        read_mip_axis(p["mip"])


# ------------------------------------------------------------------ collate + losses


def test_collate_and_losses_on_a_batch(store: CaseStore, paths: dict[str, Path]) -> None:
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=4, fg_ratio=1.0,
                      label_source="pseudo", pseudo_root=paths["pseudo"], dist_source="pseudo",
                      mip_root=paths["mip"])
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
                      mip_root=paths["mip"])
    batch = patch_collate([ds[i] for i in range(8)])
    assert float(batch["mip_valid"].sum()) > 0
    loss = MIPLoss([1])(None, batch["target"], batch)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    wrong = batch["target"].flip(1)  # background and vessel swapped
    assert float(MIPLoss([1])(None, wrong, batch)) > 0.5
