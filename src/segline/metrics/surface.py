"""Surface distances between two masks: HD95, Hausdorff distance and ASSD, in mm.

Definitions used throughout:

* **Surface voxel**: a foreground voxel with at least one background neighbour
  along an axis (6-neighbourhood in 3D, 4-neighbourhood in 2D; in general the
  2·ndim face neighbours). Everything outside the array counts as background, so a
  foreground voxel on the array border is a surface voxel. (Same as
  ``mask ^ binary_erosion(mask)`` with a cross-shaped structuring element and
  ``border_value=0``, which is what medpy uses with ``connectivity=1``.)
* **Directed surface distances** A→B: for every surface voxel of A (in C order of
  ``np.nonzero``) the Euclidean distance in mm to the nearest surface voxel of B,
  voxel centre to voxel centre, with the voxel spacing (z, y, x) in mm.
* **Pooled symmetric distances**: both directed sets concatenated
  (|S_A| + |S_B| values).
* **HD95** (default, ``mode="pooled"``): 95th percentile of the pooled symmetric
  distances, as ``medpy.metric.binary.hd95``. ``mode="max"`` instead takes the
  larger of the two directed 95th percentiles, as MONAI's
  ``compute_hausdorff_distance(percentile=95)``. The two agree for the plain
  Hausdorff distance (percentile 100) and differ in general otherwise.
  Percentiles use numpy's default ``linear`` interpolation.
* **ASSD**: mean of the pooled symmetric distances, i.e.
  (Σ_{a∈S_A} d(a,S_B) + Σ_{b∈S_B} d(b,S_A)) / (|S_A| + |S_B|), as MONAI's
  symmetric average surface distance. (medpy's ``assd`` averages the two directed
  means instead, which differs when |S_A| ≠ |S_B|.)
* **Empty masks** (README "Metrics and conventions"): both empty → 0.0
  (identical); exactly one empty → NaN: a distance to a surface that does not exist
  is undefined, and any stand-in number (0, the image diagonal) would bias the mean
  one way or the other. The tables (:mod:`segline.metrics.table`) count these
  cases, never drop them.

Speed: the distance transforms run on the union bounding box of both masks plus
a one-voxel margin, not on the whole volume. This is exact: every foreground voxel,
hence every surface voxel, lies inside the crop; a voxel just outside the crop is
background in both masks (or outside the array, also background), so the
surface test gives the same answer; and the Euclidean distance transform is a
global nearest-zero search (not a path inside the crop), so the nearest surface
voxel of the other mask, which is inside the crop, is found with the same
distance. ``scipy.ndimage.distance_transform_edt`` is used (float64, exact); the
``edt`` package is slightly faster but returns float32 (errors ~1e-5 mm).

Example:
    >>> import numpy as np
    >>> a = np.zeros((3, 10, 10), bool); a[1, 2, 2] = True
    >>> b = np.zeros((3, 10, 10), bool); b[1, 2, 5] = True
    >>> hd95(a, b, spacing=(5.0, 0.5, 0.5)), assd(a, b, spacing=(5.0, 0.5, 0.5))
    (1.5, 1.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from segline.metrics.overlap import as_mask_pair

__all__ = [
    "assd",
    "check_spacing",
    "hausdorff_distance",
    "hd95",
    "mean_surface_distance",
    "percentile_hausdorff",
    "surface",
    "surface_distances",
    "union_bbox",
]

Mode = Literal["pooled", "max"]


def check_spacing(spacing: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    """Voxel spacing in mm as a tuple of ``ndim`` positive finite floats.

    Args:
        spacing: one value per axis, (z, y, x) for 3D, or a single number (isotropic).
        ndim: number of array dimensions.

    Returns:
        The spacing as a tuple of floats.

    Raises:
        ValueError: wrong length, or a value that is not positive and finite.

    Example:
        >>> check_spacing((5, 0.8, 0.8), 3)
        (5.0, 0.8, 0.8)
    """
    values = np.asarray(spacing, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(ndim, float(values))
    if values.shape != (ndim,):
        raise ValueError(f"spacing {tuple(np.ravel(spacing))} does not match {ndim} dimensions")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"spacing must be positive and finite, got {tuple(values.tolist())}")
    return tuple(float(v) for v in values)


def union_bbox(*masks: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """Bounding box of the union of boolean masks, grown by ``margin`` voxels.

    The box is clipped to the array. Axes are narrowed one after another, so each
    reduction only reads the part of the volume already known to hold foreground.

    Args:
        *masks: boolean arrays of one shape.
        margin: voxels added on every side (before clipping).

    Returns:
        One ``slice`` per axis, or ``None`` when every mask is empty.

    Example:
        >>> m = np.zeros((5, 6), bool); m[2, 3] = True
        >>> union_bbox(m, margin=1)
        (slice(1, 4, None), slice(2, 5, None))
    """
    if not masks:
        raise ValueError("union_bbox needs at least one mask")
    ndim = masks[0].ndim
    views = list(masks)
    box: list[slice] = [slice(None)] * ndim
    for axis in range(ndim):
        others = tuple(i for i in range(ndim) if i != axis)
        hit = np.zeros(views[0].shape[axis], dtype=bool)
        for v in views:
            hit |= np.any(v, axis=others) if others else v
        idx = np.flatnonzero(hit)
        if idx.size == 0:
            return None
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        index = [slice(None)] * ndim
        index[axis] = slice(lo, hi)
        views = [v[tuple(index)] for v in views]
        size = masks[0].shape[axis]
        box[axis] = slice(max(lo - margin, 0), min(hi + margin, size))
    return tuple(box)


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a mask: foreground with a background face neighbour.

    Face neighbours are the 2·ndim voxels one step along an axis (6 in 3D, 4 in 2D);
    outside the array counts as background.

    Args:
        mask: boolean (or non-zero = foreground) array.

    Returns:
        Boolean array of the same shape, True on surface voxels.

    Example:
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> int(surface(m).sum())  # the 3×3 square minus its centre
        8
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        m = m != 0
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    core = tuple(slice(1, -1) for _ in range(m.ndim))
    interior = m.copy()
    for axis in range(m.ndim):
        for lo, hi in ((0, -2), (2, None)):
            index = list(core)
            index[axis] = slice(lo, hi)
            interior &= padded[tuple(index)]
    return m & ~interior


def _distance_to(target: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance in mm from every voxel to the nearest True voxel of ``target``.

    scipy is imported here, not at module level: the plots and the report import this
    package for :func:`~segline.metrics.overlap.dice` and should start without it.
    """
    from scipy import ndimage

    return ndimage.distance_transform_edt(~target, sampling=spacing)


