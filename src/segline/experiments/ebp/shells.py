"""Which converged shells take part in the reconstruction.

A shell whose radii are mostly (``frac``) below ``min_radius`` voxels found no organ
around its pivot (the pivot lies outside, the shell shrank): it is **empty** and
dropped. The others are grouped: pivots ``a`` and ``b`` are **related** when ``b``
lies inside ``a``'s shell (``|b - a| <= D_a`` along the grid direction nearest to
``b - a``, :func:`nearest_direction`) or ``a`` inside ``b``'s; the connected components
of that relation are the groups, and only the largest is kept (shells that latched
onto another structure form a separate group).

Example:
    >>> i, j = nearest_direction(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 16, 16)
    >>> i.tolist(), j.tolist()
    ([15, 8], [0, 4])
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

__all__ = ["empty_shells", "keep_pivots", "nearest_direction", "pivot_groups"]


def nearest_direction(offsets: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell ``(i, j)`` (int64 arrays of shape ``offsets.shape[:-1]``) nearest to
    each offset ``(..., 3)`` ``(z, y, x)`` in ``(cos p, q)`` of
    :func:`segline.experiments.ebp.geometry.directions`:
    ``i = clip(round((cos p + 1)(h + 1)/2 - 1), 0, h - 1)``,
    ``j = round(q w / 2π) mod w`` (halves rounded up). A zero offset has ``cos p = 0``,
    ``q = 0``."""
    o = np.asarray(offsets, np.float64)
    norm = np.sqrt(np.sum(o * o, axis=-1))
    cos_p = np.divide(o[..., 0], norm, out=np.zeros_like(norm), where=norm > 0)
    q = np.mod(np.arctan2(o[..., 1], o[..., 2]), 2.0 * math.pi)
    i = np.floor((cos_p + 1.0) * (h + 1) / 2.0 - 1.0 + 0.5).astype(np.int64)
    i = np.clip(i, 0, h - 1)
    j = np.mod(np.floor(q * w / (2.0 * math.pi) + 0.5).astype(np.int64), w)
    return i, j


def empty_shells(radii: np.ndarray, min_radius: float = 1.0, frac: float = 0.5) -> np.ndarray:
    """``(N,)`` bool: True where at least ``frac`` of a shell's radii ``(N, H, W)`` are
    below ``min_radius`` voxels."""
    r = np.asarray(radii)
    if r.shape[0] == 0:
        return np.zeros(0, bool)
    return np.mean(r < min_radius, axis=(1, 2)) >= frac


def _related_pairs(pivots: np.ndarray, radii: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pairs ``(a, b)`` (a < b) of related pivots, as an ``(M, 2)`` int64 array."""
    n = pivots.shape[0]
    rmax = float(np.max(radii)) if n else 0.0
    if n < 2:
        return np.zeros((0, 2), np.int64)
    tree = cKDTree(pivots.astype(np.float64))
    pairs = tree.query_pairs(r=rmax, output_type="ndarray").astype(np.int64)
    if pairs.size == 0:
        return np.zeros((0, 2), np.int64)
    keep = np.zeros(len(pairs), bool)
    flat = radii.reshape(n, h * w)
    chunk = 1 << 20
    for s in range(0, len(pairs), chunk):
        a, b = pairs[s : s + chunk, 0], pairs[s : s + chunk, 1]
        d = (pivots[b] - pivots[a]).astype(np.float64)
        dist = np.sqrt(np.sum(d * d, axis=1))
        i, j = nearest_direction(d, h, w)
        b_in_a = dist <= flat[a, i * w + j]
        i, j = nearest_direction(-d, h, w)
        a_in_b = dist <= flat[b, i * w + j]
        keep[s : s + chunk] = b_in_a | a_in_b
    return pairs[keep]


def pivot_groups(pivots: np.ndarray, radii: np.ndarray, h: int, w: int) -> np.ndarray:
    """Group labels ``(N,)`` int64 of pivots ``(N, 3)`` with shells ``radii (N, H, W)``:
    connected components of the "inside the other's shell" relation, numbered by
    decreasing size (label 0 = the largest; ties by first pivot)."""
    pivots = np.asarray(pivots)
    radii = np.asarray(radii, np.float64)
    n = pivots.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = _related_pairs(pivots, radii, h, w)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    )
    _, comp = csgraph.connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    first = np.full(len(sizes), n, np.int64)
    np.minimum.at(first, comp, np.arange(n))
    order = np.lexsort((first, -sizes))  # largest first, then by first pivot
    rank = np.empty(len(sizes), np.int64)
    rank[order] = np.arange(len(sizes))
    return rank[comp]


def keep_pivots(
    pivots: np.ndarray, radii: np.ndarray, min_radius: float = 1.0, frac: float = 0.5
) -> np.ndarray:
    """``(N,)`` bool: the pivots whose shells are not empty (:func:`empty_shells`) and
    lie in the largest group (:func:`pivot_groups`) of the non-empty ones (an empty
    shell joins nothing: it could only bridge two groups by its pivot)."""
    radii = np.asarray(radii)
    keep = ~empty_shells(radii, min_radius, frac)
    idx = np.flatnonzero(keep)
    if idx.size:
        _, h, w = radii.shape
        labels = pivot_groups(np.asarray(pivots)[idx], radii[idx], h, w)
        keep[idx[labels != 0]] = False
    return keep
