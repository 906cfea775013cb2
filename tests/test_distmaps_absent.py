"""ABSENT=diagonal|zero: an absent class's signed distance map, +D (segline's default)
or 0 everywhere (the boundary-loss reference code's), through every place that makes
or reads maps: the distance functions, the store and its ``distmaps.json``, the CLI,
augmentation's recomputed maps, weight maps, the boundary loss and the two-sided
Hausdorff-DT loss's map of the prediction."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segline import casestore
from segline.data.augment import augment, item_rng
from segline.data.slices import SliceDataset, boundary_weight
from segline.distmaps import (
    one_hot_signed_distance,
    signed_distance,
    slicewise_signed_distance,
    store_absent,
    volume_signed_distance,
    write_dist_store,
)
from segline.errors import InputError
from segline.losses import CombinedLoss
from segline.losses.boundary import Boundary
from segline.losses.hausdorff import HausdorffDT, prediction_distance, use_absent

CLI = Path(__file__).resolve().parents[1] / "preprocess" / "distmaps.py"
D_1x4 = math.sqrt(1.0**2 + 4.0**2)  # diagonal (mm) of a 1 x 4 slice at 1 mm


def two_slices() -> np.ndarray:
    """(Z=2, Y=1, X=4): class 1 at x = 1, 2 in slice 0, absent from slice 1."""
    label = np.zeros((2, 1, 4), np.uint8)
    label[0, 0, 1:3] = 1
    return label


@pytest.mark.parametrize("k", [2, 3])
def test_slice_without_the_class_reads_zero_or_the_diagonal(k: int) -> None:
    label = two_slices()
    diag = slicewise_signed_distance(label, k, (1.0, 1.0))
    zero = slicewise_signed_distance(label, k, (1.0, 1.0), absent="zero")
    assert diag.dtype == zero.dtype == np.float32
    # the slice with the class: the same real distances under both conventions
    np.testing.assert_array_equal(zero[:2, 0], diag[:2, 0])
    assert diag[1, 0, 0].tolist() == [1.0, -1.0, -1.0, 1.0]
    # the slice without it: D against 0; background fills it: -D under both
    np.testing.assert_allclose(diag[1, 1], D_1x4, rtol=1e-6)
    assert (zero[1, 1] == 0).all()
    np.testing.assert_allclose(diag[0, 1], -D_1x4, rtol=1e-6)
    np.testing.assert_array_equal(zero[0, 1], diag[0, 1])
    if k == 3:  # class 2 is absent everywhere
        np.testing.assert_allclose(diag[2], D_1x4, rtol=1e-6)
        assert (zero[2] == 0).all()


def test_zero_convention_in_every_function() -> None:
    empty = np.zeros((3, 4), bool)
    assert (signed_distance(empty, (1.0, 2.0), absent="zero") == 0).all()
    np.testing.assert_allclose(signed_distance(empty, (1.0, 2.0)), math.hypot(3, 8), rtol=1e-6)
    full = np.ones((3, 4), bool)  # a full mask is -D under both
    for absent in ("diagonal", "zero"):
        np.testing.assert_allclose(
            signed_distance(full, (1.0, 2.0), absent=absent), -math.hypot(3, 8), rtol=1e-6
        )
    # K = 2, foreground filling everything: background absent -> 0, foreground -D
    maps = one_hot_signed_distance(np.ones((2, 2), np.uint8), 2, (1.0, 1.0), absent="zero")
    assert (maps[0] == 0).all()
    np.testing.assert_allclose(maps[1], -math.hypot(2, 2), rtol=1e-6)
    vol = volume_signed_distance(np.zeros((2, 3, 3), np.uint8), 2, (2.0, 1.0, 1.0), absent="zero")
    assert (vol[1] == 0).all()
    np.testing.assert_allclose(vol[0], -math.sqrt(4**2 + 3**2 + 3**2), rtol=1e-6)
    with pytest.raises(ValueError, match="absent must be one of"):
        signed_distance(empty, (1.0, 1.0), absent="none")  # type: ignore[arg-type]


def test_boundary_loss_on_a_hand_made_case_under_each_convention() -> None:
    label = two_slices()
    p1 = torch.tensor([[0.2, 0.9, 0.8, 0.1], [0.3, 0.1, 0.0, 0.2]]).reshape(2, 1, 1, 4)
    probs = torch.cat([1 - p1, p1], dim=1)  # (B=2, K=2, 1, 4)
    target = torch.from_numpy(np.stack([label == 0, label == 1], axis=1).astype(np.float32))
    values = {}
    for absent in ("diagonal", "zero"):
        maps = slicewise_signed_distance(label, 2, (1.0, 1.0), absent=absent)
        batch = {"target": target, "dist": torch.from_numpy(maps).movedim(0, 1)}
        values[absent] = float(Boundary([1])(None, probs, batch))
    # slice 0: 0.2*1 - 0.9 - 0.8 + 0.1*1 = -1.4; slice 1: 0.6 * D or 0; over 8 pixels
    assert values["diagonal"] == pytest.approx((-1.4 + 0.6 * D_1x4) / 8, abs=1e-6)
    assert values["zero"] == pytest.approx(-1.4 / 8, abs=1e-6)
    assert values["zero"] == pytest.approx(-0.175, abs=1e-6)


def test_hausdorff_prediction_map_follows_the_convention() -> None:
    p1 = torch.tensor([0.3, 0.1, 0.0, 0.2]).reshape(1, 1, 1, 4)  # predicts nothing
    spacing = np.array([[1.0, 1.0]])
    assert prediction_distance(p1, spacing, absent="zero").flatten().tolist() == [0.0] * 4
    np.testing.assert_allclose(prediction_distance(p1, spacing).flatten(), D_1x4, rtol=1e-6)
    label = two_slices()[1:]  # the slice without the class
    probs = torch.cat([1 - p1, p1], dim=1)
    target = torch.zeros(1, 2, 1, 4)
    target[:, 0] = 1
    values = {}
    for absent in ("diagonal", "zero"):
        maps = slicewise_signed_distance(label, 2, (1.0, 1.0), absent=absent)
        batch = {
            "target": target,
            "dist": torch.from_numpy(maps).movedim(0, 1),
            "spacing": torch.tensor([[1.0, 1.0]]),
        }
        crit = CombinedLoss.from_spec("hausdorff:1[alpha=1]", n_classes=2)
        assert use_absent(crit, absent) == 1
        loss = crit.losses[0]
        assert isinstance(loss, HausdorffDT) and loss.absent == absent
        values[absent] = float(loss(None, probs, batch))
    # (p - t)^2 = 0.09, 0.01, 0, 0.04 (sum 0.14), weights d_t + d_p = 2D or 0, over 4
    assert values["diagonal"] == pytest.approx(0.14 * 2 * D_1x4 / 4, abs=1e-6)
    assert values["zero"] == 0.0
    with pytest.raises(ValueError, match="absent must be one of"):
        use_absent(crit, "none")


def test_weight_maps_skip_absent_classes() -> None:
    label = np.zeros((1, 3, 3), np.uint8)
    label[0, 1, 1] = 1
    present = slicewise_signed_distance(label, 3, (1.0, 1.0))[:, 0]  # class 2 absent
    zero = slicewise_signed_distance(label, 3, (1.0, 1.0), absent="zero")[:, 0]
    with_d = boundary_weight(present, 4.0, 1.0)
    with_zero = boundary_weight(zero, 4.0, 1.0)
    np.testing.assert_allclose(with_zero, with_d, rtol=1e-6)  # exp(-D^2/2) is tiny here
    assert with_zero[1, 1] == pytest.approx(1 + 4 * math.exp(-0.5))
    # no foreground at all: weight 1 (D maps give 1 + 4 exp(-D^2 / 2), about 1)
    empty = slicewise_signed_distance(np.zeros((1, 3, 3), np.uint8), 2, (1.0, 1.0), absent="zero")
    assert (boundary_weight(empty[:, 0], 4.0, 1.0) == 1.0).all()


def test_augmentation_recomputes_maps_with_the_stores_convention() -> None:
    image = np.zeros((1, 8, 8), np.float32)
    label = np.zeros((8, 8), np.uint8)  # class 1 absent
    for absent, want in (("diagonal", math.hypot(8, 8)), ("zero", 0.0)):
        dist = one_hot_signed_distance(label, 2, (1.0, 1.0), absent=absent)
        out = augment("strong", image, label, spacing=(1.0, 1.0), rng=item_rng(0, 0, 0),
                      dist=dist, recompute=True, n_classes=2, absent=absent)  # fmt: skip
        np.testing.assert_allclose(out["dist"][1], want, rtol=1e-6)
        np.testing.assert_allclose(out["dist"][0], -math.hypot(8, 8), rtol=1e-6)


def small_store(root: Path) -> Path:
    """One labelled case (Z=3, Y=6, X=6), 2 x 1 x 1 mm: class 1 in slice 0 only."""
    cases = root / "cases"
    cases.mkdir(parents=True)
    label = np.zeros((3, 6, 6), np.uint8)
    label[0, 2:4, 2:4] = 1
    image = np.zeros((1, 3, 6, 6), np.float32)
    meta = {"case_id": "c_1", "spacing": [2.0, 1.0, 1.0], "shape": [3, 6, 6]}
    casestore.write_case(cases, "c_1", image, label, meta)
    split = {"train": ["c_1"], "val": [], "test": [], "infer": []}
    (cases / "split.json").write_text(json.dumps(split))
    dataset = {"name": "toy", "labels": {"0": "background", "1": "organ"}, "channels": ["CT"]}
    (cases / "dataset.json").write_text(json.dumps(dataset))
    return cases


def test_store_records_the_convention(tmp_path: Path) -> None:
    cases = small_store(tmp_path)
    diag = write_dist_store(cases, tmp_path / "diag")
    zero = write_dist_store(cases, tmp_path / "zero", absent="zero")
    assert diag["absent"] == "diagonal" and "+D" in diag["convention"]["empty_class"]
    assert zero["absent"] == "zero" and zero["convention"]["empty_class"].startswith("0 ")
    on_disk = json.loads((tmp_path / "zero" / "distmaps.json").read_text())
    assert on_disk["absent"] == "zero"
    assert store_absent(tmp_path / "diag") == "diagonal"
    assert store_absent(tmp_path / "zero") == "zero"
    d2 = np.load(tmp_path / "diag" / "c_1" / "dist2d.npy")
    z2 = np.load(tmp_path / "zero" / "c_1" / "dist2d.npy")
    np.testing.assert_array_equal(z2[:, 0], d2[:, 0])
    np.testing.assert_allclose(d2[1, 1:], math.hypot(6, 6), rtol=1e-6)
    assert (z2[1, 1:] == 0).all()
    # the 3D maps: the class is in the volume, so both conventions agree
    np.testing.assert_array_equal(
        np.load(tmp_path / "zero" / "c_1" / "dist3d.npy"),
        np.load(tmp_path / "diag" / "c_1" / "dist3d.npy"),
    )
    # an augmented slice without the class gets the store's value again
    for name, want in (("diag", math.hypot(6, 6)), ("zero", 0.0)):
        store = casestore.CaseStore(cases, tmp_path / name)
        ds = SliceDataset(store, ["c_1"], dist_kind="2d", aug="strong")
        item = ds[1]
        np.testing.assert_allclose(item["dist"][1].numpy(), want, rtol=1e-6)


def test_store_absent_of_old_missing_and_bad_stores(tmp_path: Path) -> None:
    assert store_absent(None) == "diagonal"
    assert store_absent(tmp_path / "nothing") == "diagonal"
    old = tmp_path / "old"
    old.mkdir()
    (old / "distmaps.json").write_text(json.dumps({"kinds": ["2d"]}))  # before the knob
    assert store_absent(old) == "diagonal"
    (old / "distmaps.json").write_text(json.dumps({"absent": "never"}))
    with pytest.raises(InputError, match="absent must be one of diagonal, zero"):
        store_absent(old)


def test_cli_absent_option(tmp_path: Path) -> None:
    cases = small_store(tmp_path)
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, str(CLI), "--cases", str(cases), "--out", str(out), "--absent", "zero"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "absent class zero" in proc.stdout
    assert json.loads((out / "distmaps.json").read_text())["absent"] == "zero"
    bad = subprocess.run(
        [sys.executable, str(CLI), "--cases", str(cases), "--out", str(out), "--absent", "one"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "--absent" in bad.stderr
