"""The iterative method's inference: one sweep of a patch along the spine (z).

The patch covers the whole cross-section (y, x) and ``patch_z`` slices; only z moves.
Positions are z origins ``z0`` in ``0 .. last = Z - patch_z`` (a volume shorter than the
patch is padded at the high end). Starting at ``z0 = 0`` (the low end, where the order
of :mod:`segline.experiments.vertebrae.order` starts), each step feeds the image patch and the
memory patch to the network (``step``) and gets a mask of the first vertebra not in the
memory and the probability that it lies completely inside the patch:

1. the mask is restricted to voxels not in the memory and, with ``keep_largest``, to
   its largest 26-connected component; fewer than ``min_voxels`` voxels is **empty**:
   if ``z0 == last`` the sweep **stops** (nothing found to the end of the volume),
   else ``z0`` advances by ``stride`` (default ``patch_z // 2``), at most to ``last``;
2. a non-empty mask with completeness ``>= threshold`` is **accepted**: written into
   the memory and into the label map with the next instance id (1, 2, ...); the patch
   then starts at the vertebra's centroid, ``z0 = floor(zc + 0.5)`` (clamped to
   ``0 .. last``), so the next vertebra up — whose lower part is usually just above
   — is in view;
3. a non-empty, incomplete mask moves the patch to centre it on the mask's centroid,
   ``z0 = floor(zc - patch_z / 2 + 0.5)`` (clamped), so that the vertebra becomes
   complete; when that position is the current one or one already tried for this
   vertebra (it is cut by the volume's border, or taller than the patch), the mask is
   accepted as it is.

The loop also stops after ``max_calls`` network calls (default
``4 * ceil(Z / stride) + 8``: about four calls per vertebra when vertebrae are about a
stride apart), a guard against a network that keeps moving. It is
deterministic: no randomness, the same inputs give the same label map.

Example (a fake network that finds nothing: one sweep, positions 0, 5, 10):
    >>> def nothing(image, memory):
    ...     return np.zeros(memory.shape, bool), 0.0
    >>> labels, calls = iterative_segment(nothing, np.zeros((1, 20, 2, 2), np.float32), 10)
    >>> calls, int(labels.max())
    (3, 0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from segline.train.device import Precision

__all__ = ["MIN_VOXELS", "Step", "iterative_segment", "net_step"]

Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]]
"""``step(image (C, pz, Y, X), memory (pz, Y, X) bool) -> (mask (pz, Y, X) bool,
completeness probability)``."""
MIN_VOXELS = 10
"""Smallest mask (voxels) the trained network's steps count as a vertebra: a few
stray voxels are noise (a toy vertebra at 2 mm has about a thousand)."""


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == int(np.argmax(sizes)) + 1


def iterative_segment(
    step: Step,
    image: np.ndarray,
    patch_z: int,
    *,
    stride: int | None = None,
    threshold: float = 0.5,
    min_voxels: int = 1,
    max_calls: int | None = None,
    keep_largest: bool = True,
) -> tuple[np.ndarray, int]:
    """Instance label map (Z, Y, X) uint16 (ids 1, 2, ... in the order found) and the
    number of ``step`` calls (module docstring).

    Args:
        step: the network (or a fake one), see :data:`Step`.
        image: (C, Z, Y, X).
        patch_z: slices per patch.
        stride: z advance after an empty patch (default ``patch_z // 2``, >= 1).
        threshold: completeness probability to accept a mask.
        min_voxels: smaller masks count as empty.
        max_calls: hard cap on ``step`` calls.
        keep_largest: keep only the mask's largest connected component.
    """
    if image.ndim != 4 or patch_z < 1:
        raise ValueError(
            f"image must be (C, Z, Y, X) and patch_z >= 1, got {image.shape}, {patch_z}"
        )
    nz = image.shape[1]
    zp = max(nz, patch_z)
    img = np.zeros((image.shape[0], zp, *image.shape[2:]), np.float32)
    img[:, :nz] = image
    memory = np.zeros(img.shape[1:], bool)
    labels = np.zeros(img.shape[1:], np.uint16)
    last = zp - patch_z
    stride = max(1, stride or patch_z // 2)
    if max_calls is None:
        max_calls = 4 * math.ceil(zp / stride) + 8

    def clamp(z: float) -> int:
        return int(min(max(math.floor(z + 0.5), 0), last))

    z0, calls, next_id = 0, 0, 1
    tried: set[int] = set()
    while calls < max_calls:
        win = slice(z0, z0 + patch_z)
        mask, complete = step(img[:, win], memory[win])
        calls += 1
        mask = np.asarray(mask, bool) & ~memory[win]
        if keep_largest and mask.any():
            mask = _largest_component(mask)
        if int(mask.sum()) < max(min_voxels, 1):
            if z0 >= last:
                break
            z0, tried = min(z0 + stride, last), set()
            continue
        zc = z0 + float(np.nonzero(mask)[0].mean())
        if complete < threshold:
            moved = clamp(zc - patch_z / 2)
            if moved != z0 and moved not in tried:
                tried.add(z0)
                z0 = moved
                continue
        memory[win] |= mask
        labels[win][mask] = next_id
        next_id += 1
        z0, tried = clamp(zc), set()
    return labels[:nz], calls


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
