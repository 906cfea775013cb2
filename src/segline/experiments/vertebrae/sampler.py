"""Training patches of the iterative method: image, instance memory, target mask of
the first vertebra not in the memory, its completeness flag and loss weights.

Item ``i`` of epoch ``e`` (0-based) draws everything from its own generator
:func:`sample_rng` ``(seed, e, i)``, so the epoch's patches do not depend on the
DataLoader's workers, fetch order or a resume. The case is drawn uniformly.

**Negatives.** Exactly ``floor((i + 1) f) - floor(i f) = 1`` items are negatives
(``f`` = :data:`NEGATIVE_FRACTION` = 25 %, i.e. ``floor(N f)`` of the first N, spread
evenly). A negative teaches "nothing left": target mask empty, completeness 0. Half
of them (one draw) are a patch holding no vertebra voxel at all, with the memory
holding every vertebra whose centroid lies below the patch (what the inference's
memory holds when it gets there); when the case has no such patch, and for the other
half, a patch at a uniformly random z whose vertebrae are all in the memory (the
memory holds the vertebrae of the order up to the last one present in the patch).

**Positives.** A vertebra ``k`` of the case is drawn uniformly; the memory holds exactly
the vertebrae before ``k`` in the order of :mod:`segline.experiments.vertebrae.order`,
so ``k`` is the first vertebra not in the memory and the target is ``k``'s voxels inside
the patch. The patch's z origin is the random crop along z: with probability
:data:`COMPLETE_SHARE` uniform among the origins where ``k`` lies completely inside the
patch (when there are any), else uniform among all origins where the patch holds at
least one z slice of ``k``. ``complete`` is 1 when at least ``complete_frac`` (default
:data:`COMPLETE_FRAC`, 0.98: the published code's rule) of ``k``'s voxels in the
volume lie inside the patch (voxel counts; 1.0: every voxel). A vertebra cut by the
volume's border counts only its voxels inside the volume, as the inference cannot see
more.

**Geometry.** Patches have ``patch = (pz, py, px)`` voxels. Along an axis where the
volume is smaller than the patch, the patch starts at 0 and is padded at the high
end (image 0, memory and target 0, weight 1) — the inference pads its patches the
same way. Where the cross-section is larger than (py, px), a positive's window is
centred on ``k``'s centroid (y, x) with a jitter of up to a quarter of the patch, a
negative's is uniform.

**Augmentation** (``--aug``; the original paper's list): ``none`` — the random crop along z
only; ``light`` — plus, each with probability 1/2, a Gaussian blur of the image (sigma
``U(0.5, 1.5)`` mm, per axis converted with the spacing) and Gaussian noise (sd
``U(0, 0.1)`` of the normalised intensities); ``strong`` — plus, before them, an
elastic deformation of the patch (:func:`segline.data.augment.elastic_coordinates`:
image and weights linearly, the instance labels with nearest neighbour, then memory
and target are derived from the warped labels; the completeness flag stays that of
the unwarped patch, the warp moves voxels by at most 3 mm).

**Weights.** ``weight = 1 + w0 exp(-d^2 / (2 sigma^2))`` with ``d`` (mm) the distance to
the boundary of the union of all vertebrae (the distance store's ``dist3d.npy``
channel 1, :func:`segline.data.slices.boundary_weight`), or 1 everywhere without
``weight_map``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from segline.casestore import CaseStore
from segline.data.augment import AUGS, elastic_coordinates
from segline.data.patches import fg_flags
from segline.data.slices import boundary_weight
from segline.experiments.vertebrae.order import vertebra_order

__all__ = [
    "COMPLETE_FRAC",
    "COMPLETE_SHARE",
    "NEGATIVE_FRACTION",
    "IterativeSampler",
    "is_negative",
    "sample_rng",
    "window",
]

NEGATIVE_FRACTION = 0.25
"""Share of negative items ("nothing left to find")."""
COMPLETE_SHARE = 0.5
"""Share of positives placed so that the target lies completely inside the patch (a
uniform crop would make complete targets rare when vertebrae are tall against the
patch, and the completeness output would learn mostly "incomplete")."""
COMPLETE_FRAC = 0.98
"""Share of a vertebra's voxels that must lie inside the patch for the completeness
label 1 (the published code's rule: ``inside / all >= 0.98``)."""
BLUR_MM = (0.5, 1.5)
NOISE_SD = (0.0, 0.1)
STREAM = 0x76657274
"""Last word of the item seed sequence ("vert"): a stream apart from the 3D patch
sampler's and the augmentation's."""


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in epoch ``epoch`` (0-based) for base ``seed``."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, epoch, index, STREAM]))
    )


