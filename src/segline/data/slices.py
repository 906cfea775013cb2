"""2D / 2.5D axial-slice datasets over a case store.

One item is one axial slice ``z`` of one case: the image slice (optionally with
``context`` neighbouring slices on each side stacked as extra channels: 2.5D input),
its one-hot label, its signed distance maps (mm) and the in-plane spacing
(``spacing`` (y, x) mm, labelled items). Arrays are memory-mapped, so
an item reads only its own slices from disk, never the whole volume.

Example:
    >>> ds = SliceDataset(store, store.case_ids("train"), dist_kind="2d")  # doctest: +SKIP
    >>> item = ds[0]; item["image"].shape                                   # doctest: +SKIP
    torch.Size([1, 96, 96])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from segline.casestore import CaseStore
from segline.data.augment import augment, item_rng
from segline.distmaps import Absent, store_absent


def one_hot(label: np.ndarray, n_classes: int) -> np.ndarray:
    """(…) integer labels → (K, …) float32 one-hot."""
    return (
        np.arange(n_classes, dtype=label.dtype).reshape(-1, *([1] * label.ndim)) == label[None]
    ).astype(np.float32)


class SliceDataset(Dataset):
    """Axial slices of the given cases, in canonical (case, z) order.

    Args:
        store: the case store (opened with ``dist_root`` when ``dist_kind`` is set).
        case_ids: cases to draw slices from (kept in the given order).
        dist_kind: "2d" (per-slice maps), "3d" (slices of the volume maps) or None.
        context: number of neighbouring slices on each side fed as channels (2.5D);
            slices beyond the volume repeat the edge slice.
        limit: keep only the first ``limit`` slices (``--debug``), after an even
            subsampling over the whole list so every case is represented.
        with_label: False for unlabelled cases (inference).
        weight_map: ``(w0, sigma_mm)`` adds ``weight`` (H, W): :func:`boundary_weight`
            of the slice's distance maps (read even when ``dist_kind`` is None).
        aug: ``"none"``, ``"light"`` or ``"strong"`` (:mod:`segline.data.augment`);
            training sets only. Item ``i`` of epoch ``e`` (:meth:`set_epoch`) draws from
            ``item_rng(seed, e, i)``; weight maps are computed after augmenting.
        seed: base seed of the augmentation.
    """

    def __init__(
        self,
        store: CaseStore,
        case_ids: Sequence[str],
        dist_kind: str | None = "2d",
        context: int = 0,
        limit: int | None = None,
        with_label: bool = True,
        weight_map: tuple[float, float] | None = None,
        aug: str = "none",
        seed: int = 0,
    ) -> None:
        self.store = store
        self.aug = aug
        self.seed = seed
        self.epoch = 0
        self.case_ids = list(case_ids)
        self.dist_kind = dist_kind
        self.context = context
        self.with_label = with_label
        self.weight_map = weight_map if with_label else None
        self.n_classes = store.n_classes
        self.index: list[tuple[str, int]] = []
        # in-plane (y, x) spacing in mm per case, for losses that measure distances on
        # the prediction (the two-sided Hausdorff-DT loss)
        self.spacing: dict[str, tuple[float, ...]] = {}
        for case in self.case_ids:
            meta = store.meta(case)
            depth = int(meta["shape"][0])
            self.index.extend((case, z) for z in range(depth))
            if "spacing" in meta:
                self.spacing[case] = tuple(float(s) for s in meta["spacing"][1:])
        if limit is not None and len(self.index) > limit:
            picks = np.linspace(0, len(self.index) - 1, limit).round().astype(int)
            self.index = [self.index[i] for i in picks]
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self._absent_value: Absent | None = None

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (0-based) whose augmentation ``self[i]`` draws."""
        self.epoch = epoch

    def _arrays(self, case: str) -> dict[str, np.ndarray]:
        """Memory maps of one case, opened once per worker."""
        arrays = self._cache.get(case)
        if arrays is None:
            arrays = {"image": self.store.image(case)}
            if self.with_label:
                arrays["label"] = self.store.label(case)
                if self.dist_kind or self.weight_map:
                    arrays["dist"] = self.store.dist(case, self.dist_kind or "2d")
            self._cache[case] = arrays
        return arrays

    def __getitem__(self, i: int) -> dict[str, Any]:
        case, z = self.index[i]
        arrays = self._arrays(case)
        image = arrays["image"]
        depth = image.shape[1]
        if self.context:
            zs = np.clip(np.arange(z - self.context, z + self.context + 1), 0, depth - 1)
            img = np.asarray(image[:, zs]).reshape(-1, *image.shape[2:])
        else:
            img = np.asarray(image[:, z])
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.array(img, dtype=np.float32)),
            "case": case,
            "z": z,
        }
        if self.aug != "none" and self.with_label:
            return self._augmented(item, arrays, i)
        if self.with_label:
            lab = np.asarray(arrays["label"][z])
            item["target"] = torch.from_numpy(one_hot(lab, self.n_classes))
            if case in self.spacing:
                item["spacing"] = torch.tensor(self.spacing[case], dtype=torch.float32)
            if "dist" in arrays:
                dist = np.array(arrays["dist"][:, z], dtype=np.float32)
                if self.dist_kind:
                    item["dist"] = torch.from_numpy(dist)
                if self.weight_map:
                    item["weight"] = torch.from_numpy(boundary_weight(dist, *self.weight_map))
        return item

    def _absent(self) -> Absent:
        """The distance-map store's value of an absent class (``distmaps.json``),
        read once: recomputed maps must match the stored ones."""
        if self._absent_value is None:
            self._absent_value = store_absent(self.store.dist_root)
        return self._absent_value

    def _augmented(
        self, item: dict[str, Any], arrays: dict[str, np.ndarray], i: int
    ) -> dict[str, Any]:
        """``item`` with image, target, maps and weights of the augmented slice.

        Per-slice maps (``dist2d``, also the source of weight maps) are recomputed
        after a warp; slices of the volume's maps are warped and scaled (module
        docstring of :mod:`segline.data.augment`).
        """
        case, z = item["case"], item["z"]
        spacing = self.spacing[case]  # augmenting keeps the slice's grid and spacing
        dist = np.array(arrays["dist"][:, z], dtype=np.float32) if "dist" in arrays else None
        out = augment(
            self.aug,
            item["image"].numpy(),
            np.asarray(arrays["label"][z]),
            spacing=spacing,
            rng=item_rng(self.seed, self.epoch, i),
            dist=dist,
            recompute=(self.dist_kind or "2d") == "2d",
            n_classes=self.n_classes,
            absent=self._absent(),
        )
        item["image"] = torch.from_numpy(out["image"])
        item["target"] = torch.from_numpy(one_hot(out["label"], self.n_classes))
        item["spacing"] = torch.tensor(spacing, dtype=torch.float32)
        if dist is not None:
            if self.dist_kind:
                item["dist"] = torch.from_numpy(out["dist"])
            if self.weight_map:
                item["weight"] = torch.from_numpy(boundary_weight(out["dist"], *self.weight_map))
        return item


