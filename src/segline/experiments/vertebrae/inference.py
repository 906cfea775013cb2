"""The iterative method's inference: a patch moved along the spine.

Patches have the training patch's size ``(pz, py, px)`` (given as ``patch``; an int
``pz`` alone means the whole cross-section), so the network and its completeness
head, which pools the whole patch, see at inference what they saw in training: the
sampler centres a positive's (y, x) window on the vertebra, the sweep centres its
window on what it finds. The volume is padded at the high end of every axis shorter
than the patch (image 0, as in training). Positions are origins ``(z0, y0, x0)``;
``z0`` runs over ``0 .. last = Z - pz``, and at each ``z0`` the (y, x) origins not
yet tried come from the **grid**: ``0, py // 2, 2 (py // 2), ...`` and the last one
``Y - py`` (likewise in x; a single ``(0, 0)`` when the cross-section fits the
patch, the usual case for a spine cropped to its vertebrae, and then the sweep moves
along z only). Starting at ``z0 = 0`` (the low end, where the order of
:mod:`segline.experiments.vertebrae.order` starts), each step feeds the image patch
and the memory patch to the network (``step``) and gets a mask of the first vertebra
not in the memory and the probability that it lies completely inside the patch:

1. the mask is restricted to voxels not in the memory and, with ``keep_largest``, to
   its largest 26-connected component; fewer than ``min_voxels`` voxels is **empty**:
   the next (y, x) origin of the grid at this ``z0`` is tried; when none is left, if
   ``z0 == last`` the sweep **stops** (nothing found to the end of the volume), else
   ``z0`` advances by ``stride`` (default ``pz // 2``), at most to ``last``, and the
   grid starts again;
2. a non-empty mask with completeness ``>= threshold`` is **accepted**: written into
   the memory and into the label map with the next instance id (1, 2, ...), its
   completeness recorded; the patch then starts at the vertebra's centroid along z,
   ``z0 = floor(zc + 0.5)`` (clamped to ``0 .. last``), so the next vertebra up —
   whose lower part is usually just above — is in view, with its (y, x) window
   centred on the vertebra's centroid (then the rest of the grid);
3. a non-empty, incomplete mask moves the patch to centre it on the mask's centroid
   in every axis, ``z0 = floor(zc - pz / 2 + 0.5)`` (and likewise y0, x0; clamped), so
   that the vertebra becomes complete; when that position is the current one or one
   already tried for this vertebra (it is cut by the volume's border, or larger than
   the patch), the mask is accepted as it is (with its low completeness: the flag of
   :mod:`segline.experiments.vertebrae.instances`).

The published code slides its window over x, y and z alike and recentres it on what
it finds; here the sweep starts at the low end and follows the spine upwards.

The loop also stops after ``max_calls`` network calls (default
``G * (4 * ceil(Z / stride) + 8)`` with G the grid's (y, x) origins: about four calls
per vertebra when vertebrae are about a stride apart), a guard against a network that
keeps moving. It is deterministic: no randomness, the same inputs give the same
label map.

Example (a fake network that finds nothing: one sweep, positions 0, 5, 10):
    >>> def nothing(image, memory):
    ...     return np.zeros(memory.shape, bool), 0.0
    >>> labels, calls = iterative_segment(nothing, np.zeros((1, 20, 2, 2), np.float32), 10)
    >>> calls, int(labels.max())
    (3, 0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segline.preprocess.cropping import largest_component
from segline.train.device import Precision

__all__ = ["MIN_VOXELS", "Step", "Sweep", "iterative_segment", "net_step", "sweep"]

Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]]
"""``step(image (C, pz, py, px), memory (pz, py, px) bool) -> (mask (pz, py, px) bool,
completeness probability)``: one patch of the sweep (the whole cross-section for an
int ``patch``)."""
MIN_VOXELS = 10
"""Smallest mask (voxels) the trained network's steps count as a vertebra: a few
stray voxels are noise (a toy vertebra at 2 mm has about a thousand)."""


@dataclass
class Sweep:
    """What :func:`sweep` found.

    Attributes:
        labels: instance ids (Z, Y, X) uint16, 1, 2, ... in the order found.
        calls: the network calls the sweep took.
        completeness: instance id -> the completeness probability of the step whose
            mask was accepted.
    """

    labels: np.ndarray
    calls: int
    completeness: dict[int, float] = field(default_factory=dict)


def _origins(n: int, p: int) -> list[int]:
    """Window origins along an axis of ``n`` voxels for windows of ``p``: every
    ``p // 2`` and the last one, ``n - p`` (just 0 when the axis fits)."""
    last = max(n - p, 0)
    if last == 0:
        return [0]
    return [*range(0, last, max(1, p // 2)), last]


def sweep(
    step: Step,
    image: np.ndarray,
    patch: int | Sequence[int],
    *,
    stride: int | None = None,
    threshold: float = 0.5,
    min_voxels: int = 1,
    max_calls: int | None = None,
    keep_largest: bool = True,
) -> Sweep:
    """The sweep of the module docstring over ``image``.

    Args:
        step: the network (or a fake one), see :data:`Step`.
        image: (C, Z, Y, X).
        patch: (pz, py, px) voxels, or ``pz`` alone for windows of the whole
            cross-section.
        stride: z advance after an empty z position (default ``pz // 2``, >= 1).
        threshold: completeness probability to accept a mask.
        min_voxels: smaller masks count as empty.
        max_calls: hard cap on ``step`` calls.
        keep_largest: keep only the mask's largest connected component.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got {image.shape}")
    nz, ny, nx = image.shape[1:]
    size = (int(patch), ny, nx) if isinstance(patch, (int, np.integer)) else tuple(patch)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"patch must be pz >= 1 or (pz, py, px) >= 1, got {patch}")
    pz, py, px = (int(p) for p in size)
    shape = (max(nz, pz), max(ny, py), max(nx, px))
    img = np.zeros((image.shape[0], *shape), np.float32)
    img[:, :nz, :ny, :nx] = image
    memory = np.zeros(shape, bool)
    labels = np.zeros(shape, np.uint16)
    lasts = (shape[0] - pz, shape[1] - py, shape[2] - px)
    grid = [(y, x) for y in _origins(shape[1], py) for x in _origins(shape[2], px)]
    stride = max(1, stride or pz // 2)
    if max_calls is None:
        max_calls = len(grid) * (4 * math.ceil(shape[0] / stride) + 8)

    def clamp(v: float, axis: int) -> int:
        return int(min(max(math.floor(v + 0.5), 0), lasts[axis]))

    def then(yx: tuple[int, int]) -> list[tuple[int, int]]:
        return [yx, *(g for g in grid if g != yx)]

    found = Sweep(labels, 0)
    z0, next_id = 0, 1
    pending = list(grid)  # (y, x) origins still to try at z0
    tried: set[tuple[int, int, int]] = set()
    while found.calls < max_calls:
        y0, x0 = pending[0]
        win = (slice(z0, z0 + pz), slice(y0, y0 + py), slice(x0, x0 + px))
        mask, complete = step(img[(slice(None), *win)], memory[win])
        found.calls += 1
        mask = np.asarray(mask, bool) & ~memory[win]
        if keep_largest and mask.any():
            mask = largest_component(mask, connectivity=3)
        if int(mask.sum()) < max(min_voxels, 1):
            pending.pop(0)
            if pending:
                continue
            if z0 >= lasts[0]:
                break
            z0, pending, tried = min(z0 + stride, lasts[0]), list(grid), set()
            continue
        zc, yc, xc = (
            o + float(ix.mean()) for o, ix in zip((z0, y0, x0), np.nonzero(mask), strict=True)
        )
        if complete < threshold:
            moved = (clamp(zc - pz / 2, 0), clamp(yc - py / 2, 1), clamp(xc - px / 2, 2))
            if moved != (z0, y0, x0) and moved not in tried:
                tried.add((z0, y0, x0))
                z0, pending = moved[0], then(moved[1:])
                continue
        memory[win] |= mask
        labels[win][mask] = next_id
        found.completeness[next_id] = float(complete)
        next_id += 1
        centred = (clamp(yc - py / 2, 1), clamp(xc - px / 2, 2))
        z0, pending, tried = clamp(zc, 0), then(centred), set()
    found.labels = labels[:nz, :ny, :nx]
    return found


def iterative_segment(
    step: Step,
    image: np.ndarray,
    patch: int | Sequence[int],
    **options: Any,
) -> tuple[np.ndarray, int]:
    """Instance label map (Z, Y, X) uint16 (ids 1, 2, ... in the order found) and the
    number of ``step`` calls: :func:`sweep` (its options) without the completeness."""
    found = sweep(step, image, patch, **options)
    return found.labels, found.calls


def net_step(model: torch.nn.Module, precision: Precision, patch_yx: tuple[int, int]) -> Step:
    """A :data:`Step` running the :class:`~segline.nets.iterative_fcn.IterativeFCN`
    ``model`` on ``precision``'s device: the cross-section is padded at the high end to
    at least ``patch_yx`` (as the training patches are), the mask is ``logit > 0``
    (probability 0.5) and the completeness the sigmoid of its logit."""
    py, px = patch_yx

    def step(image: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, float]:
        _, pz, ny, nx = image.shape
        x = np.zeros((image.shape[0] + 1, pz, max(ny, py), max(nx, px)), np.float32)
        x[:-1, :, :ny, :nx] = image
        x[-1, :, :ny, :nx] = memory
        batch: Any = torch.from_numpy(x)[None].to(precision.device)
        with torch.inference_mode(), precision.autocast():
            logits, complete = model(batch)
        mask = (logits[0, 0].float() > 0).cpu().numpy()[:, :ny, :nx]
        return mask, float(torch.sigmoid(complete[0].float()))

    return step