def is_negative(index: int, fraction: float = NEGATIVE_FRACTION) -> bool:
    """Whether item ``index`` is a negative: ``floor((i+1) f) - floor(i f) == 1``, the
    rule of the 3D patch sampler's foreground patches
    (:func:`segline.data.patches.fg_flags`).

    Example:
        >>> [is_negative(i) for i in range(8)]
        [False, False, False, True, False, False, False, True]
    """
    return bool(fg_flags(index + 1, fraction)[index])


def window(arr: np.ndarray, start: Sequence[int], size: Sequence[int], pad: float) -> np.ndarray:
    """The window ``start .. start + size`` of the last three axes of ``arr``, padded
    with ``pad`` at the high end where it leaves the array (``start`` >= 0)."""
    lead = arr.shape[:-3]
    out = np.full((*lead, *size), pad, dtype=arr.dtype)
    src = tuple(
        slice(s, min(s + n, dim)) for s, n, dim in zip(start, size, arr.shape[-3:], strict=True)
    )
    dst = tuple(slice(0, w.stop - w.start) for w in src)
    out[(..., *dst)] = arr[(..., *src)]
    return out


@dataclass
class _Case:
    """One training case held in memory."""

    image: np.ndarray  # (C, Z, Y, X) float32
    label: np.ndarray  # (Z, Y, X) vertebra values
    weight: np.ndarray | None  # (Z, Y, X) float32
    order: list[int]
    zc: dict[int, float]  # centroid z per vertebra (voxels)
    box: dict[int, tuple[slice, ...]]  # bounding box per vertebra
    count: dict[int, int]
    spacing: tuple[float, float, float]


def _load(store: CaseStore, case: str, weight_map: tuple[float, float] | None) -> _Case:
    image = np.array(store.image(case), dtype=np.float32)
    label = np.array(store.label(case))
    weight = None
    if weight_map is not None:
        weight = boundary_weight(np.array(store.dist(case, "3d")), *weight_map)
    order = vertebra_order(label)
    boxes = ndimage.find_objects(label)
    counts = np.bincount(label.ravel().astype(np.int64))
    zc: dict[int, float] = {}
    for v in order:
        zs = np.nonzero(label[boxes[v - 1]] == v)[0]
        zc[v] = float(zs.mean()) + boxes[v - 1][0].start
    return _Case(
        image=image,
        label=label,
        weight=weight,
        order=order,
        zc=zc,
        box={v: boxes[v - 1] for v in order},
        count={v: int(counts[v]) for v in order},
        spacing=tuple(float(s) for s in store.meta(case)["spacing"]),  # type: ignore[arg-type]
    )


