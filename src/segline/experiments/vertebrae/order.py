"""The order in which the iterative method finds vertebrae.

A vertebra's place in the order is its **centroid's z index** (mean z voxel index of
its voxels in the whole case, z along the spine), lowest first; equal centroids are
ordered by label value. "The first vertebra not in the memory" is the first one of
this order that the memory does not hold. The training sampler
(:mod:`segline.experiments.vertebrae.sampler`) puts exactly the vertebrae before the target
into the memory; the inference (:mod:`segline.experiments.vertebrae.inference`) sweeps from
z = 0 upwards, so the vertebra it meets first is the lowest one left, the same order.

Example:
    >>> import numpy as np
    >>> lab = np.zeros((6, 1, 1), np.uint8); lab[4:] = 7; lab[:2] = 9
    >>> vertebra_order(lab)
    [9, 7]
"""

from __future__ import annotations

import numpy as np

__all__ = ["vertebra_order"]


def vertebra_order(label: np.ndarray) -> list[int]:
    """Non-zero label values of ``label`` (Z, Y, X), ordered by centroid z, then value."""
    lab = np.asarray(label)
    z_of = np.broadcast_to(np.arange(lab.shape[0])[:, None, None], lab.shape)
    flat = lab.ravel().astype(np.int64)
    counts = np.bincount(flat)
    sums = np.bincount(flat, weights=z_of.ravel().astype(np.float64), minlength=counts.size)
    ids = [int(i) for i in np.nonzero(counts)[0] if i != 0]
    return sorted(ids, key=lambda i: (sums[i] / counts[i], i))
