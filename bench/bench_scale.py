"""How segline's cost grows from the toys to a real dataset's size (spleen).

For each N (labelled cases; default 5, 10, 20, 41, the release's 41) it builds a
real-size archive (bench/scale_data.py: 512² slices at 0.6-0.9 mm, 31-168 slices,
int16, gzip) in a private copy of the project and runs every stage as the pipeline
does, each in its own process under ``/usr/bin/time``, printing its wall time and its
peak resident memory (the largest process of the stage: make's children; a loader
worker is a process of its own and not summed):

* md5: the lineage check of the archive (``segline.lineage.lineagefile.verify``);
* raw: the whole ``data/<ds>/raw`` stage (md5 check + safe unpack + its digest);
* manifest (cold / warm): ``segline.lineage.manifest`` of the unpacked folder, as
  ``DATASET_DIR`` runs it on every make: first with no stat cache, then with it;
* digest: the content digest of the case store (what each stage writes beside it);
* cases, dist: the slicing and distance-map stages (2D and 3D maps);
* epoch: one training epoch at the real defaults (ENet, batch 8, 512², AMP=auto),
  *projected*: ``--steps`` optimisation steps through the real loader are timed after
  a warm-up, times the epoch's steps (training slices / 8), plus the validation of
  one case times the release's 5 validation cases;
* train (debug): ``DEBUG=1 EPC=1``, the training stage on a tiny subset (for the
  folders below);
* eval per case: the evaluation stage (predict in source geometry + Dice, HD95,
  ASSD) divided by its test cases;
* figures, report, pack.

At the largest N it also times a no-op ``make`` and ``make -n``. The split is the
same at every N (``N_TEST=2 N_VAL=1``: what grows is the training set and the data
stages), so the expected growth of a stage is the growth of the voxels it reads
(data stages) or of the training slices (epoch): both are printed beside the
measured ratio time(N_max)/time(10). The result cache is off (``CACHE=``).

Usage:
    .venv/bin/python bench/bench_scale.py --work /work/scale            # ~40 min
    .venv/bin/python bench/bench_scale.py --work /tmp/s --sizes 3,4 --steps 2   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import REPO, copy_project, cpu_model

sys.path.insert(0, str(REPO / "src"))

TIME = "/usr/bin/time"
PY = str(REPO / ".venv" / "bin" / "python")
STAGES = (
    "md5",
    "raw",
    "manifest cold",
    "manifest warm",
    "digest",
    "cases",
    "dist",
    "epoch",
    "train (debug)",
    "eval per case",
    "figures",
    "report",
    "pack",
)
#: the stages whose time counts as "data stages" (the 10 % bookkeeping target)
DATA_STAGES = ("raw", "cases", "dist")
REAL_EPOCH_VAL_CASES = 5


@dataclass
class Row:
    """One N's measurements: stage -> (seconds, peak RSS in MiB)."""

    n: int
    voxels: int = 0
    train_slices: int = 0
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` under GNU time: (wall seconds, peak RSS MiB, its output)."""
    stats = cwd / ".bench-time"
    proc = subprocess.run(
        [TIME, "-o", str(stats), "-f", "%e %M", *cmd],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(
            f"bench_scale: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    wall, rss = stats.read_text().split()[-2:]
    return float(wall), int(rss) / 1024, proc.stdout


def make_args(n: int) -> list[str]:
    """The make command line of the N-case pipeline (cache off, one method)."""
    return [
        "make",
        "-f",
        "spleen.make",
        f"DS=spleen-scale{n}",
        f"ARCHIVES=data/spleen-scale{n}.tar",
        f"LINEAGE=lineage/spleen-scale{n}.lineage",
        "N_TEST=2",
        "N_VAL=1",
        "METHODS=gdl",
        f"CC={PY}",
        "CACHE=",
    ]


EPOCH_PROBE = r"""
import sys, time, itertools, json
from segline.train import cli
from segline.train.loop import Trainer
steps = int(sys.argv[1])
class Probe(Trainer):
    def _run(self):
        ds = self._train_dataset()
        loader = self._train_loader(ds, 1)
        it = iter(loader)
        self._train_epoch(1, itertools.islice(it, 2))          # warm-up
        t = time.perf_counter()
        self._train_epoch(1, itertools.islice(it, steps))
        step = (time.perf_counter() - t) / steps
        t = time.perf_counter()
        self._evaluate(1, "val", self.val_cases[:1], with_loss=True)
        val = time.perf_counter() - t
        print(json.dumps({"step": step, "val_case": val, "slices": len(ds),
                          "batch": self.cfg.batch_size, "precision": self.precision.describe()}))
        return self.out
args = cli.build_parser().parse_args(sys.argv[2:])
cli.run_trainer(args, sys.argv[2:], trainer_cls=Probe)
"""


def measure(n: int, work: Path, proj: Path, steps: int, noop: bool) -> Row:
    """Every stage of the N-case pipeline; the archive comes from scale_data.py."""
    row = Row(n)
    archive = work / f"spleen-{n}.tar"
    if not archive.exists():
        subprocess.run(
            [
                PY,
                str(REPO / "bench" / "scale_data.py"),
                "spleen",
                "--cases",
                str(n),
                "--out",
                str(archive),
            ],
            check=True,
        )
    md5 = (work / f"spleen-{n}.tar.lineage").read_text().split()[-2]
    local = proj / "data" / f"spleen-scale{n}.tar"
    local.parent.mkdir(parents=True, exist_ok=True)
    if not local.exists():
        os.link(archive, local)
    (proj / "lineage" / f"spleen-scale{n}.lineage").write_text(
        f"# bench/scale_data.py, {n} labelled cases\n{md5}  data/spleen-scale{n}.tar\n"
    )
    ds = f"data/spleen-scale{n}"
    mk = make_args(n)
    env = {"PYTHONPATH": str(proj / "src")}

    def stage(name: str, cmd: list[str]) -> str:
        wall, rss, out = timed(cmd, proj, env)
        row.stages[name] = (wall, rss)
        print(f"  N={n} {name}: {wall:.1f} s, {rss:.0f} MiB", flush=True)
        return out

    stage(
        "md5",
        [
            PY,
            "-c",
            "import sys; from segline.lineage.lineagefile import parse_lineage, md5_of; "
            f"assert md5_of('data/spleen-scale{n}.tar') == '{md5}'",
        ],
    )
    stage("raw", [*mk, f"{ds}/raw"])
    (manifest := proj / ds / "bench-manifest.md5").unlink(missing_ok=True)
    stat = proj / ds / ".bench-manifest.md5.stat"
    stat.unlink(missing_ok=True)
    folder = next((proj / ds / "raw").iterdir())
    # git's racy rule (segline.lineage.manifest.RACY_NS): files written less than 2 s
    # before a scan are hashed but not cached; a make after an unpack comes later
    time.sleep(2.5)
    stage(
        "manifest cold", [PY, "-m", "segline.lineage.manifest", "--out", str(manifest), str(folder)]
    )
    stage(
        "manifest warm", [PY, "-m", "segline.lineage.manifest", "--out", str(manifest), str(folder)]
    )
    stage("cases", [*mk, f"{ds}/cases"])
    stage(
        "digest", [PY, "-c", f"from segline.digest import tree_digest; tree_digest('{ds}/cases')"]
    )
    stage("dist", [*mk, f"{ds}/dist"])
    cases = proj / ds / "cases"
    info = json.loads(
        subprocess.run(
            [
                PY,
                "-c",
                "import json,sys; from segline.casestore import CaseStore; "
                f"s=CaseStore('{cases}'); import numpy as np; "
                "ids=s.case_ids('train')+s.case_ids('val')+s.case_ids('test'); "
                "v=sum(int(np.prod(np.load(s.root/c/'label.npy', mmap_mode='r').shape)) "
                "for c in ids); "
                "print(json.dumps({'voxels': v}))",
            ],
            cwd=proj,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    row.voxels = info["voxels"]
    out = stage(
        "epoch",
        [
            PY,
            "-c",
            EPOCH_PROBE,
            str(steps),
            "--cases",
            f"{ds}/cases",
            "--dist",
            f"{ds}/dist",
            "--out",
            str(work / "probe-out"),
            "--net",
            "ENet",
            "--batch-size",
            "8",
            "--losses",
            "gdl:1",
            "--amp",
            "auto",
        ],
    )
    probe = json.loads(out.strip().splitlines()[-1])
    row.train_slices = probe["slices"]
    epoch = (
        probe["slices"] // probe["batch"] * probe["step"] + REAL_EPOCH_VAL_CASES * probe["val_case"]
    )
    row.stages["epoch"] = (epoch, row.stages["epoch"][1])
    row.stages["step"] = (probe["step"], 0.0)
    row.stages["val case"] = (probe["val_case"], 0.0)
    print(
        f"  N={n} epoch (projected): {epoch:.0f} s; step {probe['step']:.2f} s "
        f"({probe['precision']}), {probe['slices']} slices, val case {probe['val_case']:.1f} s",
        flush=True,
    )
    dbg = [*mk, "DEBUG=1", "EPC=1"]
    stage("train (debug)", [*dbg, f"results/spleen-scale{n}/debug/gdl"])
    stage("eval per case", [*dbg, "eval"])
    wall, rss = row.stages["eval per case"]
    row.stages["eval per case"] = (wall / 2, rss)
    stage("figures", [*dbg, "plots"])
    stage("report", [*dbg, "report"])
    stage("pack", [*dbg, "pack"])
    if noop:
        stage("no-op make", dbg)
        stage("make -n", [*dbg, "-n"])
    return row


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def table(rows: list[Row]) -> str:
    """The markdown tables: seconds and peak RSS per stage and N, and the growth."""
    sizes = [r.n for r in rows]
    names = [
        s
        for s in (*STAGES, "step", "val case", "no-op make", "make -n")
        if any(s in r.stages for r in rows)
    ]
    head = (
        "| stage | "
        + " | ".join(f"N={n} s" for n in sizes)
        + " | "
        + " | ".join(f"N={n} MiB" for n in sizes)
    )
    lines = [head + " |", "|---" * (1 + 2 * len(sizes)) + "|"]
    for s in names:
        secs = [f"{r.stages[s][0]:.2f}" if s in r.stages else "-" for r in rows]
        mibs = [f"{r.stages[s][1]:.0f}" if s in r.stages and r.stages[s][1] else "-" for r in rows]
        lines.append(f"| {s} | " + " | ".join(secs) + " | " + " | ".join(mibs) + " |")
    base = next((r for r in rows if r.n == 10), rows[0])
    top = rows[-1]
    lines += [
        "",
        f"Growth N={base.n} -> N={top.n}: cases x{top.n / base.n:.2f}, voxels "
        f"x{ratio(top.voxels, base.voxels)}, "
        f"training slices x{ratio(top.train_slices, base.train_slices)}",
        "",
        "| stage | time ratio | expected (work) | peak RSS ratio |",
        "|---|---|---|---|",
    ]
    for s in names:
        if s in base.stages and s in top.stages and s not in ("no-op make", "make -n"):
            work = (
                top.train_slices / base.train_slices
                if s in ("epoch",)
                else top.voxels / base.voxels
            )
            if s in (
                "step",
                "val case",
                "eval per case",
                "train (debug)",
                "figures",
                "report",
                "pack",
            ):
                work = 1.0
            lines.append(
                f"| {s} | {ratio(top.stages[s][0], base.stages[s][0])} | {work:.2f} | "
                f"{ratio(top.stages[s][1], base.stages[s][1])} |"
            )
    data = sum(top.stages[s][0] for s in DATA_STAGES)
    book = top.stages["md5"][0] + top.stages["manifest cold"][0] + top.stages["digest"][0]
    lines += [
        "",
        f"N={top.n}: md5 + manifest (cold) + case-store digest = {book:.1f} s, "
        f"{100 * book / data:.1f} % of the data stages ({data:.1f} s)",
    ]
    return "\n".join(lines)


#: the release's split of the 41 labelled cases (spleen.make: N_TEST=20, N_VAL=5)
RELEASE_LABELLED, RELEASE_TEST, RELEASE_VAL = 41, 20, 5
#: the full ``make -f spleen.make`` the projection is for: methods x epochs
FULL_METHODS, FULL_EPOCHS = 5, 100


def projection(top: Row, step: float, val_case: float, eval_case: float, where: str) -> str:
    """The full ``make -f spleen.make`` (FULL_METHODS trainings x FULL_EPOCHS epochs,
    each epoch over the release split's training slices at batch 8 plus its validation
    cases, then every method's test evaluation), from one step, one validation case
    and one test evaluation time; the data stages once, as measured at ``top``.

    The training slices of the release split are the measured ones scaled by case
    count (``top`` trains on N - 3 cases, the release on 41 - 25 = 16)."""
    bench_train = top.n - 3
    train = RELEASE_LABELLED - RELEASE_TEST - RELEASE_VAL
    slices = top.train_slices * train / bench_train
    epoch = slices / 8 * step + RELEASE_VAL * val_case
    data = sum(top.stages[s][0] for s in DATA_STAGES)
    evals = FULL_METHODS * RELEASE_TEST * eval_case
    total = data + FULL_METHODS * FULL_EPOCHS * epoch + evals
    return (
        f"Projection ({where}): {train} training cases ~ {slices:.0f} slices, "
        f"{slices / 8:.0f} steps x {step:.2f} s + {RELEASE_VAL} val cases x {val_case:.1f} s "
        f"= {epoch:.0f} s per epoch; {FULL_METHODS} methods x {FULL_EPOCHS} epochs = "
        f"{FULL_METHODS * FULL_EPOCHS * epoch / 3600:.1f} h; + data stages {data / 60:.1f} min "
        f"+ test evaluation {FULL_METHODS} x {RELEASE_TEST} cases x {eval_case:.0f} s = "
        f"{evals / 60:.0f} min; total {total / 3600:.1f} h ({total / 86400:.1f} days) "
        "one training at a time"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (tens of GB)")
    parser.add_argument("--sizes", default="5,10,20,41", help="labelled cases per run")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps")
    parser.add_argument("--keep", action="store_true", help="keep each N's data")
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="print the tables from the row<N>.json files a run left in --work",
    )
    parser.add_argument(
        "--gpu",
        metavar="NAME,STEP,VAL,EVAL",
        help="also project on a GPU from its step, validation case and test evaluation "
        "seconds (e.g. bench/bench_gpu.py's ENet 512² step)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    bf16 = "avx512_bf16" in flags.split()
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, avx512_bf16 {'yes' if bf16 else 'no'}; "
        f"sizes {sizes}",
        flush=True,
    )
    rows: list[Row] = []
    if args.tables_only:
        rows = [Row(**json.loads((args.work / f"row{n}.json").read_text())) for n in sizes]
        sizes = []
    for n in sizes:
        proj = args.work / f"proj{n}"
        shutil.rmtree(proj, ignore_errors=True)
        copy_project(proj)
        t0 = time.perf_counter()
        rows.append(measure(n, args.work, proj, args.steps, noop=n == sizes[-1]))
        print(f"N={n} done in {time.perf_counter() - t0:.0f} s", flush=True)
        if not args.keep:
            shutil.rmtree(proj, ignore_errors=True)
        (args.work / f"row{n}.json").write_text(json.dumps(rows[-1].__dict__))
    print()
    print(table(rows))
    top = rows[-1]
    print()
    print(
        projection(
            top,
            top.stages["step"][0],
            top.stages["val case"][0],
            top.stages["eval per case"][0],
            "this CPU",
        )
    )
    if args.gpu:
        name, *secs = args.gpu.split(",")
        step, val, ev = (float(x) for x in secs)
        print(projection(top, step, val, ev, name))
    else:
        print("Projection (GPU): give --gpu NAME,STEP,VAL,EVAL (seconds measured on the card)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
