"""EBP geometry: shell directions, the signed target, sampling on shells, the network
input, the shell iteration and its convergence.

A **shell** around a pivot ``p`` (a voxel, coordinates ``(z, y, x)`` in case-store
voxel units) is an ``H × W`` grid of radii ``D[i, j] >= 0`` (voxels) along the unit
directions of :func:`directions`; its **end points** are ``p + D[i, j] · u[i, j]``.
The shell is moved by a step ``Y`` (the network's output, or the signed target at the
end points for the oracle of :func:`target_step`), clipped to ``±STEP_CLIP`` voxels,
``D ← max(D + Y, 0)``, from ``D0`` for a fixed number of iterations; so a shell reaches
at most ``reach(iterations) = D0 + STEP_CLIP · iterations`` voxels (27 at 11).

The **signed target** (:func:`signed_target`) is positive inside the organ, negative
outside, ``±½`` on the voxels either side of its surface, so its zero level set lies
half-way between an inside surface voxel and its outside neighbour; an end point on
that level set needs no step any more.

Every torch function runs on the device of its inputs (float32); volumes are
``(C, Z, Y, X)`` as in the case store, and sampling is trilinear between voxel centres
(:func:`sample`).

Example:
    >>> u = directions(2, 4)
    >>> u.shape, [round(float(c), 4) for c in u[:, 0, 0]]
    ((2, 4, 3), [-0.3333, 0.3333])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from segline.preprocess.geometry import bounding_box

__all__ = [
    "D0",
    "INNER",
    "OFFSETS",
    "STEP_CLIP",
    "TARGET_CLIP",
    "TEST_ITERATIONS",
    "TRAIN_ITERATIONS",
    "converged",
    "directions",
    "end_points",
    "input_channels",
    "iterate",
    "pivot_grid",
    "reach",
    "sample",
    "shell_dice",
    "shell_inputs",
    "signed_target",
    "target_step",
    "update",
]

D0 = 5.0
"""Initial radius of every shell (voxels)."""
STEP_CLIP = 2.0
"""Largest move of a shell's radius in one iteration (voxels)."""
TARGET_CLIP = 10.0
"""The signed target is clipped to ±this (voxels)."""
TRAIN_ITERATIONS = 10
"""Iterations of the training states' shells."""
TEST_ITERATIONS = 11
"""Iterations of the shells at inference."""
OFFSETS = (-2, -1, 0, 1, 2)
"""Radius offsets (voxels) of the outer input layers, around the shell itself."""
INNER = 5
"""Inner input layers, at radii ``(i + 1) · D / 6`` for ``i = 0 .. INNER - 1``."""


def reach(iterations: int, d0: float = D0, step_clip: float = STEP_CLIP) -> float:
    """The largest radius (voxels) a shell can have after ``iterations`` steps from
    ``d0``: ``d0 + step_clip · iterations`` (27 at :data:`TEST_ITERATIONS`)."""
    return float(d0 + step_clip * iterations)


def directions(h: int, w: int) -> np.ndarray:
    """The ``(h, w, 3)`` float32 unit vectors ``(z, y, x)`` of the shell grid.

    Row ``i`` (0-based) has polar angle ``p_i = arccos(2 (i + 1) / (h + 1) - 1)`` (rows
    evenly spaced in ``cos p``, never at the poles), column ``j`` azimuth
    ``q_j = 2π j / w``; the vector is ``(cos p, sin p · sin q, sin p · cos q)``.
    """
    if h < 1 or w < 1:
        raise ValueError(f"directions: h and w must be >= 1, got {h}, {w}")
    cos_p = 2.0 * (np.arange(h, dtype=np.float64) + 1.0) / (h + 1.0) - 1.0
    sin_p = np.sqrt(np.clip(1.0 - cos_p * cos_p, 0.0, None))
    q = 2.0 * math.pi * np.arange(w, dtype=np.float64) / w
    out = np.empty((h, w, 3), np.float64)
    out[..., 0] = cos_p[:, None]
    out[..., 1] = sin_p[:, None] * np.sin(q)[None, :]
    out[..., 2] = sin_p[:, None] * np.cos(q)[None, :]
    return out.astype(np.float32)


