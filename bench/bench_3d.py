"""Benchmark the 3D (vessels) training pieces on the CPU: a training step, sliding-window
inference of a whole volume, and patch loading.

1. Training step of ``UNet3D`` (default width) on a batch of random patches with the
   vessel methods' loss ``ce:1,dice:1,mip:1`` (MIP keys included), in fp32 and in
   bf16 autocast + ``channels_last_3d``; both start from the same weights, steps are
   interleaved so background load hits both alike, and after warm-up the median of
   ``--repeats`` steps is reported with the ratio fp32 / bf16.
2. :func:`segline.train.sliding.sliding_window_predict` of one toy-sized volume
   (default 1×40×64×64, patch 32×48×48, overlap 0.5, 8 tiles), fp32 and bf16 (the
   bf16 net converted to ``channels_last_3d`` first, as the trainer must do).
3. :class:`segline.data.patches.PatchDataset` item time on a temporary store
   (memory-mapped reads of the patch window; the first item of a case also scans the
   target for foreground voxels, timed separately).

Usage (from the repository root):
    .venv/bin/python bench/bench_3d.py                # ~1-2 min on 2 cores
    .venv/bin/python bench/bench_3d.py --quick        # smoke test, seconds
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.data.patches import PatchDataset, patch_collate
from segline.experiments.vessels import loss as _mip_loss  # noqa: F401  registers "mip"
from segline.experiments.vessels.inputs import MipInputs
from segline.losses import CombinedLoss
from segline.nets import get_net
from segline.train.device import Precision
from segline.train.sliding import sliding_window_predict, tile_positions

LOSSES = "ce:1,dice:1,mip:1"


def machine() -> list[str]:
    """One line per fact about this machine and software (for RESULTS.md).

    Returns:
        Lines such as ``"nproc: 2"``.

    Example:
        >>> any(line.startswith("torch: ") for line in machine())
        True
    """
    model = "unknown"
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return [
        f"CPU: {model} ({platform.machine()})",
        f"nproc: {os.cpu_count()}, torch threads: {torch.get_num_threads()}",
        f"torch: {torch.__version__}, numpy: {np.__version__}, python: {platform.python_version()}",
        f"oneDNN native bf16: {bf16}, cpu capability: {torch.backends.cpu.get_cpu_capability()}",
        "load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg()),
    ]


def fake_batch(batch: int, size: tuple[int, int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A random patch batch with every key the ``mip`` methods use.

    Args:
        batch: B.
        size: patch (D, H, W).
        seed: random seed.

    Returns:
        ``image``, ``target`` (2 classes, ~5 % foreground), ``mask``, ``mip_*``.
    """
    g = torch.Generator().manual_seed(seed)
    lab = (torch.rand(batch, *size, generator=g) < 0.05).long()
    return {
        "image": torch.randn(batch, 1, *size, generator=g),
        "target": torch.nn.functional.one_hot(lab, 2).movedim(-1, 1).float(),
        "mask": (torch.rand(batch, *size, generator=g) > 0.2).float(),
        "mip_label": lab.amax(1),
        "mip_depth": torch.randint(0, size[0], (batch, *size[1:]), generator=g),
        "mip_valid": (torch.rand(batch, *size[1:], generator=g) > 0.5).float(),
    }


