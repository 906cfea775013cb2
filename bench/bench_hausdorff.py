"""Benchmark: per-step cost of the two-sided Hausdorff-DT loss (``d_p`` on the CPU).

Not a test. Run from the repository root::

    .venv/bin/python bench/bench_hausdorff.py [--repeat 50] [--threads N]

Batches (K = 2 classes, the loss on class 1, as in ``gdl_hausdorff``):

* 2D: 8 slices of 64 x 64 pixels, spacing (0.8, 0.8) mm;
* 3D: 2 patches of 32 x 48 x 48 voxels, spacing (2.0, 0.8, 0.8) mm.

Target: a disc / ball (radius a quarter of the field of view); prediction: the
target's probabilities blurred with noise, so the thresholded mask is a bumpy blob
plus a few false-positive specks (a mid-training prediction). Rows, median (and
minimum) over ``--repeat`` runs of forward + backward in this one process:
``prediction_distance`` alone (the host copy and the transforms), ``hausdorff``
(two-sided) and ``hausdorff_gt`` (one-sided, no transform). On a GPU the two-sided
loss adds a device-to-host copy and a synchronisation per step on top.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from segline.distmaps import one_hot_signed_distance
from segline.losses.hausdorff import HausdorffDT, HausdorffGT, prediction_distance


def batch_of(shape: tuple[int, ...], spacing: tuple[float, ...], seed: int) -> dict:
    """Probabilities, one-hot target, GT signed maps and spacing for B items of ``shape``."""
    rng = np.random.default_rng(seed)
    b, *spatial = shape
    grids = np.meshgrid(*[np.arange(n) - n / 2 for n in spatial], indexing="ij", sparse=True)
    r2 = sum(g.astype(np.float64) ** 2 for g in grids)
    label = (r2 <= (min(spatial) / 4) ** 2).astype(np.uint8)
    target = np.stack([np.stack([1 - label, label]) for _ in range(b)]).astype(np.float32)
    dist = np.stack([one_hot_signed_distance(label, 2, spacing) for _ in range(b)])
    noisy = label + rng.normal(0.0, 0.35, size=(b, *spatial))
    p1 = np.clip(noisy, 0.0, 1.0).astype(np.float32)
    probs = np.stack([1 - p1, p1], axis=1)
    return {
        "probs": torch.from_numpy(probs),
        "target": torch.from_numpy(target),
        "dist": torch.from_numpy(dist),
        "spacing": torch.tensor([spacing] * b, dtype=torch.float32),
    }


def timed(fn: Callable[[], None], repeat: int) -> tuple[float, float]:
    """(median, minimum) seconds of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}"
    )
    cases = {
        "2D 8x64x64": ((8, 64, 64), (0.8, 0.8)),
        "3D 2x32x48x48": ((2, 32, 48, 48), (2.0, 0.8, 0.8)),
    }
    for name, (shape, spacing) in cases.items():
        data = batch_of(shape, spacing, seed=0)
        batch = {k: data[k] for k in ("target", "dist", "spacing")}
        fg = (data["probs"][:, 1] > 0.5).float().mean().item()
        sp = data["spacing"].numpy().astype(np.float64)

        def d_p_only(data: dict = data, sp: np.ndarray = sp) -> None:
            prediction_distance(data["probs"][:, 1:], sp)

        def step(loss: torch.nn.Module, data: dict = data, batch: dict = batch) -> None:
            probs = data["probs"].clone().requires_grad_(True)
            loss(None, probs, batch).backward()

        rows = {
            "prediction_distance": d_p_only,
            "hausdorff (two-sided)": lambda: step(HausdorffDT([1], alpha=1)),
            "hausdorff_gt (one-sided)": lambda: step(HausdorffGT([1], alpha=1)),
        }
        print(f"\n{name}, spacing {spacing} mm, predicted foreground {fg:.1%}")
        for row, fn in rows.items():
            med, low = timed(fn, args.repeat)
            print(f"  {row:26s} median {med * 1e3:8.2f} ms   min {low * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
