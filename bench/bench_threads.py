"""Cost of a fixed thread count per training (``THREADS``, default 1), not a test.

A training computes with ``THREADS`` torch threads whatever make's ``-jN``
(src/segline/train/device.py), so that ``make -j1`` and ``make -j2`` write the same
bytes. Before, it took the cores divided by ``-jN``: one training alone under ``make``
(``-j1``) used every core. This script measures, on this machine, in a private copy of
the project (the repository's data/ and results/ are untouched), the spleen toy's
trainings (``TOY=1``; the toy's default net unless ``--net``):

* ``1 x THREADS=1, -j1``: one training alone with one thread (the new default at -j1);
* ``1 x THREADS=<cores>, -j1``: one training alone with every core (the old -j1);
* ``2 x THREADS=1, -j2``: two trainings at once, one thread each (old and new -j2);
* ``2 x THREADS=<cores>, -j1``: the same two, one after the other, every core each.

It prints make's wall time per row (process start-up included: what a user waits) and
the trainer's own seconds per epoch (``timing.csv``), then the ratios side by side::

    .venv/bin/python bench/bench_threads.py                      # UNet base 16, 3 epochs
    .venv/bin/python bench/bench_threads.py --net ENet --epochs 2 --repeat 3

Each row is run ``--repeat`` times and the fastest run counts (the one least disturbed
by other work on the machine); the data stages are built once first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchlib import copy_project, cpu_model

RES = Path("results/spleen-toy")






def make(root: Path, *args: str) -> float:
    """Run make with this interpreter as CC (no inherited MAKEFLAGS); wall seconds.
    Exits with make's output when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["CACHE"] = ""  # every run trains: no restore from the result cache
    cmd = ["make", "--no-print-directory", *args, f"CC={sys.executable}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"make {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def epoch_seconds(root: Path, methods: list[str]) -> float:
    """Mean wall seconds per epoch over the trainings' ``timing.csv``."""
    frames = [pd.read_csv(root / RES / m / "timing.csv") for m in methods]
    return float(pd.concat(frames)["seconds"].mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", default=None, help="NET (default: the spleen toy's, UNet base 16)")
    p.add_argument("--epochs", type=int, default=3, help="EPC per training")
    p.add_argument("--repeat", type=int, default=1, help="runs per row (the fastest counts)")
    p.add_argument(
        "--cores", type=int, default=len(os.sched_getaffinity(0)), help="THREADS of 'all cores'"
    )
    args = p.parse_args()
    knobs = ["-f", "spleen.make", "TOY=1", f"EPC={args.epochs}"]
    if args.net:
        knobs.append(f"NET={args.net}")
    n = args.cores
    rows = [
        ("1 x THREADS=1, -j1", ["-j1", "THREADS=1"], ["gdl"]),
        (f"1 x THREADS={n}, -j1", ["-j1", f"THREADS={n}"], ["gdl"]),
        ("2 x THREADS=1, -j2 (at once)", ["-j2", "THREADS=1"], ["gdl", "ce"]),
        (f"2 x THREADS={n}, -j1 (one after the other)", ["-j1", f"THREADS={n}"], ["gdl", "ce"]),
    ]
    print(
        f"CPU: {cpu_model()}, {n} cores; bf16: "
        f"{bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}; torch {torch.__version__}; "
        f"net {args.net or 'spleen toy default'}, {args.epochs} epochs, repeat {args.repeat}; "
        f"load average before: {os.getloadavg()[0]:.2f} (other work on the cores skews "
        "the multi-thread rows most)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_project(Path(tmp) / "p")
        make(root, *knobs, "data")
        walls: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        epochs: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        for _ in range(args.repeat):  # rows interleaved: a busy spell hits them alike
            for name, flags, methods in rows:
                make(root, *knobs, "clean-results")
                targets = [str(RES / m) for m in methods]
                walls[name].append(
                    make(root, *knobs, *flags, f"METHODS={' '.join(methods)}", *targets)
                )
                epochs[name].append(epoch_seconds(root, methods))
        results = {name: (min(walls[name]), min(epochs[name])) for name, _, _ in rows}
        for name, (wall, epoch) in results.items():
            runs = ", ".join(f"{w:.1f}" for w in walls[name])
            print(f"  {name:<46} wall {wall:6.1f} s ({runs}), {epoch:.2f} s/epoch")
    one1, onen, two1, twon = (results[name] for name, _, _ in rows)
    print()
    print("| comparison | wall time ratio | per-epoch ratio |")
    print("|---|---:|---:|")
    print(
        f"| one training alone: THREADS=1 / THREADS={n} (cost of the new -j1 default) "
        f"| {one1[0] / onen[0]:.2f} | {one1[1] / onen[1]:.2f} |"
    )
    print(
        f"| two trainings: -j2 THREADS=1 at once / -j1 THREADS={n} one after the other "
        f"(throughput, < 1: -j2 is faster) | {two1[0] / twon[0]:.2f} | – |"
    )
    print(
        f"| two trainings at once, THREADS=1 / one alone, THREADS=1 (slow-down of sharing) "
        f"| {two1[0] / one1[0]:.2f} | {two1[1] / one1[1]:.2f} |"
    )
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