class Step:
    """One training step (forward, combined loss, backward, Adam) in one precision.

    Args:
        bf16: bf16 autocast + channels_last_3d (else fp32).
        batch: the (fixed) batch.
        net_kwargs: ``UNet3D`` arguments.
    """

    def __init__(self, bf16: bool, batch: dict[str, torch.Tensor], net_kwargs: dict) -> None:
        torch.manual_seed(0)
        self.bf16 = bf16
        self.net = get_net("UNet3D", 1, 2, **net_kwargs).train()
        self.batch = dict(batch)
        if bf16:
            self.net = self.net.to(memory_format=torch.channels_last_3d)
            self.batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last_3d)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.crit = CombinedLoss.from_spec(LOSSES, n_classes=2)

    def __call__(self) -> float:
        """Run one step; return its wall time in seconds."""
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.net(self.batch["image"])
        loss, _ = self.crit(logits, self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0


def interleaved(fns: list[Callable[[], float]], warmup: int, repeats: int) -> list[list[float]]:
    """Warm up, then time the functions alternately.

    Args:
        fns: each returns its own wall time in seconds.
        warmup: untimed calls of each.
        repeats: timed calls of each.

    Returns:
        One list of times per function.
    """
    for _ in range(warmup):
        for f in fns:
            f()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for t, f in zip(times, fns, strict=True):
            t.append(f())
    return times


def bench_loading(
    root: Path, shape: tuple[int, int, int], patch: tuple[int, int, int], n: int
) -> tuple[float, float, float]:
    """Time :class:`PatchDataset` items on a freshly written one-case store.

    Args:
        root: an empty temporary folder.
        shape: the case's (Z, Y, X).
        patch: the patch size.
        n: items per pass.

    Returns:
        (median ms per item + collate on the first pass, right after the store was
        written; the same on a second pass over the same items, page cache warm;
        ms of the one-off foreground scan of the case).
    """
    rng = np.random.default_rng(0)
    cases = root / "cases"
    lab = (rng.random(shape) < 0.02).astype(np.uint8)
    write_case(
        cases, "c_1", rng.normal(size=(1, *shape)).astype(np.float32), lab, {"shape": list(shape)}
    )
    mip = root / "mip" / "c_1"
    mip.mkdir(parents=True)
    atomic.save_npy(mip / "mip_label.npy", lab.max(0))
    atomic.save_npy(mip / "depth.npy", rng.integers(0, shape[0], shape[1:]).astype(np.int16))
    atomic.write_json(root / "mip" / "mip.json", {"axis": 0})
    atomic.write_json(
        cases / "dataset.json", {"labels": {"0": "bg", "1": "vessel"}, "channels": ["CT"]}
    )
    atomic.write_json(cases / "split.json", {"train": ["c_1"]})
    ds = PatchDataset(CaseStore(cases), ["c_1"], patch, samples_per_epoch=n,
                      inputs=MipInputs(root / "mip"))
    t0 = time.perf_counter()
    ds.fg_voxels("c_1")
    scan = time.perf_counter() - t0
    medians = []
    for _ in range(2):
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            patch_collate([ds[i]])
            times.append(time.perf_counter() - t0)
        medians.append(1e3 * statistics.median(times))
    return medians[0], medians[1], 1e3 * scan


def main(argv: list[str] | None = None) -> None:
    """Run the three benchmarks and print markdown.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per mode (>= 5)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat (smoke)")
    args = parser.parse_args(argv)
    patch, volume, batch, net_kwargs = (32, 48, 48), (1, 40, 64, 64), 2, {}
    load_shape = (96, 192, 192)
    warmup, repeats = args.warmup, args.repeats
    if args.quick:
        patch, volume, net_kwargs = (8, 16, 16), (1, 12, 20, 20), {"base": 4, "depth": 2}
        load_shape, warmup, repeats = (16, 32, 32), 0, 1

    for line in machine():
        print(f"- {line}")
    print(f"- warm-up {warmup}, median of {repeats} interleaved runs per mode\n")

    data = fake_batch(batch, patch)
    t32, t16 = interleaved(
        [Step(False, data, net_kwargs), Step(True, data, net_kwargs)], warmup, repeats
    )
    m32, m16 = statistics.median(t32), statistics.median(t16)
    shape = "×".join(map(str, (batch, 1, *patch)))
    print(
        "| what | input | fp32 median (min) | bf16 + channels_last_3d median (min) |"
        " fp32 / bf16 (medians) |"
    )
    print("|---|---|---:|---:|---:|")
    print(
        f"| train step UNet3D, `{LOSSES}` | {shape} | {1e3 * m32:.0f} ({1e3 * min(t32):.0f}) ms"
        f" | {1e3 * m16:.0f} ({1e3 * min(t16):.0f}) ms | {m32 / m16:.2f}× |",
        flush=True,
    )

    torch.manual_seed(0)
    net = get_net("UNet3D", 1, 2, **net_kwargs).eval()
    image = torch.randn(volume, generator=torch.Generator().manual_seed(1))
    cpu = torch.device("cpu")
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)  # as the trainer does
    runs = {
        False: lambda: sliding_window_predict(net, image, patch, overlap=0.5, batch_size=2),
        True: lambda: sliding_window_predict(
            net_cl,
            image,
            patch,
            overlap=0.5,
            batch_size=2,
            precision=Precision(cpu, torch.bfloat16, channels_last=True),
        ),
    }

    def timed(bf16: bool) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            runs[bf16]()
            return time.perf_counter() - t0

        return run

    s32, s16 = interleaved([timed(False), timed(True)], warmup, repeats)
    n_tiles = len(tile_positions(volume[1:], patch, 0.5))
    ms32, ms16 = statistics.median(s32), statistics.median(s16)
    vol = "×".join(map(str, volume))
    print(
        f"| sliding window, patch {'×'.join(map(str, patch))}, overlap 0.5 ({n_tiles} tiles, "
        f"batch 2) | {vol} | {1e3 * ms32:.0f} ({1e3 * min(s32):.0f}) ms"
        f" | {1e3 * ms16:.0f} ({1e3 * min(s16):.0f}) ms | {ms32 / ms16:.2f}× |"
    )
    diff = float((runs[False]() - runs[True]()).abs().max())
    print(f"\n- sliding window max |p_fp32 - p_bf16| = {diff:.3g}")

    with tempfile.TemporaryDirectory() as tmp:
        cold, warm, scan = bench_loading(Path(tmp), load_shape, patch, 3 if args.quick else 21)
    print(
        f"- PatchDataset (+ collate) item, {'×'.join(map(str, patch))} patch of a "
        f"1×{'×'.join(map(str, load_shape))} memory-mapped case with MIP keys, median: "
        f"{warm:.2f} ms (page cache warm), {cold:.2f} ms (first pass, right after writing);"
        f" one-off foreground scan of the case {scan:.1f} ms"
    )
    print(f"- load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
