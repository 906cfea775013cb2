"""Tiny MSD-format task folders for the tests (written with nibabel in tmp_path).

Images hold known HU values so that windowing can be checked exactly:
``hu[x, y, z] = -300 + 20 * x + 7 * y + 3 * z`` (range -300 ... 15 for 16x16x6)
and 200 HU inside a small box that is also the label (class 1).
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

SHAPE = (16, 16, 6)
SPACING = (0.8, 0.8, 5.0)
# natural order: 1 2 3 10 11 12 20 21 (lexicographic would be 1 10 11 12 2 20 21 3)
TRAIN_IDS = [f"spleen_{i}" for i in (10, 2, 21, 1, 12, 3, 20, 11)]
TEST_IDS = ["spleen_7", "spleen_5"]


def source_affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    """An MSD-like affine: x and y flipped (as the spleen files), with an offset (mm)."""
    aff = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    aff[:3, 3] = [120.5, 80.25, -300.0]
    return aff


def hu_volume(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Known HU values (X, Y, Z), float32."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (-300.0 + 20.0 * x + 7.0 * y + 3.0 * z).astype(np.float32)


def label_volume(index: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A small box of class 1 whose position depends on ``index`` (X, Y, Z), uint8."""
    lab = np.zeros(shape, dtype=np.uint8)
    o = index % 4
    lab[3 + o: 8 + o, 4: 10, 1: 4] = 1
    return lab


def image_volume(index: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """HU image: :func:`hu_volume` with 200 HU inside the label box."""
    img = hu_volume(shape)
    img[label_volume(index, shape) > 0] = 200.0
    return img


def save(path: Path, data: np.ndarray, affine: np.ndarray | None = None,
         pixdim: tuple[float, ...] | None = None) -> Path:
    """Write a NIfTI file; ``pixdim`` (x, y, z) is written into the header bytes as given.

    nibabel fixes zero/negative pixdim on load, so the bad values are patched into
    the raw header (offset 76 + 4 * i) to reproduce a broken file exactly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, source_affine() if affine is None else affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    raw = bytearray(img.to_bytes())
    if pixdim is not None:
        for i, value in enumerate(pixdim):
            raw[76 + 4 * (i + 1): 80 + 4 * (i + 1)] = struct.pack("<f", value)
    path.write_bytes(gzip.compress(bytes(raw), mtime=0) if path.name.endswith(".gz")
                     else bytes(raw))
    return path


def make_task(
    raw: Path,
    train_ids: list[str] | None = None,
    test_ids: list[str] | None = None,
    task: str = "Task09_Spleen",
    labels: dict[str, str] | None = None,
    modality: dict[str, str] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write an MSD task folder below ``raw``; return the task folder.

    ``extra``: case id -> more keys of its ``training`` entry (e.g. ``{"modality": "MR"}``).
    """
    extra = extra or {}
    train_ids = TRAIN_IDS if train_ids is None else train_ids
    test_ids = TEST_IDS if test_ids is None else test_ids
    folder = raw / task
    for i, cid in enumerate(train_ids):
        save(folder / "imagesTr" / f"{cid}.nii.gz", image_volume(i).astype(np.int16))
        save(folder / "labelsTr" / f"{cid}.nii.gz", label_volume(i))
    for i, cid in enumerate(test_ids):
        save(folder / "imagesTs" / f"{cid}.nii.gz", image_volume(i).astype(np.int16))
    meta: dict[str, Any] = {
        "name": "Spleen",
        "description": "tiny synthetic spleen",
        "tensorImageSize": "3D",
        "modality": modality or {"0": "CT"},
        "labels": labels or {"0": "background", "1": "spleen"},
        "numTraining": len(train_ids),
        "numTest": len(test_ids),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz",
                      **extra.get(c, {})} for c in train_ids],
        "test": [f"./imagesTs/{c}.nii.gz" for c in test_ids],
    }
    (folder / "dataset.json").write_text(json.dumps(meta, indent=1))
    return folder
