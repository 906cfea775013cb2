"""Drawing a run's figures: one process per figure (as make did before) against one
``segline.plots.figures`` process (make/common.mk ``FIGURES``), side by side.

    .venv/bin/python bench/bench_figures.py results/spleen-toy/{ce,gdl,gdl_boundary}

Both ways draw the same PNGs (the curves of make/common.mk ``CURVES``, the test Dice
boxplot and one progress figure per method) from the given training folders into
temporary folders; the bytes are compared, then the wall times of ``--repeats``
alternating rounds are printed with their ratio (median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CURVES = ["val_dice", "val_hd95", "val_assd", "tra_loss", "val_loss", "lr", "alpha", "epoch_time"]


def one_per_figure(out: Path, methods: list[str]) -> None:
    """Each figure by its own CLI, one process each."""
    py = [sys.executable, "-m"]
    for c in CURVES:
        subprocess.run(
            [*py, "segline.plots.curves", "--metric", c, "--out", str(out / f"{c}.png"), *methods],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        [*py, "segline.plots.boxplot", "--out", str(out / "test_dice_boxplot.png"), *methods],
        check=True,
        capture_output=True,
    )
    for m in methods:
        name = Path(m).name
        subprocess.run(
            [*py, "segline.plots.progress", "--out", str(out / f"progress_{name}.png"), m],
            check=True,
            capture_output=True,
        )


def one_process(out: Path, methods: list[str]) -> None:
    """Every figure from one ``segline.plots.figures`` process."""
    subprocess.run(
        [sys.executable, "-m", "segline.plots.figures", "--out-dir", str(out), "--curves",
         ",".join(CURVES), "--boxplot", "dice", "--progress", *methods],
        check=True,
        capture_output=True,
    )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("methods", nargs="+", help="training folders (one per method)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    times: dict[str, list[float]] = {"per figure": [], "one process": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            outs = {}
            for name, fn in (("per figure", one_per_figure), ("one process", one_process)):
                out = Path(tmp) / f"{r}-{name.replace(' ', '_')}"
                out.mkdir()
                start = time.perf_counter()
                fn(out, args.methods)
                times[name].append(time.perf_counter() - start)
                outs[name] = out
            a, b = outs["per figure"], outs["one process"]
            names = sorted(f.name for f in a.iterdir())
            assert names == sorted(f.name for f in b.iterdir()), "different figures"
            assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names), "bytes differ"
    n = len(CURVES) + 1 + len(args.methods)
    ratios = [x / y for x, y in zip(times["per figure"], times["one process"], strict=True)]
    print(
        f"{n} figures, {len(args.methods)} methods, {args.repeats} rounds: one process per "
        f"figure {statistics.median(times['per figure']):.1f} s, one process "
        f"{statistics.median(times['one process']):.1f} s, ratio "
        f"{statistics.median(ratios):.2f}x (PNG bytes identical)"
    )


if __name__ == "__main__":
    main()