def signed_target(mask: np.ndarray, clip: float = TARGET_CLIP) -> np.ndarray:
    """The signed target of a binary mask (float32, voxels, same shape).

    Inside: ``EDT(mask) - ½`` (distance to the nearest background voxel, minus ½);
    outside: ``-(EDT(~mask) - ½)``; so surface voxels read ``+½``, their outside
    neighbours ``-½``, and the map is clipped to ``±clip``. The transforms run on the
    mask's bounding box padded by ``ceil(clip) + 1`` voxels (everything farther away
    reads ``-clip`` anyway). An empty mask gives ``-clip`` everywhere, a full one
    ``+clip``.
    """
    mask = np.asarray(mask, bool)
    out = np.full(mask.shape, -clip, np.float32)
    if not mask.any():
        return out
    if mask.all():
        out.fill(clip)
        return out
    ranges = bounding_box(mask, margin=int(math.ceil(clip)) + 1)
    assert ranges is not None  # the mask is not empty
    box = tuple(slice(a, b) for a, b in ranges)
    m = mask[box]
    # The padded box holds background (else the mask would fill the volume), and the
    # nearest mask voxel of any voxel in it lies in the box: both transforms are exact.
    inside = ndimage.distance_transform_edt(m)
    outside = ndimage.distance_transform_edt(~m)
    val = np.where(m, inside - 0.5, -(outside - 0.5))
    out[box] = np.clip(val, -clip, clip).astype(np.float32)
    return out


