"""Voxel-wise precision and recall of a predicted mask (ISLES-style reporting).

* ``precision`` (positive predictive value) = |P ∩ G| / |P|: the share of predicted
  voxels that are in the reference;
* ``recall`` (sensitivity) = |P ∩ G| / |G|: the share of reference voxels found.

Empty masks, in line with Dice (README "Metrics and conventions"): both masks empty →
1.0 (nothing to find, nothing wrongly predicted). A ratio over an empty mask is
undefined: ``precision`` of an empty prediction and ``recall`` of an empty reference
are NaN (counted as undefined by the report, never averaged away); the other one of
the pair is then 0.0.

These metrics are computed by the evaluation stage only when asked for (make
``EVAL_METRICS``); no training imports this module, so changing it re-evaluates and
never retrains.

Example:
    >>> import numpy as np
    >>> p = np.array([1, 1, 0, 0]); g = np.array([1, 0, 1, 1])
    >>> precision(p, g), round(recall(p, g), 4)
    (0.5, 0.3333)
    >>> precision(np.zeros(3), np.ones(3)), recall(np.zeros(3), np.ones(3))
    (nan, 0.0)
"""

from __future__ import annotations

import numpy as np

from segline.metrics.overlap import as_mask_pair

__all__ = ["precision", "recall"]


def _ratio(pred: np.ndarray, gt: np.ndarray, over_pred: bool) -> float:
    p, g = as_mask_pair(pred, gt)
    n_p, n_g = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    if n_p + n_g == 0:
        return 1.0
    denominator = n_p if over_pred else n_g
    if denominator == 0:
        return float("nan")
    return int(np.count_nonzero(p & g)) / denominator


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P ∩ G| / |P|; 1.0 when both are empty, NaN when only P is (module docstring)."""
    return _ratio(pred, gt, over_pred=True)


def recall(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P ∩ G| / |G|; 1.0 when both are empty, NaN when only G is (module docstring)."""
    return _ratio(pred, gt, over_pred=False)
