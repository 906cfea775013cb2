"""Where a training's time goes on the accelerator (not a test), in one run.

For each network (``--nets``) on a synthetic case store of ``--size``² slices, side
by side:

(a) **pure step**: images/s of forward + backward + Adam step on one synthetic batch
    held on the device, in the precision and memory layout the trainer picks for the
    net (``AMP=auto`` rules of segline.train.device; median of ``--steps`` timed steps
    after warm-ups, synchronised), against the **trainer's epoch**: images/s of the
    training pass of ``python -m segline.train ... --epochs 2`` (the last epoch's
    ``images / train_seconds`` in its ``timing.csv``: loading, copies, steps and the
    epoch's one read of the device, no validation), and the trainer's share of the
    pure rate in percent;
(b) **loader share**: the same epoch's ``load_seconds / train_seconds``, the time the
    training loop waited on ``next(loader)``;
(c) unless ``--skip-pipelines``: the toy pipelines' wall times by stage
    (bench/bench_make.py).

Only public entry points are used (the trainer's command line and its ``timing.csv``,
the net registry, the device rules), so changes inside the trainer's loop do not break
it. Every child process runs under a timeout. Without a GPU use ``--device cpu`` with a
small ``--size`` (a smoke run: CPU numbers say nothing about the GPU target)::

    .venv/bin/python bench/bench_gpu.py                       # cuda, 512², ENet UNet UNet3D
    .venv/bin/python bench/bench_gpu.py --device cpu --size 32 --nets Dimwit --skip-pipelines
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_make import DATASETS, copy_project, make_stages, print_stage_table  # noqa: E402
from segline import atomic  # noqa: E402
from segline.casestore import write_case  # noqa: E402
from segline.distmaps import write_dist_store  # noqa: E402
from segline.nets.registry import get_net  # noqa: E402
from segline.preprocess.geometry import from_source  # noqa: E402
from segline.train import device as dev  # noqa: E402

N_TRAIN, N_VAL, N_TEST = 4, 1, 1
#: Slices per case (z); 3D patches are (DEPTH, size/4, size/4).
DEPTH = 16
COLUMNS = ["net", "pure img/s", "trainer img/s", "trainer %", "loader %"]


def build_store(root: Path, size: int) -> tuple[Path, Path]:
    """A case store of (size, size, DEPTH) CT-like volumes with a bright box (the
    organ), 0.8 mm pixels and 2.5 mm slices, and its distance maps; returns both."""
    cases = root / "cases"
    ids = [f"case_{i}" for i in range(N_TEST + N_VAL + N_TRAIN)]
    with atomic.atomic_dir(cases) as tmp:
        for i, cid in enumerate(ids):
            rng = np.random.default_rng(i)
            img = rng.normal(0.2, 0.05, size=(size, size, DEPTH)).astype(np.float32)
            lab = np.zeros(img.shape, np.uint8)
            lo, hi = size // 4 + i, size // 2 + i
            lab[lo:hi, lo:hi, 2 : DEPTH - 2] = 1
            img[lab == 1] += 0.6
            image, label, meta = from_source(
                [img],
                lab,
                np.diag([-0.8, -0.8, 2.5, 1.0]),
                (0.8, 0.8, 2.5),
                case_id=cid,
                channels=["CT"],
            )
            write_case(tmp, cid, image, label, meta)
        atomic.write_json(
            tmp / "dataset.json",
            {"name": "bench", "labels": {"0": "background", "1": "organ"}, "channels": ["CT"]},
        )
        split = {
            "test": ids[:N_TEST],
            "val": ids[N_TEST : N_TEST + N_VAL],
            "train": ids[N_TEST + N_VAL :],
            "infer": [],
        }
        atomic.write_json(tmp / "split.json", split)
    write_dist_store(cases, root / "dist")
    return cases, root / "dist"


def patch_of(size: int) -> tuple[int, int, int]:
    """The 3D patch (z, y, x) in voxels for a slice size."""
    return (DEPTH, max(16, size // 4), max(16, size // 4))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pure_rate(net: str, size: int, batch: int, device: torch.device, amp: str, steps: int) -> float:
    """Images/s of forward+backward+step on a synthetic batch kept on the device, in the
    precision and layout the trainer would use (median over ``steps`` timed steps after
    3 warm-ups; cross-entropy loss)."""
    torch.manual_seed(0)
    model = get_net(net, 1, 2).to(device)
    precision = dev.for_model(dev.choose(str(device), amp), model)
    dims = int(getattr(model, "dims", 2))
    fmt = precision.memory_format(dims)
    model = model.to(memory_format=fmt)
    shape = (batch, 1, *patch_of(size)) if dims == 3 else (batch, 1, size, size)
    image = torch.randn(shape, device=device).contiguous(memory_format=fmt)
    target = (torch.rand((shape[0], *shape[2:]), device=device) > 0.7).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler)
    model.train()
    times = []
    for i in range(3 + steps):
        _sync(device)
        t0 = time.perf_counter()
        with precision.autocast():
            logits = model(image)
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def trainer_rate(
    net: str,
    store: tuple[Path, Path],
    size: int,
    batch: int,
    device: str,
    amp: str,
    workers: str,
    out: Path,
    timeout: float,
) -> tuple[float, float]:
    """Images/s of the trainer's last training pass (2 epochs, ``timing.csv``) and the
    percent of it spent waiting on the loader, via its CLI."""
    cases, dist = store
    cmd = [sys.executable, "-m", "segline.train", "--cases", str(cases), "--dist", str(dist)]
    cmd += ["--out", str(out), "--net", net, "--epochs", "2", "--batch-size", str(batch)]
    cmd += ["--device", device, "--amp", amp, "--losses", "ce:1", "--metrics", "dice"]
    if net.lower() in ("unet3d", "dimwit3d"):
        samples = 4 * batch
        cmd += ["--patch", ",".join(map(str, patch_of(size))), "--samples-per-epoch", str(samples)]
    cmd += ["--workers", workers]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr[-2000:]}")
    with open(out / "timing.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    seconds = float(last["train_seconds"])
    return float(last["images"]) / seconds, 100 * float(last["load_seconds"]) / seconds


def run_pipelines(timeout: float) -> None:
    """(c) each toy pipeline from scratch, wall time by stage (bench_make.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_project(Path(tmp) / "p")
        for ds in DATASETS:
            run = ["-f", f"{ds}.make", "TOY=1"]
            total, records = make_stages(root, *run, timeout=timeout)
            print_stage_table(f"make {' '.join(run)}", total, records)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, default=512, help="slice size in pixels (size²)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--nets", nargs="+", default=["ENet", "UNet", "UNet3D"])
    p.add_argument("--workers", default="auto", help="the trainer's DataLoader processes (WORKERS)")
    p.add_argument("--steps", type=int, default=10, help="timed pure steps (median)")
    p.add_argument("--amp", default="auto", help="auto, off, bf16, fp16 (the AMP knob)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per child process")
    p.add_argument("--skip-pipelines", action="store_true", help="no toy pipelines (c)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {args.device} ({name}), torch {torch.__version__}, {os.cpu_count()} cores")
    print(f"size {args.size}², batch {args.batch}, AMP={args.amp}, WORKERS={args.workers}")
    if device.type != "cuda":
        print("note: CPU run, a smoke test of this script; the numbers are not the GPU target")
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp), args.size)
        print("  ".join(f"{c:>14s}" for c in COLUMNS))
        for net in args.nets:
            pure = pure_rate(net, args.size, args.batch, device, args.amp, args.steps)
            trainer, share = trainer_rate(
                net,
                store,
                args.size,
                args.batch,
                args.device,
                args.amp,
                args.workers,
                Path(tmp) / f"run-{net}",
                args.timeout,
            )
            cells = [net, f"{pure:.1f}", f"{trainer:.1f}", f"{100 * trainer / pure:.1f}"]
            cells.append(f"{share:.1f}")
            print("  ".join(f"{c:>14s}" for c in cells), flush=True)
    if not args.skip_pipelines:
        run_pipelines(args.timeout * 6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