def end_points(pivots: torch.Tensor, radii: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 3)`` end points ``p + D · u`` of shells ``radii (N, H, W)`` around
    ``pivots (N, 3)`` along ``dirs (H, W, 3)`` (voxel coordinates)."""
    return pivots[:, None, None, :] + radii[..., None] * dirs[None]


def sample(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Trilinear samples ``(C, ...)`` of ``volume (C, Z, Y, X)`` at ``points (..., 3)``
    (voxel coordinates ``(z, y, x)``, voxel centres at integers): ``grid_sample`` with
    ``align_corners=True``; points outside the volume read the nearest border value.
    Runs on ``volume``'s device."""
    c = volume.shape[0]
    lead = points.shape[:-1]
    pts = points.reshape(-1, 3).to(device=volume.device, dtype=volume.dtype)
    sizes = volume.shape[1:]
    cols = []
    for axis in (2, 1, 0):  # grid_sample wants (x, y, z)
        n = sizes[axis]
        if n > 1:
            cols.append(pts[:, axis] * (2.0 / (n - 1)) - 1.0)
        else:
            cols.append(torch.zeros_like(pts[:, axis]))
    grid = torch.stack(cols, dim=-1).view(1, -1, 1, 1, 3)
    out = F.grid_sample(
        volume[None], grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.view(c, *lead)


def input_channels(c: int) -> int:
    """Channels of :func:`shell_inputs` for an image of ``c`` channels: ``10 c + 6``."""
    return 10 * c + 6


def shell_inputs(
    image: torch.Tensor, pivots: torch.Tensor, radii: torch.Tensor, dirs: torch.Tensor
) -> torch.Tensor:
    """The network input ``(N, 10 C + 6, H, W)`` of shells ``radii (N, H, W)``.

    Channels, in order: ``5 C`` outer layers (per image channel ``c``, the samples at
    radius ``max(D + u, 0)`` for ``u`` in :data:`OFFSETS`), the 3 direction coordinates
    ``(z, y, x)``, ``5 C`` inner layers (per channel, radius ``(i + 1) · D / 6``,
    ``i = 0 .. 4``) and the 3 coordinates of ``D · u / reach(TEST_ITERATIONS)`` (the
    shell's current shape, in [-1, 1]).
    """
    c = image.shape[0]
    n, h, w = radii.shape
    radii = radii.to(image.dtype)
    dirs = dirs.to(device=image.device, dtype=image.dtype)
    pivots = pivots.to(device=image.device, dtype=image.dtype)
    outer = torch.stack([(radii + u).clamp_min(0.0) for u in OFFSETS], dim=1)
    inner = torch.stack([radii * ((i + 1) / (INNER + 1)) for i in range(INNER)], dim=1)
    layers = torch.cat([outer, inner], dim=1)  # (N, 10, H, W)
    pts = pivots[:, None, None, None, :] + layers[..., None] * dirs[None, None]
    s = sample(image, pts)  # (C, N, 10, H, W)
    k = len(OFFSETS)
    out_layers = s[:, :, :k].permute(1, 0, 2, 3, 4).reshape(n, c * k, h, w)
    in_layers = s[:, :, k:].permute(1, 0, 2, 3, 4).reshape(n, c * INNER, h, w)
    dir_ch = dirs.permute(2, 0, 1)[None].expand(n, 3, h, w)
    shape_ch = (radii[:, None] * dir_ch) / reach(TEST_ITERATIONS)
    return torch.cat([out_layers, dir_ch, in_layers, shape_ch], dim=1)


def target_step(
    target: torch.Tensor,
    pivots: torch.Tensor,
    radii: torch.Tensor,
    dirs: torch.Tensor,
    clip: float = STEP_CLIP,
) -> torch.Tensor:
    """The oracle step ``(N, H, W)``: the signed target ``(1, Z, Y, X)`` sampled at the
    shells' end points, clipped to ``±clip`` voxels."""
    dirs = dirs.to(device=target.device, dtype=target.dtype)
    pts = end_points(pivots.to(target.device, target.dtype), radii.to(target.dtype), dirs)
    return sample(target, pts)[0].clamp(-clip, clip)


def update(radii: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """One shell move: ``max(radii + step, 0)``."""
    return (radii + step).clamp_min(0.0)


def iterate(
    step_fn: Callable[[torch.Tensor], torch.Tensor], radii0: torch.Tensor, iterations: int
) -> torch.Tensor:
    """The history ``(iterations + 1, N, H, W)`` of shells moved by ``step_fn(radii)``
    from ``radii0`` (included as entry 0), under ``torch.no_grad`` (no gradient flows
    through the iteration)."""
    hist = [radii0]
    r = radii0
    with torch.no_grad():
        for _ in range(iterations):
            r = update(r, step_fn(r))
            hist.append(r)
    return torch.stack(hist)


def shell_dice(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dice of two shells as volumes over the last two dims:
    ``2 Σ min(a, b)³ / (Σ a³ + Σ b³)`` (each direction a cone of volume ∝ D³); 1 when
    both are empty. ``D = 1`` against ``D = 2`` gives 2/9."""
    num = 2.0 * torch.minimum(a, b).pow(3).sum(dim=(-2, -1))
    den = a.pow(3).sum(dim=(-2, -1)) + b.pow(3).sum(dim=(-2, -1))
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 1.0)


def converged(history: torch.Tensor, threshold: float = 0.99) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pivot the shell where the iteration froze: the first ``t >= 1`` with
    ``shell_dice(h[t], h[t-1]) >= threshold``, else the last; returns ``(radii (N, H,
    W), index (N,) long)``."""
    t1 = history.shape[0] - 1
    n = history.shape[1]
    if t1 < 1:
        return history[0], torch.zeros(n, dtype=torch.long, device=history.device)
    ok = shell_dice(history[1:], history[:-1]) >= threshold  # (T, N)
    first = torch.argmax(ok.to(torch.int8), dim=0) + 1
    index = torch.where(ok.any(dim=0), first, torch.full_like(first, t1)).long()
    radii = history[index, torch.arange(n, device=history.device)]
    return radii, index


def pivot_grid(
    lo: Sequence[int],
    hi: Sequence[int],
    shape: Sequence[int],
    step: Sequence[int] = (3, 6, 6),
    pad: int = 10,
) -> np.ndarray:
    """Pivots ``(N, 3)`` int64, sorted, on a grid over the box ``[lo, hi)`` padded by
    ``pad`` voxels: per axis ``lo - pad, lo - pad + step, ... <= hi - 1 + pad``, the
    values outside ``0 .. shape - 1`` dropped (so the grid keeps its phase at the
    volume's border). An empty box (``lo >= hi`` on some axis) has no pivots."""
    if any(int(b) <= int(a) for a, b in zip(lo, hi, strict=True)):
        return np.zeros((0, 3), np.int64)
    axes = []
    for a, b, n, s in zip(lo, hi, shape, step, strict=True):
        v = np.arange(int(a) - pad, int(b) - 1 + pad + 1, int(s), dtype=np.int64)
        axes.append(v[(v >= 0) & (v < int(n))])
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1).astype(np.int64)