def boundary_weight(dist: np.ndarray, w0: float, sigma_mm: float) -> np.ndarray:
    """Per-pixel weight heavier near object boundaries (the iterative-FCN paper's idea).

    ``w = 1 + w0 * exp(-d**2 / (2 * sigma**2))`` where ``d`` (mm) is the distance to the
    nearest boundary of any foreground class, taken from the signed distance maps
    (``|dist|`` of classes 1..K-1; class 0 is the complement of the others). Pixels on a
    boundary weigh ``1 + w0``, far ones 1. Slices without foreground get weight 1
    (their maps hold the constant slice diagonal, far from any boundary). A class
    whose map is 0 everywhere is absent (a store written with ``absent="zero"``: no
    real distance is 0) and is skipped, so the weights do not depend on that choice
    (with no foreground class left the weight is exactly 1, against
    ``1 + w0 exp(-D**2 / (2 sigma**2))``, about 1, from the diagonal maps).

    Args:
        dist: (K, H, W) signed distance maps in mm.
        w0: extra weight at the boundary (e.g. 5).
        sigma_mm: width of the boundary band in mm (e.g. 3).

    Example:
        >>> d = np.array([[[0.0, 10.0]], [[0.0, 10.0]]], np.float32)
        >>> boundary_weight(d, 4.0, 1.0).round(3).tolist()
        [[5.0, 1.0]]
    """
    maps = dist[1:] if dist.shape[0] > 1 else dist
    present = [m for m in maps if m.any()]
    if not present:  # no foreground at all, under either convention
        return np.ones(dist.shape[1:], dtype=np.float32)
    near = np.abs(np.stack(present)).min(axis=0)
    return (1.0 + w0 * np.exp(-(near.astype(np.float64) ** 2) / (2.0 * sigma_mm**2))).astype(
        np.float32
    )


def pad_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items, zero-padding images (and background-padding targets) to the largest
    slice in the batch, so cases of different in-plane sizes can share a batch.

    Distance maps are padded by repeating their edge values; a ``valid`` mask
    (B, H, W) marks the real pixels.
    """
    h = max(it["image"].shape[-2] for it in items)
    w = max(it["image"].shape[-1] for it in items)
    out: dict[str, Any] = {"case": [it["case"] for it in items], "z": [it["z"] for it in items]}
    same = all(it["image"].shape[-2:] == (h, w) for it in items)

    def pad(t: torch.Tensor, mode: str, value: float = 0.0) -> torch.Tensor:
        ph, pw = h - t.shape[-2], w - t.shape[-1]
        if ph == 0 and pw == 0:
            return t
        if mode == "replicate":
            return torch.nn.functional.pad(t[None], (0, pw, 0, ph), mode="replicate")[0]
        return torch.nn.functional.pad(t, (0, pw, 0, ph), value=value)

    out["image"] = torch.stack([pad(it["image"], "constant") for it in items])
    if "target" in items[0]:
        targets = []
        for it in items:
            t = pad(it["target"], "constant")
            if not same:
                t[0][t.sum(0) == 0] = 1.0  # padded pixels are background
            targets.append(t)
        out["target"] = torch.stack(targets)
    if "dist" in items[0]:
        out["dist"] = torch.stack([pad(it["dist"], "replicate") for it in items])
    if "spacing" in items[0]:
        out["spacing"] = torch.stack([it["spacing"] for it in items])  # (B, 2) mm
    if "weight" in items[0]:
        out["weight"] = torch.stack([pad(it["weight"][None], "constant", 1.0)[0] for it in items])
    valid = torch.zeros(len(items), h, w, dtype=torch.bool)
    for b, it in enumerate(items):
        valid[b, : it["image"].shape[-2], : it["image"].shape[-1]] = True
    out["valid"] = valid
    return out
