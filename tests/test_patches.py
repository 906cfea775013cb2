"""Tests for segline.data.patches: 3D patch sampling on a tiny synthetic store, and its
two hooks (training labels from elsewhere, extra batch inputs) with stand-ins defined
here (the vessels experiment's are tested in tests/test_vessels_inputs.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.data.patches import (
    IGNORE,
    BatchInputs,
    PatchDataset,
    TrainingLabels,
    fg_flags,
    patch_collate,
)

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
    with pytest.raises(ValueError, match="dist_source"):
        PatchDataset(store, ["v_1"], PATCH, dist_source="pseudo")
    with pytest.raises(ValueError, match="needs labels"):
        PatchDataset(store, ["v_1"], PATCH, dist_source="labels")
    with pytest.raises(ValueError, match="fg_ratio"):
        PatchDataset(store, ["v_1"], PATCH, fg_ratio=1.5)
    with pytest.raises(ValueError, match="dist_root"):
        PatchDataset(CaseStore(paths["cases"]), ["v_1"], PATCH, dist_source="dist3d")


# ------------------------------------------------------------------------- hooks


class Halved:
    """Training labels from elsewhere: the store's label with every other x column
    unlabelled, and the store's distance maps doubled."""

    name = "halved"

    def __init__(self, store: CaseStore) -> None:
        self.store = store

    def label(self, case: str) -> np.ndarray:
        lab = np.array(self.store.label(case))
        lab[..., ::2] = IGNORE
        return lab

    def dist(self, case: str) -> np.ndarray:
        return 2 * np.asarray(self.store.dist(case, "3d"))


class Origin:
    """Extra batch inputs: the patch origin's sum (an int) and the window's voxel
    count inside the volume (a 0-d array), by name."""

    keys = frozenset({"origin_sum", "inside"})

    def window(self, case, start, size, volume) -> dict:
        inside = np.prod([min(s + p, v) - s for s, p, v in zip(start, size, volume, strict=True)])
        return {"origin_sum": int(sum(start)), "inside": np.array(inside, np.int64)}


def test_training_labels_hook_masks_ignored_voxels(store: CaseStore) -> None:
    labels = Halved(store)
    assert isinstance(labels, TrainingLabels)
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=9, labels=labels,
                      dist_source="labels", fg_ratio=0.5)  # fmt: skip
    for i in range(len(ds)):
        it = ds[i]
        win = window(it["start"])
        lab = labels.label(it["case"])[win]
        real = tuple(slice(0, n) for n in lab.shape)
        mask = it["mask"].numpy()
        np.testing.assert_array_equal(mask[real], (lab != IGNORE).astype(np.float32))
        assert mask.sum() == (lab != IGNORE).sum()  # padding (v_2) is ignored too
        tgt = it["target"][(slice(None), *real)].numpy()
        np.testing.assert_array_equal(tgt[1], (lab == 1).astype(np.float32))
        dist = labels.dist(it["case"])[(slice(None), *win)]
        np.testing.assert_array_equal(it["dist"][(slice(None), *real)].numpy(), dist)


def test_batch_inputs_hook_by_name_and_collated(store: CaseStore) -> None:
    inputs = Origin()
    assert isinstance(inputs, BatchInputs)
    ds = PatchDataset(store, list(SHAPES), PATCH, samples_per_epoch=4, inputs=inputs)
    items = [ds[i] for i in range(4)]
    for it in items:
        assert it["origin_sum"] == sum(it["start"])
        shape = SHAPES[it["case"]]
        want = np.prod([min(s + p, n) - s for s, p, n in zip(it["start"], PATCH, shape,
                                                                strict=True)])  # fmt: skip
        assert int(it["inside"]) == want
    batch = patch_collate(items)
    assert batch["origin_sum"].dtype == torch.int64 and batch["origin_sum"].shape == (4,)
    assert batch["inside"].shape == (4,)
    with pytest.raises(ValueError, match="origin_sum"):
        PatchDataset(store, ["v_1"], PATCH, inputs=inputs, aug="light")
