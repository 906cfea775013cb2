"""EBP on a whole case: pivots in a box, their shells iterated, the mask rebuilt.

:func:`segment` puts pivots on a grid over the region of interest ``[lo, hi)`` padded
(:func:`segline.experiments.ebp.geometry.pivot_grid`), moves every pivot's shell from
``d0`` for ``iterations`` steps with a step function (the network, or the signed
target's oracle of :func:`target_step_fn`), in batches of ``batch`` pivots, takes each
shell where it froze (:func:`segline.experiments.ebp.geometry.converged`), drops empty
shells and those outside the largest group
(:func:`segline.experiments.ebp.shells.keep_pivots`) and rebuilds the mask by the vote
(:func:`segline.experiments.ebp.vote.reconstruct`, reach ``d0 + step_clip ·
iterations``). Units: voxels of the case store, coordinates ``(z, y, x)``.

Example (the oracle on a voxel ball of radius 6):
    >>> import numpy as np, torch
    >>> from segline.experiments.ebp.geometry import directions, signed_target
    >>> z, y, x = np.ogrid[:24, :24, :24]
    >>> ball = (z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= 36
    >>> target = torch.from_numpy(signed_target(ball))[None]
    >>> cfg = ShellConfig(h=16, w=16)
    >>> step = target_step_fn(target, directions(16, 16), cfg.step_clip)
    >>> mask, stats = segment(step, ball.shape, (6, 6, 6), (19, 19, 19), cfg, "cpu")
    >>> bool(2 * (mask & ball).sum() / (mask.sum() + ball.sum()) > 0.97)
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from segline.experiments.ebp.geometry import (
    D0,
    STEP_CLIP,
    TEST_ITERATIONS,
    converged,
    iterate,
    pivot_grid,
    reach,
    target_step,
)
from segline.experiments.ebp.shells import keep_pivots
from segline.experiments.ebp.vote import reconstruct

__all__ = ["ShellConfig", "StepFn", "segment", "target_step_fn"]

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``step_fn(pivots (n, 3), radii (n, H, W)) -> step (n, H, W)`` (voxels; float32 on
the device)."""


@dataclass
class ShellConfig:
    """How :func:`segment` places, moves and votes shells.

    Attributes:
        h, w: the direction grid (rows of polar angle, columns of azimuth).
        d0: initial radius (voxels).
        step_clip: largest radius move per iteration (voxels).
        iterations: shell iterations.
        converge: shell Dice between two iterations at which a shell counts as frozen.
        pivot_step: pivot grid spacing (z, y, x) in voxels.
        pad: the pivot grid extends this many voxels beyond the box.
        empty_radius, empty_frac: a shell with at least ``empty_frac`` of its radii
            below ``empty_radius`` voxels is empty (dropped).
        tau: the vote's share threshold.
        batch: pivots per step-function call.
    """

    h: int = 16
    w: int = 16
    d0: float = D0
    step_clip: float = STEP_CLIP
    iterations: int = TEST_ITERATIONS
    converge: float = 0.99
    pivot_step: tuple[int, int, int] = (3, 6, 6)
    pad: int = 10
    empty_radius: float = 1.0
    empty_frac: float = 0.5
    tau: float = 0.5
    batch: int = 512


def target_step_fn(
    target: torch.Tensor, dirs: np.ndarray | torch.Tensor, clip: float = STEP_CLIP
) -> StepFn:
    """The oracle step function: the signed target ``(1, Z, Y, X)`` (on its device)
    sampled at the shells' end points along ``dirs (H, W, 3)``, clipped to ``±clip``
    (:func:`segline.experiments.ebp.geometry.target_step`)."""
    d = torch.as_tensor(np.asarray(dirs) if not torch.is_tensor(dirs) else dirs)
    d = d.to(device=target.device, dtype=target.dtype)

    def step(pivots: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
        return target_step(target, pivots, radii, d, clip)

    return step


def segment(
    step_fn: StepFn,
    shape: Sequence[int],
    lo: Sequence[int],
    hi: Sequence[int],
    cfg: ShellConfig,
    device: torch.device | str,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The organ mask ``(Z, Y, X)`` bool of a case of ``shape`` from pivots in the box
    ``[lo, hi)`` (voxels; empty when ``lo >= hi`` on some axis), and stats: ``pivots``,
    ``kept`` (pivots in the vote), ``mean_iteration`` (mean converged iteration over
    all pivots; NaN without pivots), ``shell_seconds``, ``reconstruction_seconds``."""
    shape = tuple(int(s) for s in shape)
    device = torch.device(device)
    stats: dict[str, Any] = {
        "pivots": 0,
        "kept": 0,
        "mean_iteration": float("nan"),
        "shell_seconds": 0.0,
        "reconstruction_seconds": 0.0,
    }
    pivots = pivot_grid(lo, hi, shape, cfg.pivot_step, cfg.pad)
    n = pivots.shape[0]
    stats["pivots"] = int(n)
    if n == 0:
        return np.zeros(shape, bool), stats

    t0 = time.perf_counter()
    radii = np.empty((n, cfg.h, cfg.w), np.float32)
    index = np.empty(n, np.int64)
    for s in range(0, n, cfg.batch):
        p = torch.as_tensor(pivots[s : s + cfg.batch], dtype=torch.float32, device=device)
        r0 = torch.full((p.shape[0], cfg.h, cfg.w), float(cfg.d0), device=device)
        hist = iterate(lambda r, p=p: step_fn(p, r), r0, cfg.iterations)
        r, idx = converged(hist, cfg.converge)
        radii[s : s + cfg.batch] = r.float().cpu().numpy()
        index[s : s + cfg.batch] = idx.cpu().numpy()
    stats["shell_seconds"] = time.perf_counter() - t0
    stats["mean_iteration"] = float(index.mean())

    t0 = time.perf_counter()
    keep = keep_pivots(pivots, radii, cfg.empty_radius, cfg.empty_frac)
    stats["kept"] = int(keep.sum())
    far = reach(cfg.iterations, cfg.d0, cfg.step_clip)
    mask = reconstruct(shape, pivots[keep], radii[keep], cfg.tau, far)
    stats["reconstruction_seconds"] = time.perf_counter() - t0
    return mask, stats
