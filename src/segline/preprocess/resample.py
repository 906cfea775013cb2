"""Resampling volumes (Z, Y, X) to a new grid that covers the same physical extent.

Convention (the "voxel centres" convention of ``skimage.transform.resize``): an axis
of ``n_in`` voxels resampled to ``n_out`` keeps the outer edges of the first and last
voxel fixed, so the output voxel ``o`` samples the input at ``(o + 0.5) * s - 0.5``
with ``s = n_in / n_out``, and the new spacing is ``spacing * s`` mm. Because the
output shape is given exactly, resampling back to ``n_in`` is the inverse mapping
(used by :func:`segline.preprocess.geometry.to_source`).

* Images: linear interpolation (order 1). When an axis is shrunk (``s > 1``) the
  volume is first smoothed with a Gaussian of sigma ``(s - 1) / 2`` voxels on that
  axis (as skimage's ``anti_aliasing``), so thin bright structures do not alias.
* Labels: *one-hot linear then argmax*: each class indicator is interpolated
  linearly and every output voxel takes the class with the largest value (ties go
  to the lower class index). This gives smoother, less biased boundaries than
  nearest-neighbour and never invents a class that is not in the input.

Example:
    >>> import numpy as np
    >>> lab = np.zeros((1, 4, 4), np.uint8); lab[:, 1:3, 1:3] = 1
    >>> int(resample_label(lab, (1, 8, 8)).sum())
    16
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Shape3 = tuple[int, int, int]


def target_shape(
    shape: Sequence[int],
    spacing: Sequence[float],
    new_spacing: Sequence[float | None] | None = None,
    inplane: int | None = None,
) -> Shape3:
    """Output shape (Z, Y, X) for a target spacing and/or an in-plane size.

    Args:
        shape: current shape (Z, Y, X) in voxels.
        spacing: current spacing (z, y, x) in mm.
        new_spacing: target spacing (z, y, x) in mm; a ``None`` component keeps
            that axis unchanged. The number of voxels is rounded, so the spacing
            actually reached is ``spacing * shape / new_shape`` (the extent is kept).
        inplane: resize each axial slice to ``inplane`` x ``inplane`` voxels (applied
            after ``new_spacing``, overriding its y and x).

    Returns:
        the new shape (Z, Y, X), every axis at least 1 voxel.

    Example:
        >>> target_shape((10, 100, 100), (5.0, 0.8, 0.8), (1.0, None, None), inplane=64)
        (50, 64, 64)
    """
    out = [int(n) for n in shape]
    if new_spacing is not None:
        for axis, target in enumerate(new_spacing):
            if target is None:
                continue
            if not target > 0:
                raise ValueError(f"target spacing must be > 0 mm, got {target}")
            out[axis] = max(1, int(round(shape[axis] * spacing[axis] / target)))
    if inplane is not None:
        if inplane < 1:
            raise ValueError(f"in-plane size must be >= 1 voxel, got {inplane}")
        out[1] = out[2] = int(inplane)
    return (out[0], out[1], out[2])


def spacing_after(shape_before: Sequence[int], shape_after: Sequence[int],
                  spacing: Sequence[float]) -> tuple[float, float, float]:
    """Spacing (mm) after resampling ``shape_before`` to ``shape_after`` (extent kept)."""
    sp = [float(spacing[a]) * shape_before[a] / shape_after[a] for a in range(3)]
    return (sp[0], sp[1], sp[2])


def _scales(shape_in: Sequence[int], shape_out: Sequence[int]) -> np.ndarray:
    return np.array([i / o for i, o in zip(shape_in, shape_out, strict=True)], dtype=np.float64)


def _sample(volume: np.ndarray, shape_out: Sequence[int]) -> np.ndarray:
    """Linear sampling of ``volume`` on the output grid (edges clamped), float32."""
    scales = _scales(volume.shape, shape_out)
    return ndimage.affine_transform(
        volume.astype(np.float32, copy=False),
        scales,
        offset=0.5 * scales - 0.5,
        output_shape=tuple(int(n) for n in shape_out),
        order=1,
        mode="nearest",
        prefilter=False,
    )


def resample_image(
    volume: np.ndarray, shape_out: Sequence[int], antialias: bool = True
) -> np.ndarray:
    """Linear (order 1) resampling of one channel (Z, Y, X) to ``shape_out``; float32.

    Args:
        volume: intensities (Z, Y, X).
        shape_out: output shape (Z, Y, X).
        antialias: Gaussian pre-smoothing on axes that shrink (see module docstring).
    """
    if tuple(volume.shape) == tuple(shape_out):
        return volume.astype(np.float32, copy=True)
    data = volume.astype(np.float32, copy=False)
    if antialias:
        sigma = np.maximum(0.0, (_scales(volume.shape, shape_out) - 1.0) / 2.0)
        if np.any(sigma > 0):
            data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    return _sample(data, shape_out)


def resample_label(label: np.ndarray, shape_out: Sequence[int]) -> np.ndarray:
    """One-hot linear resampling of a class-index volume (Z, Y, X); uint8 argmax.

    Only the classes present are interpolated, one at a time (memory: a few float32
    volumes whatever the number of classes).
    """
    if tuple(label.shape) == tuple(shape_out):
        return label.astype(np.uint8, copy=True)
    best = np.full(tuple(shape_out), -1.0, dtype=np.float32)
    arg = np.zeros(tuple(shape_out), dtype=np.uint8)
    for k in np.unique(label):
        score = _sample((label == k).astype(np.float32), shape_out)
        win = score > best
        best[win] = score[win]
        arg[win] = k
    return arg


def resample_scores(scores: np.ndarray, shape_out: Sequence[int]) -> np.ndarray:
    """Linear resampling of per-voxel scores (e.g. one class probability), no smoothing."""
    if tuple(scores.shape) == tuple(shape_out):
        return scores.astype(np.float32, copy=True)
    return _sample(scores, shape_out)
