"""Where a training's time goes on the accelerator (not a test), in one run.

For each network (``--nets``) on a synthetic case store of ``--size``² slices, side
by side:

(a) **pure step**: images/s of forward + backward + Adam step on one synthetic batch
    held on the device (median of ``--steps`` timed steps after warm-ups, synchronised),
    against the **trainer's epoch**: images/s of ``python -m segline.train ... --epochs
    2`` (the last epoch's seconds in its ``timing.csv``; they include a small
    validation of one case), and the trainer's share of the pure rate in percent;
(b) **loader share**: a loop like the trainer's (DataLoader over the store's slices or
    patches, copy to the device, step) timed apart: the seconds spent waiting on
    ``next(loader)`` over the loop's total;
(c) unless ``--skip-pipelines``: the toy pipelines' wall times by stage
    (bench/bench_make.py).

Only public entry points are used (the trainer's command line and its ``timing.csv``,
the net registry, the datasets), so changes inside the trainer's loop do not break it;
``--workers N`` reaches the trainer only when its ``--help`` lists ``--workers``.
Every child process runs under a timeout. Without a GPU use ``--device cpu`` with a
small ``--size`` (a smoke run: CPU numbers say nothing about the GPU target)::

    .venv/bin/python bench/bench_gpu.py                       # cuda, 512², ENet UNet UNet3D
    .venv/bin/python bench/bench_gpu.py --device cpu --size 64 --nets UNet --skip-pipelines
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
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_make import DATASETS, copy_project, make_stages, print_stage_table  # noqa: E402
from segline import atomic  # noqa: E402
from segline.casestore import CaseStore, write_case  # noqa: E402
from segline.data.patches import PatchDataset, patch_collate  # noqa: E402
from segline.data.slices import SliceDataset, pad_collate  # noqa: E402
from segline.distmaps import write_dist_store  # noqa: E402
from segline.nets.registry import get_net  # noqa: E402
from segline.preprocess.geometry import from_source  # noqa: E402

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


def _autocast(device: torch.device, amp: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _step(model, opt, image, target, device, amp) -> None:
    with _autocast(device, amp):
        logits = model(image)
    loss = torch.nn.functional.cross_entropy(logits.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def pure_rate(net: str, size: int, batch: int, device: torch.device, amp: str, steps: int) -> float:
    """Images/s of forward+backward+step on a synthetic batch kept on the device
    (median over ``steps`` timed steps after 3 warm-ups; cross-entropy loss)."""
    torch.manual_seed(0)
    model = get_net(net, 1, 2).to(device)
    dims = int(getattr(model, "dims", 2))
    shape = (batch, 1, *patch_of(size)) if dims == 3 else (batch, 1, size, size)
    image = torch.randn(shape, device=device)
    target = (torch.rand((shape[0], *shape[2:]), device=device) > 0.7).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(3 + steps):
        _sync(device)
        t0 = time.perf_counter()
        _step(model, opt, image, target, device, amp)
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def loader_share(
    net: str,
    store: tuple[Path, Path],
    size: int,
    batch: int,
    device: torch.device,
    amp: str,
    workers: int,
) -> float:
    """Percent of a trainer-like epoch (loader → device → step) spent in ``next(loader)``."""
    torch.manual_seed(0)
    model = get_net(net, 1, 2).to(device)
    dims = int(getattr(model, "dims", 2))
    cs = CaseStore(store[0], store[1])
    train = cs.case_ids("train")
    if dims == 3:
        ds = PatchDataset(cs, train, patch_of(size), samples_per_epoch=4 * batch, seed=0)
        collate = patch_collate
    else:
        ds = SliceDataset(cs, train, dist_kind="2d")
        collate = pad_collate
    loader = DataLoader(
        ds, batch_size=batch, shuffle=dims != 3, collate_fn=collate, num_workers=workers
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    waiting = 0.0
    _sync(device)
    t_start = time.perf_counter()
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            waiting += time.perf_counter() - t0
            break
        waiting += time.perf_counter() - t0
        image = item["image"].to(device, non_blocking=True)
        target = item["target"].to(device, non_blocking=True).argmax(1)
        _step(model, opt, image, target, device, amp)
    _sync(device)
    return 100 * waiting / (time.perf_counter() - t_start)


def trainer_rate(
    net: str,
    store: tuple[Path, Path],
    size: int,
    batch: int,
    device: str,
    amp: str,
    workers: int | None,
    out: Path,
    timeout: float,
) -> float:
    """Images/s of the trainer's last epoch (2 epochs, ``timing.csv``), via its CLI."""
    cases, dist = store
    cmd = [sys.executable, "-m", "segline.train", "--cases", str(cases), "--dist", str(dist)]
    cmd += ["--out", str(out), "--net", net, "--epochs", "2", "--batch-size", str(batch)]
    cmd += ["--device", device, "--amp", amp, "--losses", "ce:1", "--metrics", "dice"]
    images = N_TRAIN * DEPTH
    if net.lower() == "unet3d":
        samples = 4 * batch
        cmd += ["--patch", ",".join(map(str, patch_of(size))), "--samples-per-epoch", str(samples)]
        images = samples
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr[-2000:]}")
    with open(out / "timing.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return images / float(rows[-1]["seconds"])


def trainer_accepts(option: str) -> bool:
    """True when the trainer's ``--help`` lists ``option`` (e.g. ``--workers``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "segline.train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return option in proc.stdout


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
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--steps", type=int, default=10, help="timed pure steps (median)")
    p.add_argument("--amp", default=None, help="off, bf16, fp16 (default: bf16 on cuda)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per child process")
    p.add_argument("--skip-pipelines", action="store_true", help="no toy pipelines (c)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    amp = args.amp or ("bf16" if device.type == "cuda" else "off")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {args.device} ({name}), torch {torch.__version__}, {os.cpu_count()} cores")
    print(f"size {args.size}², batch {args.batch}, amp {amp}, workers {args.workers}")
    if device.type != "cuda":
        print("note: CPU run, a smoke test of this script; the numbers are not the GPU target")
    workers = args.workers if trainer_accepts("--workers") else None
    if workers is None:
        print("note: the trainer has no --workers option; it ran with its own loader")
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp), args.size)
        print("  ".join(f"{c:>14s}" for c in COLUMNS))
        for net in args.nets:
            pure = pure_rate(net, args.size, args.batch, device, amp, args.steps)
            trainer = trainer_rate(
                net,
                store,
                args.size,
                args.batch,
                args.device,
                amp,
                workers,
                Path(tmp) / f"run-{net}",
                args.timeout,
            )
            share = loader_share(net, store, args.size, args.batch, device, amp, args.workers)
            cells = [net, f"{pure:.1f}", f"{trainer:.1f}", f"{100 * trainer / pure:.1f}"]
            cells.append(f"{share:.1f}")
            print("  ".join(f"{c:>14s}" for c in cells), flush=True)
    if not args.skip_pipelines:
        run_pipelines(args.timeout * 6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
