"""Benchmark: segline's signed distance maps, edt vs scipy, on a CT-sized volume.

Not a test (minutes, not seconds). Run from the repository root::

    .venv/bin/python bench/bench_distmaps.py [--repeat 3] [--shape 90 512 512]

Volume: (Z, Y, X) = (90, 512, 512) voxels of (5, 0.8, 0.8) mm, label = two
overlapping ellipsoids (a spleen-sized blob, ~3 % of the voxels, present in 39 of
90 slices), K = 2 one-hot maps (background and foreground), float32 outputs.

Rows, all producing the same maps (max |diff| vs the scipy reference is printed):

* ``scipy reference``: what one writes with scipy alone: per class and per image
  (slice or volume) ``dt(~m) - dt(m)`` on the whole array, float64, cast to float32;
  an absent/full class gets +-D without a transform (the convention, not a trick).
* ``edt reference``: the same loop with ``edt.edt`` in place of scipy: the pure
  transform speed-up.
* ``segline scipy`` / ``segline edt p=N``: :mod:`segline.distmaps` (inside transform
  on the object's bounding box only; K = 2 computes class 1 and negates it).

Speed-ups are ratios of medians of ``--repeat`` runs measured in this one process
(the minimum is printed too: on a shared machine it is the least noisy figure).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import edt
import numpy as np
import scipy
from scipy import ndimage

from segline import distmaps

SPACING = (5.0, 0.8, 0.8)


def ellipsoids(shape: tuple[int, int, int], spacing: tuple[float, ...]) -> np.ndarray:
    """uint8 label (Z, Y, X): two overlapping ellipsoids (spleen-sized at 90x512x512).

    Centres and radii are fractions of the field of view, so ``--shape`` smoke runs
    keep the same geometry (radii 80/60/90 mm and 60/50/40 mm at the default size).
    """
    fov = [n * s for n, s in zip(shape, spacing, strict=True)]
    axes = [np.arange(n, dtype=np.float64) * s for n, s in zip(shape, spacing, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    fz, fy, fx = fov[0] / 450.0, fov[1] / 409.6, fov[2] / 409.6  # 1 at the default size
    a = ((zz - 0.44 * fov[0]) / (80 * fz)) ** 2 + ((yy - 0.44 * fov[1]) / (60 * fy)) ** 2
    a = a + ((xx - 0.49 * fov[2]) / (90 * fx)) ** 2
    b = ((zz - 0.56 * fov[0]) / (60 * fz)) ** 2 + ((yy - 0.63 * fov[1]) / (50 * fy)) ** 2
    b = b + ((xx - 0.68 * fov[2]) / (40 * fx)) ** 2
    return ((a <= 1) | (b <= 1)).astype(np.uint8)


def reference_signed(mask: np.ndarray, spacing: tuple[float, ...], transform: str) -> np.ndarray:
    """One class, one image, the straightforward way (both transforms on the whole array)."""
    if not mask.any() or mask.all():
        d = distmaps.diagonal_mm(mask.shape, spacing)
        return np.full(mask.shape, d if not mask.any() else -d, np.float32)
    if transform == "scipy":
        out = ndimage.distance_transform_edt(~mask, sampling=spacing)
        out -= ndimage.distance_transform_edt(mask, sampling=spacing)
        return out.astype(np.float32)
    out = edt.edt(~mask, anisotropy=spacing, black_border=False)  # numpy axis order (edt 3.x)
    out -= edt.edt(mask, anisotropy=spacing, black_border=False)
    return out


def reference_maps(label: np.ndarray, kind: str, transform: str) -> np.ndarray:
    """(2, Z, Y, X) maps, per class, per slice ("2d") or whole volume ("3d")."""
    out = np.empty((2, *label.shape), np.float32)
    for k in range(2):
        mask = label == k
        if kind == "3d":
            out[k] = reference_signed(mask, SPACING, transform)
        else:
            for z in range(label.shape[0]):
                out[k, z] = reference_signed(mask[z], SPACING[1:], transform)
    return out


def segline_maps(label: np.ndarray, kind: str, backend: str, parallel: int) -> np.ndarray:
    """The library path."""
    if kind == "3d":
        return distmaps.volume_signed_distance(label, 2, SPACING, backend, parallel)
    return distmaps.slicewise_signed_distance(label, 2, SPACING[1:], backend, parallel)


def timed(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, list[float], np.ndarray]:
    """Median seconds over ``repeat`` runs, all the times, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def machine() -> str:
    """One line: cores, CPU model, versions."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
        f"numpy={np.__version__} scipy={scipy.__version__} edt={_edt_version()} "
        f"loadavg(1m)={os.getloadavg()[0]:.2f} (other jobs add noise)"
    )


def _edt_version() -> str:
    from importlib.metadata import version

    return version("edt")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--shape", type=int, nargs=3, default=(90, 512, 512), metavar=("Z", "Y", "X"))
    args = p.parse_args()
    shape = tuple(args.shape)
    label = ellipsoids(shape, SPACING)  # type: ignore[arg-type]
    present = int(label.any(axis=(1, 2)).sum())
    print(machine())
    print(
        f"volume {shape} voxels, spacing {SPACING} mm, foreground {label.mean():.2%} "
        f"in {present}/{shape[0]} slices, K=2, repeat={args.repeat} (median)"
    )
    rows = [
        ("scipy reference", lambda kind: reference_maps(label, kind, "scipy")),
        ("edt reference p=1", lambda kind: reference_maps(label, kind, "edt")),
        ("segline scipy", lambda kind: segline_maps(label, kind, "scipy", 1)),
        ("segline edt p=1", lambda kind: segline_maps(label, kind, "edt", 1)),
        ("segline edt p=2", lambda kind: segline_maps(label, kind, "edt", 2)),
    ]
    header = f"{'kind':4} {'method':18} {'median s':>9} {'min s':>7} {'runs s':>30} "
    header += f"{'x scipy ref':>11} {'x segline scipy':>15} {'max|diff| mm':>12}"
    print(header)
    for kind in ("3d", "2d"):
        base_t, seg_scipy_t, base = math.nan, math.nan, None
        for name, fn in rows:
            med, times, result = timed(lambda fn=fn: fn(kind), args.repeat)  # noqa: B023
            if base is None:
                base_t, base = med, result
            if name == "segline scipy":
                seg_scipy_t = med
            diff = float(np.abs(result - base).max())
            runs = ",".join(f"{t:.2f}" for t in times)
            vs_seg = f"{seg_scipy_t / med:14.1f}x" if not math.isnan(seg_scipy_t) else f"{'-':>15}"
            print(
                f"{kind:4} {name:18} {med:9.3f} {min(times):7.3f} {runs:>30} "
                f"{base_t / med:10.1f}x {vs_seg} {diff:12.2e}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
