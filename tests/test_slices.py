"""2D / 2.5D slice datasets, padding collate and boundary weight maps."""

from __future__ import annotations

import numpy as np
import torch

from segline.casestore import CaseStore
from segline.data.slices import SliceDataset, boundary_weight, one_hot, pad_collate


def test_one_hot() -> None:
    lab = np.array([[0, 1], [2, 1]], np.uint8)
    oh = one_hot(lab, 3)
    assert oh.shape == (3, 2, 2) and oh.dtype == np.float32
    assert oh[:, 1, 0].tolist() == [0, 0, 1] and (oh.sum(0) == 1).all()


def test_slices_in_case_order_with_context(store) -> None:
    cases, dist = store
    cs = CaseStore(cases, dist)
    ds = SliceDataset(cs, ["toy_4", "toy_5"], dist_kind="2d", context=1)
    depth = cs.meta("toy_4")["shape"][0]
    assert len(ds) == 2 * depth
    assert ds.index[0] == ("toy_4", 0) and ds.index[depth] == ("toy_5", 0)
    image = cs.image("toy_4")
    first = ds[0]
    assert first["image"].shape == (3, *image.shape[2:])  # 1 channel x (2*1+1) slices
    # slice -1 does not exist: the edge slice repeats
    assert torch.equal(first["image"][0], torch.from_numpy(np.array(image[0, 0])))
    assert torch.equal(first["image"][1], first["image"][0])
    assert torch.equal(first["image"][2], torch.from_numpy(np.array(image[0, 1])))
    assert torch.equal(
        first["target"].argmax(0), torch.from_numpy(np.array(cs.label("toy_4")[0])).long()
    )
    assert torch.equal(first["dist"], torch.from_numpy(np.array(cs.dist("toy_4", "2d")[:, 0])))


def test_debug_limit_keeps_every_case(store) -> None:
    cases, dist = store
    ds = SliceDataset(CaseStore(cases, dist), ["toy_4", "toy_5", "toy_6"], dist_kind=None, limit=5)
    assert len(ds) == 5 and {c for c, _ in ds.index} == {"toy_4", "toy_5", "toy_6"}


def test_pad_collate_mixed_sizes() -> None:
    a = {
        "image": torch.ones(1, 2, 3),
        "target": one_hot_t([[1, 1, 1], [0, 0, 0]]),
        "dist": torch.full((2, 2, 3), 2.0),
        "weight": torch.full((2, 3), 3.0),
        "case": "a",
        "z": 0,
    }
    b = {
        "image": torch.ones(1, 4, 2),
        "target": one_hot_t([[1, 0], [0, 0], [0, 0], [0, 1]]),
        "dist": torch.full((2, 4, 2), 5.0),
        "weight": torch.full((4, 2), 2.0),
        "case": "b",
        "z": 3,
    }
    batch = pad_collate([a, b])
    assert batch["image"].shape == (2, 1, 4, 3)
    assert batch["image"][0, 0, 2:].sum() == 0 and batch["image"][1, 0, :, 2].sum() == 0
    assert (batch["target"].sum(1) == 1).all(), "padded pixels are background, one-hot kept"
    assert batch["target"][0, 0, 3, 2] == 1
    assert (batch["dist"][0] == 2.0).all(), "distance maps padded by their edge values"
    assert (batch["weight"][0, 2:] == 1.0).all() and (batch["weight"][0, :2] == 3.0).all()
    assert batch["valid"].sum() == 6 + 8 and batch["case"] == ["a", "b"] and batch["z"] == [0, 3]


def one_hot_t(rows: list[list[int]]) -> torch.Tensor:
    return torch.from_numpy(one_hot(np.array(rows, np.uint8), 2))


def test_boundary_weight_values() -> None:
    d = np.zeros((2, 1, 3), np.float32)
    d[1, 0] = [-3.0, 0.0, 6.0]
    d[0] = -d[1]
    w = boundary_weight(d, w0=5.0, sigma_mm=3.0)
    expected = 1 + 5 * np.exp(-(np.array([3.0, 0.0, 6.0]) ** 2) / 18.0)
    assert np.allclose(w[0], expected, atol=1e-6)
