"""A metric defined outside segline, plugged in through the ``segline.metrics`` entry
points (tests/test_metric_registry.py installs it as a dist-info on PYTHONPATH).

Volume ratio: min(|P|, |G|) / max(|P|, |G|) of the predicted and reference masks of a
class (voxel counts), 1.0 when both are empty; higher is better.
"""

from __future__ import annotations

import numpy as np

from segline.metrics.registry import Metric


def volume_ratio(pred: np.ndarray, gt: np.ndarray) -> float:
    """The ratio of the smaller to the larger voxel count of two masks."""
    a, b = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    return 1.0 if a == b == 0 else min(a, b) / max(a, b)


METRIC = Metric(
    "volume_ratio", "Volume ratio", True, "mask", function="toy_metric:volume_ratio",
    convention="- Volume ratio: |P| / |G| or its inverse, whichever is at most 1 (voxel\n"
    "  counts); 1 when both masks are empty.\n",
)
