"""Volume overlap: the Dice coefficient of two binary masks.

Any array works as a mask: non-zero means foreground. Masks may be 2D or 3D
(or any dimension); they must have the same shape.

Example:
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[:1] = True
    >>> round(dice(a, b), 4)
    0.6667
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_mask_pair", "dice"]


def as_mask_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as boolean masks (non-zero = foreground), checking their shapes match.

    Args:
        pred: predicted mask, any numeric or boolean dtype.
        gt: reference mask, same shape as ``pred``.

    Returns:
        ``(pred, gt)`` as ``bool`` arrays (no copy when already boolean).

    Raises:
        ValueError: the shapes differ.

    Example:
        >>> p, g = as_mask_pair(np.array([0, 2]), np.array([1, 0]))
        >>> p.tolist(), g.tolist()
        ([False, True], [True, False])
    """
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: pred {p.shape} vs gt {g.shape}")
    if p.dtype != np.bool_:
        p = p != 0
    if g.dtype != np.bool_:
        g = g != 0
    return p, g


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2 |P ∩ G| / (|P| + |G|)`` of two masks.

    Conventions (the same in every metric, README "Metrics and conventions"): both
    masks empty → ``1.0`` (identical, nothing to miss); exactly one empty → ``0.0``.

    Args:
        pred: predicted mask (non-zero = foreground).
        gt: reference mask, same shape.

    Returns:
        Dice in [0, 1].

    Example:
        >>> dice(np.zeros((2, 2)), np.zeros((2, 2)))
        1.0
        >>> dice(np.eye(2), np.ones((2, 2)))
        0.6666666666666666
    """
    p, g = as_mask_pair(pred, gt)
    n_p = int(np.count_nonzero(p))
    n_g = int(np.count_nonzero(g))
    if n_p + n_g == 0:
        return 1.0
    inter = int(np.count_nonzero(p & g))
    return 2.0 * inter / (n_p + n_g)
