"""Segmentation metrics: pure functions on arrays plus per-case tables.

* :mod:`~segline.metrics.overlap` — :func:`dice`
* :mod:`~segline.metrics.surface` — :func:`surface_distances`, :func:`hd95`,
  :func:`hausdorff_distance`, :func:`assd` (mm, conventions in the module doc)
* :mod:`~segline.metrics.cldice` — :func:`cldice`
* :mod:`~segline.metrics.table` — :func:`case_metrics`, :func:`summarise`,
  :func:`mean_foreground`
* :mod:`~segline.metrics.instances` — :func:`~segline.metrics.instances.match_instances`,
  :func:`~segline.metrics.instances.instance_rows`,
  :func:`~segline.metrics.instances.summary` (vertebrae as instances, matched by overlap)

Example:
    >>> import numpy as np
    >>> from segline.metrics import dice, hd95
    >>> m = np.zeros((2, 4, 4), bool); m[0, 1:3, 1:3] = True
    >>> dice(m, m), hd95(m, m, (5.0, 0.8, 0.8))
    (1.0, 0.0)
"""

from segline.metrics.cldice import cldice, skeleton, topology_precision_sensitivity
from segline.metrics.overlap import dice
from segline.metrics.surface import (
    assd,
    hausdorff_distance,
    hd95,
    mean_surface_distance,
    percentile_hausdorff,
    surface,
    surface_distances,
)
from segline.metrics.table import METRICS, case_metrics, mean_foreground, summarise

__all__ = [
    "METRICS",
    "assd",
    "case_metrics",
    "cldice",
    "dice",
    "hausdorff_distance",
    "hd95",
    "mean_foreground",
    "mean_surface_distance",
    "percentile_hausdorff",
    "skeleton",
    "summarise",
    "surface",
    "surface_distances",
    "topology_precision_sensitivity",
]
