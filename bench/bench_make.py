"""Wall times of whole make runs (not a test): data from scratch, no-op, demo.

Runs in a private copy of the project (sources, makefiles, lineage), so the
repository's own data/ and results/ are untouched::

    .venv/bin/python bench/bench_make.py                 # spleen data + no-op
    .venv/bin/python bench/bench_make.py --demo          # + each toy pipeline end to end
    .venv/bin/python bench/bench_make.py --amp-compare   # + spleen toy with AMP=off vs auto
    .venv/bin/python bench/bench_make.py --stages NET=Dimwit EPC=1   # toy wall times by stage

``--stages`` (and ``--demo``) run make with ``SHELL=bench/timed_shell.sh``, which times
every recipe line and logs it under the target make exports as ``SEGLINE_TARGETS``
(make/common.mk); each toy pipeline's wall time is then printed split by stage group
(toy archive, unpack, slice, distmaps, other data stages, each training, plots, report,
pack, and make itself: parsing, the up-to-date checks, what no recipe covers).

``--amp-compare`` trains the spleen toy pipeline twice (fp32, then the default
bf16 + channels_last when the CPU has native bf16) and prints each method's test Dice
and the wall times side by side: the check behind making bf16 the CPU default.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchlib import REPO, copy_project

TIMED_SHELL = REPO / "bench" / "timed_shell.sh"
DATASETS = ("spleen", "isles", "vessels")




def make(root: Path, *args: str) -> float:
    """Run make with this interpreter as CC; return the wall time in seconds."""
    return make_stages(root, *args)[0]


def make_stages(
    root: Path, *args: str, timeout: float | None = None
) -> tuple[float, list[tuple[str, float]]]:
    """Run make with this interpreter as CC, each recipe line timed (bench/timed_shell.sh).

    Returns the wall time in seconds and ``(targets, seconds)`` per recipe line, in
    the order they finished (``targets`` is empty for make's own ``$(shell ...)``).
    Exits with make's output when make fails (or runs past ``timeout`` seconds).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "recipes.tsv"
        env["SEGLINE_TIMING_LOG"] = str(log)
        env["CACHE"] = ""  # time the builds, never a restore from the result cache
        cmd = ["make", "--no-print-directory", *args, f"CC={sys.executable}"]
        cmd.append(f"SHELL={TIMED_SHELL}")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            sys.exit(f"make {' '.join(args)}: still running after {timeout} s; stopped")
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"make {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        records = []
        for line in log.read_text().splitlines() if log.exists() else []:
            targets, start, end, _rc = line.split("\t")
            records.append((targets, float(end) - float(start)))
    return seconds, records


def stage_group(targets: str) -> str:
    """The stage group of a recipe's target(s), e.g. ``data/spleen-toy/dist`` → distmaps."""
    if not targets:
        return "make itself"
    first = Path(targets.split()[0])
    parts = first.parts
    if first.name == ".installed":
        return "install"
    if parts[0] == "archives":
        return "pack"
    if parts[0] == "data":
        if len(parts) == 2:
            return "toy archive" if "-toy" in first.name else "download"
        named = {"raw": "unpack", "cases": "slice", "dist": "distmaps", "dist-diagonal": "distmaps"}
        return named.get(parts[2], f"data: {'/'.join(parts[2:])}") if len(parts) > 2 else "data"
    if parts[0] == "results":
        if first.suffix == ".png":
            return "plots"
        if first.name.startswith("report."):
            return "report"
        if "predict" in parts:
            return "predict"
        return f"train {first.name}"
    return "other"


def stage_table(total: float, records: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``(group, seconds)`` rows in pipeline order; make itself takes what no recipe did.

    Recipe lines of one group add up; "make itself" is the wall time no recipe covers
    (parsing, checks, its ``$(shell ...)``; meaningful without ``-j``).
    """
    sums: dict[str, float] = collections.defaultdict(float)
    for targets, seconds in records:
        if targets:
            sums[stage_group(targets)] += seconds
    order = ["install", "download", "toy archive", "unpack", "slice", "distmaps", "data"]
    tail = ["plots", "report", "pack", "predict", "other"]

    def rank(group: str) -> tuple[int, str]:
        if group in order:
            return order.index(group), group
        if group.startswith("data"):
            return len(order), group
        if group.startswith("train"):
            return len(order) + 1, group
        return len(order) + 2 + tail.index(group), group

    keys = sorted(sums, key=rank)
    rows = [(g, sums[g]) for g in keys]
    rows.append(("make itself", max(0.0, total - sum(sums.values()))))
    return rows


def print_stage_table(title: str, total: float, records: list[tuple[str, float]]) -> None:
    """The table of :func:`stage_table`: seconds and share of the total wall time."""
    print(f"{title}: {total:.1f} s")
    print(f"  {'stage':28s} {'seconds':>8s} {'share':>6s}")
    for group, seconds in stage_table(total, records):
        print(f"  {group:28s} {seconds:8.2f} {100 * seconds / total:5.1f}%")


def test_dice(root: Path, ds: str) -> pd.Series:
    """Mean test Dice per method from report.csv (class 'mean' rows skipped)."""
    rep = pd.read_csv(root / "results" / ds / "report.csv")
    rep = rep[rep["class"] != "mean"]
    return rep.groupby("method")["test_dice_mean"].mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo", action="store_true", help="also time each toy pipeline end to end")
    p.add_argument("--amp-compare", action="store_true", help="spleen toy with AMP=off vs auto")
    p.add_argument(
        "--stages", action="store_true", help="each toy pipeline's wall time split by stage"
    )
    p.add_argument("--jobs", type=int, default=1, help="make -jN for --demo and --stages")
    p.add_argument(
        "--only", default=",".join(DATASETS), help="toy pipelines to run (default: all three)"
    )
    p.add_argument(
        "knobs", nargs="*", help="make knobs for --demo and --stages, e.g. AMP=off NET=Dimwit"
    )
    args = p.parse_args()
    datasets = [ds for ds in args.only.split(",") if ds]
    jobs = [f"-j{args.jobs}"] if args.jobs > 1 else []
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_project(Path(tmp) / "p")
        t_data = make(root, "-f", "spleen.make", "TOY=1", "data")
        t_noop = min(make(root, "-f", "spleen.make", "TOY=1", "data") for _ in range(3))
        print(f"make -f spleen.make TOY=1 data, from scratch: {t_data:7.2f} s")
        print(f"same, nothing to do (no-op, best of 3):       {t_noop:7.3f} s")
        if args.demo:
            total = 0.0
            for ds in datasets:
                run = [*jobs, "-f", f"{ds}.make", "TOY=1", *args.knobs]
                t, records = make_stages(root, *run)
                total += t
                print_stage_table(f"make {' '.join(run)} (demo)", t, records)
                best = test_dice(root, f"{ds}-toy")
                print(
                    f"make -f {ds}.make TOY=1 (demo): {t:7.1f} s; best test Dice "
                    f"{best.max():.3f} ({best.idxmax()})"
                )
            t_noop = min(make(root, "-f", f"{ds}.make", "TOY=1", *args.knobs) for ds in datasets)
            print(f"all demos: {total:7.1f} s; a no-op demo make: {t_noop:.3f} s")
        if args.stages:
            for ds in datasets:
                run = [*jobs, "-f", f"{ds}.make", "TOY=1", *args.knobs]
                for folder in ("data", "results", "archives"):
                    shutil.rmtree(root / folder, ignore_errors=True)
                t, records = make_stages(root, *run)
                print_stage_table(f"make {' '.join(run)}", t, records)
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
