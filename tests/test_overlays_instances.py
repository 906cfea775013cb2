"""The instance overlays (vertebrae): colours, display ids, counts and the PNG.

A toy spine: four vertebrae (T12, L1, L2, L3: ids 1-4) stacked along z, 3 slices of
4 (y) × 3 (x) voxels each, in a (12, 8, 6) volume. ``iterative`` predicts them
exactly under the ids 4, 3, 2, 1; ``semantic`` merges L2 and L3 into one instance and
adds a one-voxel false positive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segline.casestore import write_case
from segline.cli import run
from segline.plots import overlays

NAMES = {"0": "background", "1": "T12", "2": "L1", "3": "L2", "4": "L3"}


def spine() -> np.ndarray:
    label = np.zeros((12, 8, 6), np.uint8)
    for k in range(4):
        label[3 * k : 3 * k + 3, 2:6, 1:4] = k + 1
    return label


def semantic_pred(label: np.ndarray) -> np.ndarray:
    pred = np.where(label == 4, 3, label).astype(np.uint8)
    pred[0, 0, 0] = 9
    return pred


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "vertebrae-toy" / "cases"
    label = spine()
    for i, case in enumerate(("t1", "t2")):
        image = np.full((1, *label.shape), 0.2, np.float32) + 0.5 * (label > 0) + 0.01 * i
        write_case(root, case, image, label, {"case_id": case, "spacing": [2.0, 1.0, 1.0]})
    (root / "split.json").write_text(json.dumps({"train": [], "val": [], "test": ["t1", "t2"]}))
    (root / "dataset.json").write_text(json.dumps({"labels": NAMES, "channels": ["CT"]}))
    return root


@pytest.fixture
def methods(tmp_path: Path) -> list[str]:
    label = spine()
    preds = {"iterative": np.where(label > 0, 5 - label, 0), "semantic": semantic_pred(label)}
    dirs = []
    for name, pred in preds.items():
        folder = tmp_path / "results" / "vertebrae-toy" / name
        (folder / "test" / "preds_zyx").mkdir(parents=True)
        for case in ("t1", "t2"):
            np.save(folder / "test" / "preds_zyx" / f"{case}.npy", pred.astype(np.uint8))
        dirs.append(str(folder))
    return dirs


def test_neighbouring_instances_get_different_colours() -> None:
    colours = [overlays.instance_colour(k) for k in range(1, 26)]
    assert len(set(colours[:20])) == 20  # a full cycle of distinct colours
    assert all(a != b for a, b in zip(colours, colours[1:], strict=False))
    assert overlays.instance_colour(overlays.UNMATCHED) not in colours
    rgba = overlays.instance_rgba(np.array([[1, 2], [0, overlays.UNMATCHED]]))
    assert rgba[0, 0, :3].tolist() != rgba[0, 1, :3].tolist()
    assert rgba[1, 0, 3] == 0.0 and rgba[0, 0, 3] == pytest.approx(overlays.MASK_ALPHA)


def test_display_ids_and_counts() -> None:
    label = spine()
    permuted = np.where(label > 0, 5 - label, 0)
    np.testing.assert_array_equal(overlays.display_ids(permuted, label), label)
    assert overlays.instance_counts(permuted, label) == (4, 4, 0)
    merged = semantic_pred(label)
    shown = overlays.display_ids(merged, label)
    assert shown[0, 0, 0] == overlays.UNMATCHED  # the false positive
    assert set(np.unique(shown[label == 1]).tolist()) == {1}
    # L2 + L3 (36 + 36 voxels) as one: Dice 2/3 with either, matched to one of them
    assert set(np.unique(shown[label >= 3]).tolist()) in ({3}, {4})
    assert overlays.instance_counts(merged, label) == (3, 4, 1)
    assert overlays.pick_sagittal(label) == 1  # x = 1, 2, 3 tie: the lowest
    assert overlays.sagittal_aspect({"spacing": [2.0, 1.0, 0.5]}) == 2.0


def test_instance_overlay_png_flag_or_dataset_json(
    store: Path, methods: list[str], tmp_path: Path
) -> None:
    """``--instances`` and ``"instances": true`` draw the same, deterministic PNG."""
    flag, auto = tmp_path / "flag.png", tmp_path / "auto.png"
    argv = ["--cases", str(store), "--n", "2"]
    assert run(overlays.main, [*argv, "--instances", "--out", str(flag), *methods]) == 0
    (store / "dataset.json").write_text(
        json.dumps({"labels": NAMES, "channels": ["CT"], "instances": True})
    )
    assert run(overlays.main, [*argv, "--out", str(auto), *methods[::-1]]) == 0
    assert flag.read_bytes() == auto.read_bytes()
    with Image.open(flag) as im:
        assert im.size[0] > im.size[1] > 300  # 4 columns, 2 rows
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(rgb, axis=0).tolist()}
    assert len(colours) > 20  # grey image plus several instance colours
    plain = tmp_path / "plain.png"
    (store / "dataset.json").write_text(json.dumps({"labels": NAMES, "channels": ["CT"]}))
    assert run(overlays.main, [*argv, "--out", str(plain), *methods]) == 0
    assert plain.read_bytes() != flag.read_bytes()  # the axial view without the flag
