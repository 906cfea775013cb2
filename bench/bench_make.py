"""Wall times of whole make runs (not a test): data from scratch, no-op, demo.

Runs in a private copy of the project (sources, makefiles, lineage), so the
repository's own data/ and results/ are untouched::

    .venv/bin/python bench/bench_make.py                 # spleen data + no-op
    .venv/bin/python bench/bench_make.py --demo          # + each toy pipeline end to end
    .venv/bin/python bench/bench_make.py --amp-compare   # + spleen toy with AMP=off vs auto

``--amp-compare`` trains the spleen toy pipeline twice (fp32, then the default
bf16 + channels_last when the CPU has native bf16) and prints each method's test Dice
and the wall times side by side: the check behind making bf16 the CPU default.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
COPIED = ["Makefile", "pyproject.toml", "README.md", "make", "lineage", "preprocess", "src"]


def copy_project(dest: Path) -> Path:
    """Sources, makefiles and lineage files (no data, results or venv)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, dest / name)
    for mk in REPO.glob("*.make"):
        shutil.copy2(mk, dest / mk.name)
    return dest


def make(root: Path, *args: str) -> float:
    """Run make with this interpreter as CC; return the wall time in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["make", "--no-print-directory", *args, f"CC={sys.executable}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"make {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def test_dice(root: Path, ds: str) -> pd.Series:
    """Mean test Dice per method from report.csv (class 'mean' rows skipped)."""
    rep = pd.read_csv(root / "results" / ds / "report.csv")
    rep = rep[rep["class"] != "mean"]
    return rep.groupby("method")["test_dice_mean"].mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo", action="store_true", help="also time each toy pipeline end to end")
    p.add_argument("--amp-compare", action="store_true", help="spleen toy with AMP=off vs auto")
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_project(Path(tmp) / "p")
        t_data = make(root, "-f", "spleen.make", "TOY=1", "data")
        t_noop = min(make(root, "-f", "spleen.make", "TOY=1", "data") for _ in range(3))
        print(f"make -f spleen.make TOY=1 data, from scratch: {t_data:7.2f} s")
        print(f"same, nothing to do (no-op, best of 3):       {t_noop:7.3f} s")
        if args.demo:
            total = 0.0
            for ds in ("spleen", "isles", "vessels"):
                t = make(root, "-f", f"{ds}.make", "TOY=1")
                total += t
                best = test_dice(root, f"{ds}-toy")
                print(
                    f"make -f {ds}.make TOY=1 (demo): {t:7.1f} s; best test Dice "
                    f"{best.max():.3f} ({best.idxmax()})"
                )
            t_noop = min(
                make(root, "-f", f"{ds}.make", "TOY=1") for ds in ("spleen", "isles", "vessels")
            )
            print(f"all demos: {total:7.1f} s; a no-op demo make: {t_noop:.3f} s")
        if args.amp_compare:
            timings, dice = {}, {}
            for amp in ("off", "auto"):
                shutil.rmtree(root / "results" / "spleen-toy", ignore_errors=True)
                timings[amp] = make(root, "-f", "spleen.make", "TOY=1", f"AMP={amp}")
                dice[amp] = test_dice(root, "spleen-toy")
            table = pd.DataFrame(
                {"fp32 (AMP=off)": dice["off"], "default (AMP=auto)": dice["auto"]}
            )
            table["difference"] = table.iloc[:, 1] - table.iloc[:, 0]
            print(table.to_string(float_format=lambda v: f"{v:.4f}"))
            print(
                f"spleen toy wall time: fp32 {timings['off']:.1f} s, "
                f"default {timings['auto']:.1f} s, "
                f"ratio {timings['off'] / timings['auto']:.2f}x"
            )


if __name__ == "__main__":
    main()
