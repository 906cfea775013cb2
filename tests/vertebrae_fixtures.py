"""A tiny vertebra case store for the tests of segline.experiments.vertebrae: a few boxes
("vertebrae") stacked along z, one class each, on a noisy background."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segline import atomic
from segline.casestore import write_case
from segline.distmaps import write_dist_store
from segline.preprocess.geometry import from_source

NAMES = ["background", "L1", "L2", "L3", "L4"]
VALUES = {"0": 0, "1": 20, "2": 21, "3": 22, "4": 23}
SPACING = 2.0


def spine_case(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) image and label: vertebra k (1..4) is a 6x6x4-voxel box at z = 3 + 7 (k-1) + i % 2,
    bright on a noisy background; 36 slices."""
    rng = np.random.default_rng(i)
    img = rng.normal(0.0, 0.1, size=(12, 12, 36)).astype(np.float32)
    lab = np.zeros((12, 12, 36), np.uint8)
    for k in range(1, 5):
        z = 3 + 7 * (k - 1) + i % 2
        lab[3:9, 3:9, z : z + 4] = k
    img[lab > 0] += 1.0
    return img, lab


def spine_store(root: Path, n_cases: int = 5) -> tuple[Path, Path]:
    """Write ``root/cases`` (split: 1 test, 1 val, the rest train) and ``root/dist``."""
    cases = root / "cases"
    ids = [f"spine_{i}" for i in range(n_cases)]
    with atomic.atomic_dir(cases) as tmp:
        for i, cid in enumerate(ids):
            img, lab = spine_case(i)
            affine = np.diag([SPACING, SPACING, SPACING, 1.0])
            image, label, meta = from_source(
                [img], lab, affine, (SPACING,) * 3, case_id=cid, channels=["CT"]
            )
            write_case(tmp, cid, image, label, meta)
        atomic.write_json(
            tmp / "dataset.json",
            {
                "name": "spine",
                "labels": {str(i): n for i, n in enumerate(NAMES)},
                "classes": NAMES,
                "source_info": {"label_values": VALUES},
                "channels": ["CT"],
            },
        )
        atomic.write_json(
            tmp / "split.json", {"test": ids[:1], "val": ids[1:2], "train": ids[2:], "infer": []}
        )
    write_dist_store(cases, root / "dist", kinds=("3d",))
    return cases, root / "dist"