def surface_distances(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | float,
    *,
    crop: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances pred→gt and gt→pred, in mm.

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        gt: reference mask, same shape.
        spacing: voxel size in mm per axis, (z, y, x) for 3D.
        crop: compute on the union bounding box + 1 voxel (exact, much faster);
            ``False`` uses the whole array (for checking).

    Returns:
        ``(d_pred_to_gt, d_gt_to_pred)``: float64 arrays, one value per surface
        voxel of pred (resp. gt), in ``np.nonzero`` order. An empty mask has no
        surface voxels (empty array); distances *to* an empty mask are ``inf``.

    Example:
        >>> a = np.zeros((1, 4, 4), bool); a[0, 1, 1] = True
        >>> b = np.zeros((1, 4, 4), bool); b[0, 1, 1:3] = True
        >>> [d.tolist() for d in surface_distances(a, b, (1.0, 1.0, 2.0))]
        [[0.0], [0.0, 2.0]]
    """
    p, g = as_mask_pair(pred, gt)
    sp = check_spacing(spacing, p.ndim)
    if crop:
        box = union_bbox(p, g, margin=1)
        if box is None:
            return np.zeros(0), np.zeros(0)
        p, g = p[box], g[box]
    s_p, s_g = surface(p), surface(g)
    has_p, has_g = bool(s_p.any()), bool(s_g.any())
    d_pg = _distance_to(s_g, sp)[s_p] if has_g else np.full(int(s_p.sum()), np.inf)
    d_gp = _distance_to(s_p, sp)[s_g] if has_p else np.full(int(s_g.sum()), np.inf)
    return d_pg.astype(np.float64, copy=False), d_gp.astype(np.float64, copy=False)


def percentile_hausdorff(
    d_pg: np.ndarray, d_gp: np.ndarray, q: float = 95.0, mode: Mode = "pooled"
) -> float:
    """Percentile Hausdorff distance from two directed distance arrays.

    Args:
        d_pg: distances pred surface → gt surface (from :func:`surface_distances`).
        d_gp: distances gt surface → pred surface.
        q: percentile in [0, 100]; 100 gives the classic Hausdorff distance.
        mode: ``"pooled"`` (percentile of both sets concatenated, medpy) or
            ``"max"`` (larger of the two directed percentiles, MONAI).

    Returns:
        Distance in mm; 0.0 when both sets are empty (both masks empty); NaN when
        exactly one is empty (one mask empty).

    Example:
        >>> percentile_hausdorff(np.array([0.0, 1.0]), np.array([3.0]), q=100)
        3.0
    """
    if mode not in ("pooled", "max"):
        raise ValueError(f"mode must be 'pooled' or 'max', got {mode!r}")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    if d_pg.size == 0 and d_gp.size == 0:
        return 0.0
    if d_pg.size == 0 or d_gp.size == 0:
        return float("nan")
    if mode == "pooled":
        return float(np.percentile(np.concatenate([d_pg, d_gp]), q))
    return float(max(np.percentile(d_pg, q), np.percentile(d_gp, q)))


def mean_surface_distance(d_pg: np.ndarray, d_gp: np.ndarray) -> float:
    """Average symmetric surface distance (pooled mean) from two directed arrays.

    Args:
        d_pg: distances pred surface → gt surface.
        d_gp: distances gt surface → pred surface.

    Returns:
        Mean in mm of the concatenated distances; 0.0 when both are empty, NaN when
        exactly one is empty.

    Example:
        >>> mean_surface_distance(np.array([0.0, 1.0]), np.array([2.0]))
        1.0
    """
    if d_pg.size == 0 and d_gp.size == 0:
        return 0.0
    if d_pg.size == 0 or d_gp.size == 0:
        return float("nan")
    return float((d_pg.sum() + d_gp.sum()) / (d_pg.size + d_gp.size))


def hausdorff_distance(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | float,
    q: float = 100.0,
    *,
    mode: Mode = "pooled",
) -> float:
    """Percentile Hausdorff distance in mm (``q=100``: the classic Hausdorff distance).

    Args:
        pred: predicted mask (non-zero = foreground).
        gt: reference mask, same shape.
        spacing: voxel size in mm per axis, (z, y, x) for 3D.
        q: percentile in [0, 100].
        mode: ``"pooled"`` (default, medpy) or ``"max"`` (MONAI); see module doc.

    Returns:
        Distance in mm; 0.0 if both masks are empty, NaN if exactly one is.

    Example:
        >>> a = np.zeros((4, 4), bool); a[0, 0] = True
        >>> hausdorff_distance(a, a.T[::-1], spacing=(1.0, 1.0))
        3.0
    """
    d_pg, d_gp = surface_distances(pred, gt, spacing)
    return percentile_hausdorff(d_pg, d_gp, q, mode)


def hd95(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | float,
    *,
    mode: Mode = "pooled",
) -> float:
    """95th-percentile Hausdorff distance in mm (pooled symmetric by default).

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        gt: reference mask, same shape.
        spacing: voxel size in mm per axis, (z, y, x) for 3D.
        mode: ``"pooled"`` — 95th percentile of both directed distance sets
            concatenated (medpy); ``"max"`` — max of the two directed 95th
            percentiles (MONAI).

    Returns:
        HD95 in mm; 0.0 if both masks are empty, NaN if exactly one is.

    Example:
        >>> a = np.zeros((2, 6, 6), bool); a[0, 1:4, 1:4] = True
        >>> hd95(a, a, spacing=(5.0, 0.8, 0.8))
        0.0
    """
    return hausdorff_distance(pred, gt, spacing, 95.0, mode=mode)


def assd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | float) -> float:
    """Average symmetric surface distance in mm (mean of the pooled distances).

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        gt: reference mask, same shape.
        spacing: voxel size in mm per axis, (z, y, x) for 3D.

    Returns:
        ASSD in mm; 0.0 if both masks are empty, NaN if exactly one is.

    Example:
        >>> a = np.zeros((1, 3, 3), bool); a[0, 0, 0] = True
        >>> b = np.zeros((1, 3, 3), bool); b[0, 2, 0] = True
        >>> assd(a, b, spacing=(1.0, 0.5, 0.5))
        1.0
    """
    d_pg, d_gp = surface_distances(pred, gt, spacing)
    return mean_surface_distance(d_pg, d_gp)
