"""EBP's costs: target-driven shells at real size, and the toy pipeline.

    .venv/bin/python bench/bench_ebp.py real                 # 20 real-size cases, H=W=32
    .venv/bin/python bench/bench_ebp.py real --cases 3 --directions 16,16
    .venv/bin/python bench/bench_ebp.py toy   # make -f spleen.make TOY=1 METHODS='gdl ebp'

**real**: the real-scale upper bound of the reconstruction. The real Task09 archive
cannot be fetched here, so the labels are synthetic at its size: per case a bent,
tilted ellipsoid (semi-axes 45-70 mm along the body, 30-45 mm deep, 50-75 mm tall,
random per case) in a 512 x 512 volume of 0.7-0.9 mm pixels and 1.5-5 mm slices
(31-168 slices, as the real set). The shells are driven by the signed target (the
oracle step, :func:`segline.experiments.ebp.inference.target_step_fn`) from pivots in
the label's box, exactly as a learned model's steps would drive them, so the Dice of
the rebuilt mask is what the geometry (directions, reach, vote) allows: an upper bound
of any learned EBP. Printed per case: slices, pivots placed and kept, Dice, the
seconds of the target, of the shells and of the reconstruction, and the process's peak
resident memory (nothing is written to disk: the published code stores every state,
over 100 GB for the spleen).

**toy**: the toy pipeline with EBP in a private copy of the project: its wall time,
the test Dice of each method from ``report_cases.csv`` and EBP's per-case seconds
(``test/timing.csv``).

Numbers depend on the machine: say which CPU (printed) when quoting them.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_pseudo import cpu_model  # bench/ is on sys.path when run as a script
from benchlib import copy_project
from segline.experiments.ebp.geometry import directions, signed_target
from segline.experiments.ebp.inference import ShellConfig, segment, target_step_fn

REPO = Path(__file__).resolve().parents[1]


def synthetic_spleen(index: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A real-size spleen-like label (Z, Y, X) and its spacing (z, y, x) in mm
    (module docstring); deterministic in ``index``."""
    rng = np.random.default_rng([2023, index])
    dz = float(rng.choice([1.5, 2.0, 2.5, 3.0, 5.0]))
    dxy = float(rng.uniform(0.7, 0.9))
    nz = int(np.clip(round(float(rng.uniform(180, 330)) / dz), 31, 168))
    a, b, c = rng.uniform(45, 70), rng.uniform(30, 45), rng.uniform(50, 75)  # mm: x, y, z
    cy, cx = 512 * dxy * rng.uniform(0.45, 0.6), 512 * dxy * rng.uniform(0.6, 0.72)
    centre = np.array([nz * dz / 2, cy, cx])
    tilt, bend = rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8)
    z = (np.arange(nz) * dz - centre[0])[:, None, None]
    y = (np.arange(512) * dxy - centre[1])[None, :, None]
    x = (np.arange(512) * dxy - centre[2])[None, None, :]
    xr = np.cos(tilt) * x - np.sin(tilt) * y
    yr = np.sin(tilt) * x + np.cos(tilt) * y
    yr = yr + bend * (xr**2) / (2 * a)  # a crescent: the ends curve back
    label = (xr / a) ** 2 + (yr / b) ** 2 + (z / c) ** 2 <= 1.0
    return label, (dz, dxy, dxy)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else 1.0


def real(n_cases: int, h: int, w: int) -> None:
    print(f"CPU: {cpu_model()}, torch threads {torch.get_num_threads()}, directions {h}x{w}")
    cfg = ShellConfig(h=h, w=w)
    dirs = directions(h, w)
    rows = []
    print("case  slices  z_mm  pivots   kept   dice    target_s  shells_s  recon_s  peak_GB")
    for i in range(n_cases):
        label, spacing = synthetic_spleen(i)
        t0 = time.perf_counter()
        target = torch.from_numpy(signed_target(label))[None]
        t_target = time.perf_counter() - t0
        nz = np.nonzero(label)
        lo = [int(v.min()) for v in nz]
        hi = [int(v.max()) + 1 for v in nz]
        with torch.inference_mode():
            mask, stats = segment(target_step_fn(target, dirs, cfg.step_clip), label.shape,
                                  lo, hi, cfg, "cpu")  # fmt: skip
        d = dice(mask, label)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        rows.append((d, t_target + stats["shell_seconds"] + stats["reconstruction_seconds"]))
        print(f"{i:>4}  {label.shape[0]:>6}  {spacing[0]:>4.1f}  {stats['pivots']:>6}  "
              f"{stats['kept']:>5}  {d:.4f}  {t_target:>8.1f}  {stats['shell_seconds']:>8.1f}  "
              f"{stats['reconstruction_seconds']:>7.1f}  {peak:>7.2f}")  # fmt: skip
    ds = np.array([r[0] for r in rows])
    ts = np.array([r[1] for r in rows])
    print(f"Dice mean {ds.mean():.4f} min {ds.min():.4f}; seconds per case median "
          f"{np.median(ts):.1f} max {ts.max():.1f}; all >= 0.97: {bool((ds >= 0.97).all())}")


def toy(keep: Path | None) -> None:
    import pandas as pd

    print(f"CPU: {cpu_model()}")
    root = Path(tempfile.mkdtemp(prefix="bench-ebp-")) if keep is None else keep
    project = copy_project(root / "p")
    cmd = ["make", "-f", "spleen.make", "TOY=1", "METHODS=gdl ebp", f"CC={sys.executable}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
    res = project / "results" / "spleen-toy"
    cases = pd.read_csv(res / "report_cases.csv")
    print(f"make -f spleen.make TOY=1 METHODS='gdl ebp': {seconds / 60:.1f} min")
    dice_rows = cases[(cases["metric"] == "dice")] if "metric" in cases else cases
    print(dice_rows.to_string(index=False))
    timing = pd.read_csv(res / "ebp" / "test" / "timing.csv")
    print(timing.to_string(index=False))
    print(f"reconstruction max {timing['reconstruction_seconds'].max():.2f} s, "
          f"whole case max {timing['seconds'].max():.2f} s")
    if math.isfinite(seconds):
        print(f"project kept in {root}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("real")
    r.add_argument("--cases", type=int, default=20)
    r.add_argument("--directions", default="32,32")
    t = sub.add_parser("toy")
    t.add_argument("--keep", type=Path, default=None, help="build the copy here")
    a = p.parse_args()
    if a.what == "real":
        h, w = (int(v) for v in a.directions.split(","))
        real(a.cases, h, w)
    else:
        toy(a.keep)


if __name__ == "__main__":
    main()
