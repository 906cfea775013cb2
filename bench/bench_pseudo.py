"""Benchmark: MIP and pseudo-label stages on a CT-sized vessel volume.

Not a test (tens of seconds). Run from the repository root::

    .venv/bin/python bench/bench_pseudo.py [--runs 3] [--shape 100 512 512]

Volume: (Z, Y, X) = (100, 512, 512) voxels of (2.5, 0.8, 0.8) mm holding three
vessel trees grown by :func:`segline.datasets.toy_vessels.grow_tree` at CT scale
(trunk radius 7–8 voxels tapering to 1, so several generations of branches), in
windowed-CT-like intensities: background 0.35 with white noise (σ 0.05), vessels
+0.5 with a one-voxel partial-volume rim. The 2D label is the projection of the true
vessels along z (as in the pipeline).

Rows (median and min of ``--runs`` runs, seconds, one process, one thread):

* ``MIP + depth``: :func:`segline.experiments.vessels.mip.mip_and_depth` (argmax,
  then gather);
* ``2D label``: :func:`segline.experiments.vessels.mip.project_labels` of the 3D label;
* ``pseudo-label``: :func:`segline.experiments.vessels.pseudo.pseudo_label` (seeds,
  threshold on labelled rays, one connected-component pass on the candidates' bounding
  box, background rays);
* ``distance maps``: :func:`segline.distmaps.volume_signed_distance` of the
  pseudo-label (K = 2, edt backend);
* ``quality``: :func:`segline.experiments.vessels.pseudo.quality` against the true label;
* ``whole stage, 1 case``: :func:`segline.experiments.vessels.pseudo.write_pseudo_store`
  on a one-case store (loading, all of the above, writing ~240 MB of .npy files).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import scipy

from benchlib import cpu_model
from segline import atomic, casestore, distmaps
from segline.datasets.deterministic import CounterRNG
from segline.datasets.toy_vessels import grow_tree, rasterise_tubes
from segline.experiments.vessels import mip as mipmod
from segline.experiments.vessels import pseudo

SPACING = (2.5, 0.8, 0.8)


def vessel_volume(shape_zyx: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8), both (Z, Y, X): three vessel trees in noise."""
    nz, ny, nx = shape_zyx
    shape_xyz = (nx, ny, nz)
    segments = []
    starts = [
        ((2.0, ny * 0.4, nz * 0.3), (1.0, 0.2, 0.0)),
        ((nx * 0.6, 2.0, nz * 0.6), (0.1, 1.0, 0.0)),
        ((nx - 3.0, ny * 0.7, nz * 0.5), (-1.0, -0.3, 0.1)),
    ]
    scale = nx / 64.0
    for n, (start, direction) in enumerate(starts):
        rng = CounterRNG(seed, "bench", n)
        segments += grow_tree(rng, shape_xyz, start, direction, 7.0 + 0.5 * n, 22.0 * scale, 0.5)
    inside, enhance = rasterise_tubes(segments, shape_xyz)
    noise = np.random.default_rng(seed).normal(0.0, 0.05, shape_xyz)
    image = (0.35 + enhance + noise).astype(np.float32)
    image = np.ascontiguousarray(image.transpose(2, 1, 0))
    label = np.ascontiguousarray(inside.transpose(2, 1, 0)).astype(np.uint8)
    return image, label


def timed(fn: Callable[[], object], runs: int) -> tuple[list[float], object]:
    """Run ``fn`` ``runs`` times; (seconds per run, last result)."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def _version(dist: str) -> str:
    """Installed version of a distribution, or "absent"."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"




def main() -> int:
    """Time the rows of the module docstring and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--shape", type=int, nargs=3, default=(100, 512, 512), metavar=("Z", "Y", "X")
    )
    args = parser.parse_args()
    shape = tuple(args.shape)

    start = time.perf_counter()
    image, label = vessel_volume(shape)
    print(
        f"volume {shape} built in {time.perf_counter() - start:.1f} s; vessel voxels "
        f"{int(label.sum())} ({100 * label.mean():.2f} %)"
    )

    rows: list[tuple[str, list[float]]] = []
    t, (mip, depth) = timed(lambda: mipmod.mip_and_depth(image, 0), args.runs)
    rows.append(("MIP + depth (mip_and_depth)", t))
    t, lab2d = timed(lambda: mipmod.project_labels(label, 0), args.runs)
    rows.append(("2D label (project_labels)", t))
    t, res = timed(lambda: pseudo.pseudo_label(image, lab2d, depth, 0), args.runs)
    rows.append(("pseudo-label (pseudo_label)", t))
    fg = (res.label == 1).astype(np.uint8)
    t, _ = timed(lambda: distmaps.volume_signed_distance(fg, 2, SPACING), args.runs)
    rows.append(("distance maps (K=2, edt)", t))
    t, q = timed(lambda: pseudo.quality(res.label, label), args.runs)
    rows.append(("quality (precision/recall)", t))

    with tempfile.TemporaryDirectory() as tmp:
        cases = Path(tmp) / "cases"
        with atomic.atomic_dir(cases) as folder:
            casestore.write_case(
                folder,
                "bench_1",
                image[None],
                label,
                {"case_id": "bench_1", "spacing": list(SPACING)},
            )
            atomic.write_json(
                folder / "dataset.json",
                {"labels": {"0": "background", "1": "vessel"}, "channels": ["CT"]},
            )
            atomic.write_json(folder / "split.json", {"train": ["bench_1"]})
        mipmod.write_mip_store(cases, Path(tmp) / "mip")
        t, _ = timed(
            lambda: pseudo.write_pseudo_store(cases, Path(tmp) / "mip", Path(tmp) / "pseudo"),
            args.runs,
        )
        rows.append(("whole stage, 1 case (write_pseudo_store)", t))

    print(
        f"\nMachine: nproc = {os.cpu_count()}, CPU {cpu_model()!r}; Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"edt {_version('edt')}"
    )
    print(f"Command: {sys.executable} {' '.join(sys.argv)}\n")
    print("| step | median (s) | min (s) | runs (s) |")
    print("|---|---|---|---|")
    for name, times in rows:
        runs = ", ".join(f"{x:.3f}" for x in times)
        print(f"| {name} | **{statistics.median(times):.3f}** | {min(times):.3f} | {runs} |")
    print(
        f"\npseudo-label on the bench volume: fg precision {q['fg_precision']:.3f}, recall "
        f"{q['fg_recall']:.3f}, bg precision {q['bg_precision']:.4f}, recall "
        f"{q['bg_recall']:.3f}, unlabelled {q['unlabelled_fraction']:.3f}; components "
        f"{res.n_components}, kept {res.n_kept}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