class IterativeSampler(Dataset):
    """Patches for the iterative method (module docstring).

    Args:
        store: the case store (with its distance store when ``weight_map`` is given).
        cases: training case ids.
        patch: (pz, py, px) voxels.
        samples_per_epoch: the dataset's length.
        seed: base seed.
        weight_map: (w0, sigma_mm) boundary weights, or None for weight 1.
        aug: ``none``, ``light`` or ``strong``.
        negative_fraction: share of negatives.
        complete_frac: share of the target's voxels inside the patch for
            ``complete`` = 1 (0 < f <= 1).

    Items: ``image`` float32 (C + 1, pz, py, px) = image channels and the memory;
    ``target`` float32 (1, pz, py, px); ``weight`` float32 (1, pz, py, px);
    ``complete`` float32 scalar; ``negative`` bool; ``start`` the patch origin (z, y,
    x) in the volume (voxels); ``target_id`` the target's label value (0: negative).
    """

    def __init__(
        self,
        store: CaseStore,
        cases: Sequence[str],
        patch: Sequence[int],
        *,
        samples_per_epoch: int,
        seed: int,
        weight_map: tuple[float, float] | None = None,
        aug: str = "none",
        negative_fraction: float = NEGATIVE_FRACTION,
        complete_frac: float = COMPLETE_FRAC,
    ) -> None:
        if not 0.0 < complete_frac <= 1.0:
            raise ValueError(f"complete_frac must be in (0, 1], got {complete_frac}")
        if aug not in AUGS:
            raise ValueError(f"augmentation must be one of {AUGS}, got {aug!r}")
        if samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.patch = tuple(int(p) for p in patch)
        self.cases = [_load(store, c, weight_map) for c in cases]
        if not any(c.order for c in self.cases):
            raise ValueError("no training case holds a vertebra")
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.aug = aug
        self.negative_fraction = negative_fraction
        self.complete_frac = float(complete_frac)
        self.epoch = 0

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (0-based) whose patches the items are."""
        self.epoch = epoch

    # -- drawing ------------------------------------------------------------------
    def _yx_start(
        self, c: _Case, rng: np.random.Generator, centre: tuple[float, float] | None
    ) -> list[int]:
        starts = []
        for axis, p in ((1, self.patch[1]), (2, self.patch[2])):
            n = c.label.shape[axis]
            if n <= p:
                starts.append(0)
                continue
            if centre is None:
                starts.append(int(rng.integers(0, n - p + 1)))
            else:
                jitter = rng.uniform(-p / 4, p / 4)
                starts.append(int(np.clip(round(centre[axis - 1] + jitter - p / 2), 0, n - p)))
        return starts

    def _positive(self, c: _Case, rng: np.random.Generator) -> tuple[list[int], list[int], int]:
        """(start, memory values, target value)."""
        j = int(rng.integers(len(c.order)))
        k = c.order[j]
        box = c.box[k]
        zmin, zmax = box[0].start, box[0].stop - 1
        pz, nz = self.patch[0], c.label.shape[0]
        last = max(nz - pz, 0)
        lo, hi = max(0, zmin - pz + 1), min(zmax, last)
        clo, chi = max(0, zmax - pz + 1), min(zmin, last)
        if rng.random() < COMPLETE_SHARE and clo <= chi:
            lo, hi = clo, chi
        z0 = int(rng.integers(lo, hi + 1))
        centre = ((box[1].start + box[1].stop - 1) / 2, (box[2].start + box[2].stop - 1) / 2)
        return [z0, *self._yx_start(c, rng, centre)], c.order[:j], k

    def _negative(self, c: _Case, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """(start, memory values) of a patch with nothing left to find."""
        pz, nz = self.patch[0], c.label.shape[0]
        last = max(nz - pz, 0)
        empty_kind = rng.random() < 0.5
        occupied = c.label.any(axis=(1, 2)).astype(np.int64)
        windows = np.convolve(occupied, np.ones(min(pz, nz), np.int64), mode="valid")
        free = np.nonzero(windows == 0)[0]
        if empty_kind and free.size:
            z0 = int(free[int(rng.integers(free.size))])
        else:
            z0 = int(rng.integers(0, last + 1))
        start = [z0, *self._yx_start(c, rng, None)]
        inside = window(c.label, start, self.patch, 0)
        present = set(np.unique(inside).tolist()) - {0}
        if present:
            m = max(c.order.index(v) for v in present) + 1
            return start, c.order[:m]
        return start, [v for v in c.order if c.zc[v] < z0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = sample_rng(self.seed, self.epoch, i)
        c = self.cases[int(rng.integers(len(self.cases)))]
        negative = is_negative(i, self.negative_fraction) or not c.order
        if negative:
            start, memory_ids = self._negative(c, rng)
            k = 0
        else:
            start, memory_ids, k = self._positive(c, rng)
        label = window(c.label, start, self.patch, 0)
        image = window(c.image, start, self.patch, 0.0)
        weight = (
            window(c.weight, start, self.patch, 1.0)
            if c.weight is not None
            else np.ones(self.patch, np.float32)
        )
        complete = bool(k) and int((label == k).sum()) >= self.complete_frac * c.count[k]
        if self.aug == "strong":
            coords = elastic_coordinates(self.patch, c.spacing, rng)
            image = np.stack(
                [ndimage.map_coordinates(ch, coords, order=1, mode="constant") for ch in image]
            )
            label = ndimage.map_coordinates(label, coords, order=0, mode="constant")
            weight = ndimage.map_coordinates(weight, coords, order=1, mode="nearest")
        if self.aug in ("light", "strong"):
            blur, noise = rng.random(2) < 0.5
            sigma_mm, sd = rng.uniform(*BLUR_MM), rng.uniform(*NOISE_SD)
            if blur:
                sigma = [sigma_mm / s for s in c.spacing]
                image = np.stack([ndimage.gaussian_filter(ch, sigma) for ch in image])
            if noise:
                image = image + rng.normal(0.0, sd, image.shape)
        memory = np.isin(label, memory_ids) if memory_ids else np.zeros(self.patch, bool)
        target = label == k if k else np.zeros(self.patch, bool)
        x = np.concatenate([image.astype(np.float32), memory[None].astype(np.float32)])
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x)),
            "target": torch.from_numpy(target[None].astype(np.float32)),
            "weight": torch.from_numpy(np.ascontiguousarray(weight[None], dtype=np.float32)),
            "complete": torch.tensor(float(complete)),
            "negative": torch.tensor(negative),
            "start": torch.tensor(start),
            "target_id": torch.tensor(k),
        }
