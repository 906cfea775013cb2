"""Centreline Dice (clDice, Shit et al., CVPR 2021) for tubular structures.

With S(·) the skeleton (centreline) of a mask:

* topology precision ``Tprec = |S(pred) ∩ gt| / |S(pred)|``
* topology sensitivity ``Tsens = |S(gt) ∩ pred| / |S(gt)|``
* ``clDice = 2·Tprec·Tsens / (Tprec + Tsens)`` (0 when both are 0).

Skeletons come from :func:`skimage.morphology.skeletonize` (Zhang's method in 2D,
Lee's in 3D, scikit-image defaults). A very small object can thin away completely
(Lee's method returns an empty skeleton for a 2×2×2 cube); a non-empty mask whose
skeleton is empty is taken as its own skeleton, so clDice stays defined.

Conventions: both masks empty → 1.0; exactly one empty → 0.0 (as Dice).

Skeletonisation runs on the union bounding box of the two masks plus a one-voxel
background margin: thinning only looks at the object and its immediate
neighbourhood, so the result equals the uncropped one (tested).

Example:
    >>> import numpy as np
    >>> line = np.zeros((5, 12), bool); line[2, 1:11] = True
    >>> half = np.zeros_like(line); half[2, 1:6] = True
    >>> round(cldice(line, half), 4)  # Tprec = 5/10, Tsens = 1
    0.6667
"""

from __future__ import annotations

import numpy as np

from segline.metrics.overlap import as_mask_pair
from segline.metrics.surface import union_bbox

__all__ = ["cldice", "skeleton", "topology_precision_sensitivity"]


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Skeleton of a 2D or 3D mask (the mask itself if it thins away entirely).

    Args:
        mask: boolean (or non-zero = foreground) 2D or 3D array.

    Returns:
        Boolean array of the same shape.

    Example:
        >>> line = np.zeros((3, 7), bool); line[1, 1:6] = True
        >>> bool((skeleton(line) == line).all())  # a 1-voxel line is its own skeleton
        True
        >>> int(skeleton(np.ones((2, 2, 2), bool)).sum())  # thins away: the mask itself
        8
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        m = m != 0
    if m.ndim not in (2, 3):
        raise ValueError(f"skeleton needs a 2D or 3D mask, got {m.ndim}D")
    if not m.any():
        return np.zeros_like(m)
    from skimage.morphology import skeletonize  # here: importing the package stays light

    s = skeletonize(m).astype(bool, copy=False)
    return s if s.any() else m.copy()


def topology_precision_sensitivity(
    pred: np.ndarray, gt: np.ndarray, *, crop: bool = True
) -> tuple[float, float]:
    """Topology precision and sensitivity of clDice.

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        gt: reference mask, same shape.
        crop: skeletonise inside the union bounding box + 1 voxel (same result,
            faster); ``False`` uses the whole array.

    Returns:
        ``(Tprec, Tsens)``; a value is NaN when its skeleton is empty (that mask
        is empty).

    Example:
        >>> a = np.zeros((3, 8), bool); a[1, 1:7] = True
        >>> topology_precision_sensitivity(a, a)
        (1.0, 1.0)
    """
    p, g = as_mask_pair(pred, gt)
    if crop:
        box = union_bbox(p, g, margin=1)
        if box is None:
            return float("nan"), float("nan")
        p, g = p[box], g[box]
    s_p, s_g = skeleton(p), skeleton(g)
    n_sp, n_sg = int(s_p.sum()), int(s_g.sum())
    tprec = int((s_p & g).sum()) / n_sp if n_sp else float("nan")
    tsens = int((s_g & p).sum()) / n_sg if n_sg else float("nan")
    return tprec, tsens


def cldice(pred: np.ndarray, gt: np.ndarray, *, crop: bool = True) -> float:
    """Centreline Dice of two masks.

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        gt: reference mask, same shape.
        crop: see :func:`topology_precision_sensitivity`.

    Returns:
        clDice in [0, 1]; 1.0 if both masks are empty, 0.0 if exactly one is.

    Example:
        >>> a = np.zeros((3, 8), bool); a[1, 1:7] = True
        >>> cldice(a, a), cldice(a, np.zeros_like(a))
        (1.0, 0.0)
    """
    p, g = as_mask_pair(pred, gt)
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 1.0
    if not has_p or not has_g:
        return 0.0
    tprec, tsens = topology_precision_sensitivity(p, g, crop=crop)
    if tprec + tsens == 0:
        return 0.0
    return 2.0 * tprec * tsens / (tprec + tsens)
