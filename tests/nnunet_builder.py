"""A tiny nnU-Net v2 raw dataset for the tests (nibabel NIfTI written in tmp_path).

``Dataset042_Tiny/``: 8 labelled cases and 2 unlabelled ones, 24x24x6 voxels (X, Y, Z)
of 0.8x0.8x5 mm with x and y flipped and an offset (msd_builder.source_affine), two
channels (``_0000`` CT in HU, ``_0001`` T2) and three classes: a box of class 1
("organ") holding a smaller box of class 2 ("lesion"). CT: 200 HU in the organ,
300 HU in the lesion over a ramp background; T2: 500 in the organ, 900 in the lesion,
100 elsewhere, so each channel is told apart after normalisation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msd_builder import save
from segline.cli import run

SHAPE = (24, 24, 6)
NAME = "Dataset042_Tiny"
TRAIN_IDS = [f"tiny_{i:03d}" for i in range(1, 9)]
TEST_IDS = ["tiny_101", "tiny_102"]
CHANNELS = {"0": "CT", "1": "T2"}
LABELS = {"background": 0, "organ": 1, "lesion": 2}


def label_volume(index: int) -> np.ndarray:
    """Class 1 box with a class 2 box inside; position depends on ``index`` (X, Y, Z)."""
    lab = np.zeros(SHAPE, dtype=np.uint8)
    o = index % 5
    lab[4 + o : 14 + o, 5:15, 1:5] = 1
    lab[6 + o : 9 + o, 7:10, 2:4] = 2
    return lab


def channel_volumes(index: int) -> list[np.ndarray]:
    """(CT in HU, T2) volumes of case ``index``, (X, Y, Z) float32."""
    lab = label_volume(index)
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    ct = (-300.0 + 10.0 * x + 5.0 * y + 3.0 * z).astype(np.float32)
    ct[lab == 1], ct[lab == 2] = 200.0, 300.0
    t2 = np.full(SHAPE, 100.0, dtype=np.float32) + z.astype(np.float32)
    t2[lab == 1], t2[lab == 2] = 500.0, 900.0
    return [ct, t2]


def make_dataset(
    root: Path,
    train_ids: list[str] | None = None,
    test_ids: list[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/Dataset042_Tiny`` and return it; ``meta`` updates dataset.json."""
    train_ids = TRAIN_IDS if train_ids is None else train_ids
    test_ids = TEST_IDS if test_ids is None else test_ids
    folder = root / NAME
    for sub, ids, labelled in (("imagesTr", train_ids, True), ("imagesTs", test_ids, False)):
        for i, cid in enumerate(ids):
            for c, vol in enumerate(channel_volumes(i)):
                save(folder / sub / f"{cid}_{c:04d}.nii.gz", vol)
            if labelled:
                save(folder / "labelsTr" / f"{cid}.nii.gz", label_volume(i))
    info: dict[str, Any] = {
        "channel_names": CHANNELS,
        "labels": LABELS,
        "numTraining": len(train_ids),
        "file_ending": ".nii.gz",
        "name": "Tiny",
    }
    info.update(meta or {})
    (folder / "dataset.json").write_text(json.dumps(info, indent=1))
    return folder


def one_line_error(capsys: pytest.CaptureFixture[str], main, argv: list[str]) -> str:
    """Run a CLI that must refuse its input: exit 2 and one ``segline:`` line on stderr."""
    assert run(main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("segline: "), err
    return err
