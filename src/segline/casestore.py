"""The on-disk format shared by every stage after unpacking (docs/CONTRACTS.md).

One layout serves every consumer: 2D training reads single axial slices, 2.5D
training a few neighbouring ones, 3D training patches, and evaluation, metrics and
NIfTI export whole volumes, so no stage has to regroup slice files into cases
(docs/ARCHITECTURE.md, "On-disk contracts").

A *case store* is a folder written by the slicing stage::

    data/<ds>/cases/
      dataset.json     name, class names, channel names, source format
      split.json       {"train": [...], "val": [...], "test": [...], "infer": [...]},
                       and "params": how the split was chosen (segline.preprocess.split)
      splits_final.json  the same split in nnU-Net's format, one fold:
                       [{"train": train + val, "val": test}] (SPLIT_FILE reads it back);
                       cross-validation (FOLDS=k): split.json also holds "folds", one
                       {"train", "val", "test"} per fold, and splits_final.json k folds
      <case_id>/
        image.npy      float32 (C, Z, Y, X): Z first, so one axial slice is one
                       contiguous block and ``mmap_mode="r"`` reads just that slice
        label.npy      uint8 (Z, Y, X), class indices (absent for unlabelled cases)
        meta.json      geometry: source affine and shape, spacing in mm as (z, y, x),
                       and every transform applied (see segline.preprocess.geometry)

Distance maps live in a sibling store written by the distance-map stage::

    data/<ds>/dist/<case_id>/dist2d.npy   float32 (K, Z, Y, X), per axial slice, mm
    data/<ds>/dist/<case_id>/dist3d.npy   float32 (K, Z, Y, X), whole volume, mm

Case ids are ordered with :func:`case_sort_key` (natural order: ``spleen_2`` before
``spleen_10``) everywhere, so per-case columns line up between methods.

Example:
    >>> case_sort_key("spleen_10") > case_sort_key("spleen_2")
    True
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from segline import atomic
from segline.errors import InputError

SPLITS = ("train", "val", "test", "infer")
IMAGE = "image.npy"
LABEL = "label.npy"
META = "meta.json"
DIST2D = "dist2d.npy"
DIST3D = "dist3d.npy"


def case_sort_key(case_id: str) -> tuple[Any, ...]:
    """Natural sort key: digit runs compare as numbers (``case_2`` < ``case_10``)."""
    parts = re.split(r"(\d+)", case_id)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def sorted_cases(case_ids: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """Case ids in the project's one canonical order."""
    return sorted(case_ids, key=case_sort_key)


def write_case(
    root: Path,
    case_id: str,
    image: np.ndarray,
    label: np.ndarray | None,
    meta: dict[str, Any],
) -> Path:
    """Write one case (image C×Z×Y×X float32, label Z×Y×X uint8, meta) below ``root``.

    ``root`` is normally the temporary folder of :func:`segline.atomic.atomic_dir`,
    so the whole store appears at once.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {image.shape}")
    if label is not None and label.shape != image.shape[1:]:
        raise ValueError(f"label shape {label.shape} != image shape {image.shape[1:]}")
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    atomic.save_npy(folder / IMAGE, image.astype(np.float32, copy=False))
    if label is not None:
        atomic.save_npy(folder / LABEL, label.astype(np.uint8, copy=False))
    atomic.write_json(folder / META, meta)
    return folder


class CaseStore:
    """Read access to a case store (and, optionally, its distance-map store).

    Args:
        root: the ``cases`` folder.
        dist_root: the ``dist`` folder, when distance maps are needed.
        fold: with a cross-validation store (``split.json`` ``folds``, make ``FOLDS``),
            the fold whose train / val / test :attr:`split` gives; None: the top-level
            split.
    """

    def __init__(self, root: str | Path, dist_root: str | Path | None = None,
                 fold: int | None = None) -> None:
        self.root = Path(root)
        self.dist_root = Path(dist_root) if dist_root is not None else None
        self.fold = fold
        if not (self.root / "split.json").is_file():
            raise InputError(
                self.root, "not a case store (split.json missing); run the slicing stage"
            )
        if fold is not None:
            folds = json.loads((self.root / "split.json").read_text()).get("folds") or []
            if not 0 <= fold < len(folds):
                have = f"folds 0..{len(folds) - 1}" if folds else "no folds (slice with FOLDS=k)"
                raise InputError(self.root / "split.json", f"fold {fold} not in the store "
                                 f"(it has {have})")

    @cached_property
    def dataset(self) -> dict[str, Any]:
        """Contents of ``dataset.json`` (``labels``: {index: name}, ``channels``: [...])."""
        return json.loads((self.root / "dataset.json").read_text())

    @cached_property
    def split(self) -> dict[str, list[str]]:
        """Contents of ``split.json``; every split present, each in canonical order."""
        raw = json.loads((self.root / "split.json").read_text())
        if self.fold is not None:
            raw = {**raw["folds"][self.fold], "infer": raw.get("infer", [])}
        return {name: sorted_cases(raw.get(name, [])) for name in SPLITS}

    @property
    def n_classes(self) -> int:
        """Number of classes including background."""
        return len(self.dataset["labels"])

    @property
    def n_channels(self) -> int:
        """Number of image channels (modalities)."""
        return len(self.dataset["channels"])

    def case_ids(self, split: str | None = None) -> list[str]:
        """Case ids of one split, or of all splits, in canonical order."""
        if split is None:
            return sorted_cases([c for s in SPLITS for c in self.split[s]])
        return list(self.split[split])

    def meta(self, case_id: str) -> dict[str, Any]:
        """The case's ``meta.json``."""
        return json.loads((self.root / case_id / META).read_text())

    def image(self, case_id: str, mmap: bool = True) -> np.ndarray:
        """Image (C, Z, Y, X) float32; memory-mapped by default."""
        return np.load(self.root / case_id / IMAGE, mmap_mode="r" if mmap else None)

    def has_label(self, case_id: str) -> bool:
        """Whether the case has a ground-truth label."""
        return (self.root / case_id / LABEL).is_file()

    def label(self, case_id: str, mmap: bool = True) -> np.ndarray:
        """Label (Z, Y, X) uint8; memory-mapped by default."""
        return np.load(self.root / case_id / LABEL, mmap_mode="r" if mmap else None)

    def dist(self, case_id: str, kind: str = "2d", mmap: bool = True) -> np.ndarray:
        """Signed distance maps (K, Z, Y, X) float32 in mm; ``kind`` is "2d" or "3d"."""
        if self.dist_root is None:
            raise ValueError("CaseStore opened without dist_root")
        name = {"2d": DIST2D, "3d": DIST3D}[kind]
        return np.load(self.dist_root / case_id / name, mmap_mode="r" if mmap else None)
