"""EBP training states generated on the fly: no stored dataset.

The published code writes every (pivot, iteration) state of every training case to
disk (over 100 GB for the spleen). Here a state is drawn when the loader asks for it,
from the training cases held in memory cropped around their organ, and is a pure
function of ``(seed, epoch, item)`` (:func:`item_rng`): any number of loader workers,
and a resumed run, give the same batches.

One item (:meth:`ShellStates.__getitem__`):

1. **pivot**: a voxel of the case's pivot grid (:func:`segline.experiments.ebp.geometry.pivot_grid`,
   step 3 (z), 6 (y, x) voxels, in the organ's bounding box padded by 10 voxels),
   inside or outside the organ. ``balance`` = 0.5 gives exactly half inside pivots
   (item ``i`` is inside when ``floor((i+1)·b) > floor(i·b)``); ``balance=None`` draws
   from all pivots as they come (about 6 % inside on the toy spleen, where every
   inside shell of a learned model collapsed to 0: bench/RESULTS.md);
2. **shell** (radii D, H × W): with probability ``1 - perturb`` a state of the
   target-driven trajectory (D0 = 5, then ``max(D + Y, 0)`` with Y the clipped target
   at the end points, :func:`segline.experiments.ebp.geometry.target_step`) after
   0..TRAIN_ITERATIONS-1 steps; otherwise one of four perturbed states, equally often:
   D = 0, a sphere of radius U(0, reach), a trajectory state scaled by U(0.5, 1.5), or a
   trajectory state plus N(0, 1) voxel noise per direction. The trajectory alone shows
   the network only shells that are already right; the perturbed ones teach it to
   recover from its own errors, as it must when its own steps drive the shell;
3. **target**: Y at the shell's end points (clipped to ±2 voxels); **input**: the
   16-channel image layers of the shell (:func:`segline.experiments.ebp.geometry.shell_inputs`).

Memory: each case is kept as the crop of its image and signed target around the padded
box plus the farthest a sampled point can lie (reach + 2 voxels), float32: about 46 MB
per real-size spleen case (a 224 × 224 × 114 crop), never the whole volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from segline.casestore import CaseStore
from segline.experiments.ebp import geometry as geo
from segline.preprocess.geometry import bounding_box

__all__ = ["PERTURBATIONS", "CaseCrop", "ShellStates", "crop_case", "inside_item", "item_rng"]

PERTURBATIONS = ("zero", "sphere", "scaled", "noised")
"""The perturbed states, drawn equally often (module docstring)."""
NOISE_SD = 1.0
"""Standard deviation (voxels) of the noise added per direction to a noised state."""
SCALE_RANGE = (0.5, 1.5)
"""Range of the factor of a scaled state."""


def item_rng(seed: int, epoch: int, item: int) -> np.random.Generator:
    """The random stream of one item: a function of (seed, epoch, item) only."""
    return np.random.default_rng([seed, epoch, item, 0xEB9])


def inside_item(item: int, balance: float) -> bool:
    """Whether ``item`` draws an inside pivot: exactly ``floor(n·balance)`` of the
    first ``n`` items do, spread evenly.

    Example:
        >>> [inside_item(i, 0.5) for i in range(4)]
        [False, True, False, True]
    """
    return math.floor((item + 1) * balance) > math.floor(item * balance)


@dataclass
class CaseCrop:
    """One case held for sampling.

    Attributes:
        image: (C, z, y, x) float32 image crop.
        target: (1, z, y, x) float32 signed target crop (voxels, positive inside).
        inside: (n, 3) pivots inside the organ, crop coordinates (z, y, x voxels).
        outside: (m, 3) pivots outside.
    """

    image: torch.Tensor
    target: torch.Tensor
    inside: np.ndarray
    outside: np.ndarray


def crop_case(
    store: CaseStore, case: str, step: tuple[int, int, int], pad: int, margin: int
) -> CaseCrop | None:
    """The case's image and signed target cropped to the organ's box padded by
    ``pad + margin`` voxels, and its pivots split by the label; None when the case
    has no foreground (nothing to learn a boundary from)."""
    label = np.asarray(store.label(case)) > 0
    ranges = bounding_box(label)
    if ranges is None:
        return None
    shape = label.shape
    lo = np.array([a for a, _ in ranges])
    hi = np.array([b for _, b in ranges])
    pivots = geo.pivot_grid(lo, hi, shape, step=step, pad=pad)
    c0 = np.maximum(lo - pad - margin, 0)
    c1 = np.minimum(hi + pad + margin, shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(c0, c1, strict=True))
    mask = label[sl]
    image = np.array(np.asarray(store.image(case))[(slice(None), *sl)], dtype=np.float32)
    target = geo.signed_target(mask)
    local = pivots - c0
    is_in = mask[tuple(local.T)]
    return CaseCrop(
        image=torch.from_numpy(np.ascontiguousarray(image)),
        target=torch.from_numpy(np.ascontiguousarray(target[None], dtype=np.float32)),
        inside=local[is_in],
        outside=local[~is_in],
    )


class ShellStates(Dataset):
    """``samples`` training states per epoch from ``cases`` (module docstring).

    Args:
        store: the case store.
        cases: the case ids sampled (those without foreground are left out).
        h, w: the direction grid.
        samples: states per epoch.
        seed: the training's seed.
        balance: share of inside pivots (exact), or None for the natural share.
        perturb: probability of a perturbed state.
        step, pad: the pivot grid (voxels).
    """

    def __init__(
        self,
        store: CaseStore,
        cases: list[str],
        h: int,
        w: int,
        samples: int,
        seed: int,
        *,
        balance: float | None = 0.5,
        perturb: float = 0.5,
        step: tuple[int, int, int] = (3, 6, 6),
        pad: int = 10,
    ) -> None:
        self.h, self.w = h, w
        self.samples = samples
        self.seed = seed
        self.balance = balance
        self.perturb = perturb
        self.epoch = 0
        self.reach = geo.reach(geo.TEST_ITERATIONS)
        margin = int(math.ceil(self.reach)) + len(geo.OFFSETS)
        crops = [crop_case(store, c, step, pad, margin) for c in cases]
        self.crops = [c for c in crops if c is not None]
        if not self.crops:
            raise ValueError("no training case has foreground: EBP has no boundary to learn")
        self.with_inside = [i for i, c in enumerate(self.crops) if len(c.inside)]
        self.with_outside = [i for i, c in enumerate(self.crops) if len(c.outside)]
        self.dirs = torch.from_numpy(geo.directions(h, w))
        self.channels = geo.input_channels(int(self.crops[0].image.shape[0]))

    def set_epoch(self, epoch: int) -> None:
        """Draw the states of 0-based ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples

    def _pivot(self, item: int, rng: np.random.Generator) -> tuple[CaseCrop, np.ndarray]:
        if self.balance is None:
            crop = self.crops[int(rng.integers(len(self.crops)))]
            pool = np.concatenate([crop.inside, crop.outside])
        else:
            inside = inside_item(item, self.balance) and bool(self.with_inside)
            if not inside and not self.with_outside:
                inside = True
            ids = self.with_inside if inside else self.with_outside
            crop = self.crops[ids[int(rng.integers(len(ids)))]]
            pool = crop.inside if inside else crop.outside
        return crop, pool[int(rng.integers(len(pool)))]

    def _trajectory(
        self, crop: CaseCrop, pivot: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """The target-driven radii after ``steps`` steps from D0: (1, H, W)."""
        radii = torch.full((1, self.h, self.w), geo.D0)
        for _ in range(steps):
            radii = geo.update(radii, geo.target_step(crop.target, pivot, radii, self.dirs))
        return radii

    def state(self, item: int) -> tuple[CaseCrop, torch.Tensor, torch.Tensor, str]:
        """(crop, pivot (1, 3), radii (1, H, W), kind) of ``item`` in this epoch."""
        rng = item_rng(self.seed, self.epoch, item)
        crop, p = self._pivot(item, rng)
        pivot = torch.from_numpy(np.asarray(p, dtype=np.float32)[None])
        steps = int(rng.integers(geo.TRAIN_ITERATIONS))
        kind = "trajectory"
        if rng.random() < self.perturb:
            kind = PERTURBATIONS[int(rng.integers(len(PERTURBATIONS)))]
        if kind == "zero":
            radii = torch.zeros((1, self.h, self.w))
        elif kind == "sphere":
            radii = torch.full((1, self.h, self.w), float(rng.uniform(0.0, self.reach)))
        else:
            radii = self._trajectory(crop, pivot, steps)
            if kind == "scaled":
                radii = radii * float(rng.uniform(*SCALE_RANGE))
            elif kind == "noised":
                noise = rng.normal(0.0, NOISE_SD, size=(1, self.h, self.w)).astype(np.float32)
                radii = torch.clamp(radii + torch.from_numpy(noise), min=0.0)
        return crop, pivot, radii, kind

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        """``image`` (16, H, W) input layers, ``target`` (H, W) the clipped step,
        ``radius`` (H, W) the state's radii (voxels)."""
        crop, pivot, radii, _ = self.state(item)
        with torch.no_grad():
            image = geo.shell_inputs(crop.image, pivot, radii, self.dirs)[0]
            target = geo.target_step(crop.target, pivot, radii, self.dirs)[0]
        return {"image": image.float(), "target": target.float(), "radius": radii[0].float()}
