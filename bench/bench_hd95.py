"""Benchmark: HD95 on a CT-sized pair, cropped implementation vs plain scipy.

A 512×512×90 volume (Z=90 slices) with spacing (5, 0.8, 0.8) mm holds an
organ-sized blob (an ellipsoid of semi-axes 75 × 80 × 100 mm with a smooth random
bumpy surface) and a slightly perturbed copy (shifted by a few voxels, different
bumps). ``segline.metrics.hd95`` (distance transforms on the union bounding box)
is timed against the textbook version on the whole volume (scipy binary erosion
+ ``distance_transform_edt`` of the full array, pooled 95th percentile); both must
give the same value. Not a test: run it by hand and copy the output into
bench/RESULTS.md (section ``## HD95``).

Usage:
    .venv/bin/python bench/bench_hd95.py [--runs 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy
from scipy import ndimage

from benchlib import cpu_model
from segline.metrics import hd95

SHAPE = (90, 512, 512)
SPACING = (5.0, 0.8, 0.8)


def organ(seed: int, shift: tuple[int, int, int], bump: float) -> np.ndarray:
    """A bumpy ellipsoid (semi-axes 75, 80, 100 mm) centred in the volume, shifted."""
    rng = np.random.default_rng(seed)
    semi = np.array([75.0, 80.0, 100.0])  # mm
    half = np.ceil(semi * 1.3 / np.array(SPACING)).astype(int)  # room for the bumps
    grids = np.meshgrid(
        *[np.arange(-h, h + 1) * s / a for h, s, a in zip(half, SPACING, semi, strict=True)],
        indexing="ij",
    )
    r2 = sum(g**2 for g in grids)
    noise = ndimage.gaussian_filter(rng.standard_normal(r2.shape), sigma=(2.0, 12.0, 12.0))
    noise /= np.abs(noise).max()
    local = r2 < 1.0 + bump * noise
    out = np.zeros(SHAPE, bool)
    centre = np.array(SHAPE) // 2 + np.array(shift)
    lo = centre - half
    out[tuple(slice(a, a + n) for a, n in zip(lo, local.shape, strict=True))] = local
    return out


def plain_scipy_hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Reference: surfaces and distance transforms on the whole volume, no crop."""
    cross = ndimage.generate_binary_structure(pred.ndim, 1)
    s_p = pred & ~ndimage.binary_erosion(pred, structure=cross, border_value=0)
    s_g = gt & ~ndimage.binary_erosion(gt, structure=cross, border_value=0)
    d_pg = ndimage.distance_transform_edt(~s_g, sampling=spacing)[s_p]
    d_gp = ndimage.distance_transform_edt(~s_p, sampling=spacing)[s_g]
    return float(np.percentile(np.concatenate([d_pg, d_gp]), 95))


def timed(fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    """Value of ``fn()`` and the wall times (s) of ``runs`` calls."""
    times = []
    value = float("nan")
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, times




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per method (≥ 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = max(3, args.runs)

    gt = organ(args.seed, shift=(0, 0, 0), bump=0.08)
    pred = organ(args.seed + 1, shift=(1, 3, -4), bump=0.06)
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r}")
    print(
        f"versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}"
    )
    print(
        f"volume {SHAPE} spacing {SPACING} mm; gt {int(gt.sum())} voxels, "
        f"pred {int(pred.sum())} voxels, runs={runs}"
    )

    ours, t_ours = timed(lambda: hd95(pred, gt, SPACING), runs)
    ref, t_ref = timed(lambda: plain_scipy_hd95(pred, gt, SPACING), runs)
    if not abs(ours - ref) < 1e-9:  # explicit check: still runs under python -O
        raise SystemExit(f"values differ: ours {ours!r} vs plain scipy {ref!r}")

    m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
    print(f"HD95 = {ours:.6f} mm (both)")
    print(f"segline hd95 (cropped): median {m_ours:.3f} s  runs {[round(t, 3) for t in t_ours]}")
    print(f"plain scipy (no crop):  median {m_ref:.3f} s  runs {[round(t, 3) for t in t_ref]}")
    print(f"speed-up: {m_ref / m_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
