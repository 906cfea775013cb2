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

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "cldice": "cldice", "skeleton": "cldice", "topology_precision_sensitivity": "cldice",
    "dice": "overlap",
    "assd": "surface", "hausdorff_distance": "surface", "hd95": "surface",
    "mean_surface_distance": "surface", "percentile_hausdorff": "surface",
    "surface_distances": "surface",
    "METRICS": "table", "case_metrics": "table", "mean_foreground": "table",
    "summarise": "table",
}  # fmt: skip
"""Where each re-exported name lives. The names are imported on first access (PEP
562), so importing one metric module (e.g. the registry) never imports the others:
a stage's code dependencies, recorded from the modules it imported, then hold only
the metrics it computes."""

__all__ = sorted([*_HOME, "surface"])

# ``surface`` names both a submodule and its function: the function is bound here, as
# importing the submodule later would otherwise leave the module under that name.
from segline.metrics.surface import surface as surface  # noqa: E402


def __getattr__(name: str) -> Any:
    """The re-exported ``name``, imported from its module on first access."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
