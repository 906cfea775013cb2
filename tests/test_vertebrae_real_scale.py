"""The iterative method's training patches at real scale (segline.experiments.
vertebrae.sampler): a synthetic CT spine at 1 mm, vertebrae 26-38 mm tall with discs
between, sampled with vertebrae.make's real-data patch; and the published
completeness rule (>= 98 % of the vertebra's voxels inside the patch)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.experiments.vertebrae.sampler import COMPLETE_FRAC, IterativeSampler, window
from segline.preprocess.geometry import from_source

ROOT = Path(__file__).resolve().parents[1]
HEIGHTS = (26, 30, 34, 38, 32)  # vertebral bodies, mm (= voxels)
DISC = 8  # mm between bodies
SHAPE = (112, 104, 220)  # (X, Y, Z) voxels of 1 mm


def real_patch() -> tuple[int, int, int]:
    """The iterative methods' patch for real data (vertebrae.make, non-toy branch)."""
    text = (ROOT / "vertebrae.make").read_text()
    toy, real = re.findall(r"^iterative_patch := (\S+)$", text, re.M)
    assert toy == "16,40,40"
    return tuple(int(v) for v in real.split(","))  # type: ignore[return-value]


def spine() -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) CT in HU windowed to [0, 1] (level 400, width 1800) and the vertebra
    labels 1..5 from the bottom: an elliptic body (cortical rim 1000 HU around
    cancellous bone 250 HU) with an arch and a spinous process behind it, discs (80 HU)
    between the bodies, soft tissue (40 HU) around, noise of 20 HU."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    body = ((x - 56) / 22.0) ** 2 + ((y - 40) / 17.0) ** 2
    inner = ((x - 56) / 19.0) ** 2 + ((y - 40) / 14.0) ** 2
    arch = (np.hypot(x - 56, y - 66) <= 12) & (np.hypot(x - 56, y - 66) >= 7)
    process = (abs(x - 56) <= 3) & (y >= 76) & (y <= 92)
    hu = np.full(SHAPE, 40.0)
    lab = np.zeros(SHAPE, np.uint8)
    z = 12
    for k, h in enumerate(HEIGHTS, start=1):
        section = (body <= 1) | arch | process
        lab[..., z : z + h][section] = k
        hu[..., z : z + h][section] = 1000.0
        hu[..., z + 2 : z + h - 2][inner <= 1] = 250.0
        if k < len(HEIGHTS):
            hu[..., z + h : z + h + DISC][body <= 1] = 80.0
        z += h + DISC
    hu += rng.normal(0.0, 20.0, SHAPE)
    image = np.clip((hu + 500.0) / 1800.0, 0.0, 1.0).astype(np.float32)
    return image, lab


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CaseStore:
    cases = tmp_path_factory.mktemp("real") / "cases"
    img, lab = spine()
    with atomic.atomic_dir(cases) as tmp:
        image, label, meta = from_source(
            [img], lab, np.eye(4), (1.0, 1.0, 1.0), case_id="real_0", channels=["CT"]
        )
        write_case(tmp, "real_0", image, label, meta)
        names = ["background", "L1", "L2", "L3", "L4", "L5"]
        atomic.write_json(tmp / "dataset.json", {
            "name": "spine", "labels": {str(i): n for i, n in enumerate(names)},
            "classes": names, "channels": ["CT"],
        })  # fmt: skip
        atomic.write_json(
            tmp / "split.json", {"test": [], "val": [], "train": ["real_0"], "infer": []}
        )
    return CaseStore(cases)


def test_a_whole_vertebra_fits_the_real_patch_and_labels_are_mixed(store: CaseStore) -> None:
    patch = real_patch()
    assert patch == (128, 128, 128)  # the published code's patch at 1 mm
    label = np.asarray(store.label("real_0"))
    assert label.shape == SHAPE[::-1]  # (Z, Y, X)
    counts = np.bincount(label.ravel())
    for k, h in enumerate(HEIGHTS, start=1):
        zs, ys, xs = np.nonzero(label == k)
        extent = (np.ptp(zs) + 1, np.ptp(ys) + 1, np.ptp(xs) + 1)
        assert extent[0] == h and all(e <= p for e, p in zip(extent, patch, strict=True))
    ds = IterativeSampler(store, ["real_0"], patch, samples_per_epoch=24, seed=1)
    complete, cut = 0, 0
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (2, *patch)
        k = int(it["target_id"])
        if k == 0:
            assert float(it["complete"]) == 0.0
            continue
        start = [int(s) for s in it["start"]]
        inside = int((window(label, start, patch, 0) == k).sum())
        assert inside == int(it["target"].sum())
        assert float(it["complete"]) == float(inside >= COMPLETE_FRAC * counts[k])
        complete += int(float(it["complete"]))
        cut += int(inside < COMPLETE_FRAC * counts[k])
    assert complete > 0 and cut > 0  # whole vertebrae and vertebrae cut by the patch


def test_the_98_percent_rule() -> None:
    # a 10-slice vertebra of 10 x 10 voxels plus a 1-voxel tip below it (1001 voxels):
    # a 10-slice patch holds at most the body (1000 / 1001 >= 0.98: complete) or the tip
    # and 9 slices (901 / 1001 < 0.98: incomplete); with --complete-frac 1 never complete
    lab = np.zeros((1, 24, 12, 12), np.uint8)
    lab[0, 5:15, 1:11, 1:11] = 1
    lab[0, 4, 5, 5] = 1

    class Store:
        """Just what the sampler reads of a case store."""

        def image(self, case: str) -> np.ndarray:
            return lab.astype(np.float32)

        def label(self, case: str) -> np.ndarray:
            return lab[0]

        def meta(self, case: str) -> dict:
            return {"spacing": [1.0, 1.0, 1.0]}

    seen = {}
    for frac in (COMPLETE_FRAC, 1.0):
        ds = IterativeSampler(
            Store(), ["c"], (10, 12, 12), samples_per_epoch=40, seed=0, complete_frac=frac  # type: ignore[arg-type]
        )
        items = [ds[i] for i in range(len(ds))]
        seen[frac] = {
            (int(it["start"][0]), float(it["complete"])) for it in items if int(it["target_id"])
        }
    assert (5, 1.0) in seen[COMPLETE_FRAC]  # the body without its tip
    assert all(c == 0.0 for _, c in seen[1.0])
    assert {z for z, c in seen[COMPLETE_FRAC] if c} == {5}
