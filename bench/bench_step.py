"""Time one CPU training step (forward + backward + Adam) in fp32 vs bf16 autocast
with channels_last / channels_last_3d, for ENet, UNet and UNet3D.

Both variants of a net start from the same weights; their steps are interleaved
(fp32, bf16, fp32, bf16, ...) so that background load hits both alike. Each is
warmed up, then the median of ``--repeats`` steps is reported, with the speed-up
``fp32 / bf16`` (median of the ratios of consecutive pairs). The loss is
cross-entropy on random labels, computed in fp32.

Usage:
    .venv/bin/python bench/bench_step.py                 # full run (~2-3 min, 2 cores)
    .venv/bin/python bench/bench_step.py --quick         # smoke test, seconds

Example output row (markdown)::

    | UNet | 8×1×96×96 | 640 | 310 | 2.06× |
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segline.nets import get_net


@dataclass(frozen=True)
class Case:
    """One benchmark configuration: a net and its input shape (B, C, *spatial)."""

    net: str
    shape: tuple[int, ...]


def cpu_info() -> dict[str, str]:
    """Describe the CPU and torch's view of its bf16 support.

    Returns:
        Ordered name → value strings (model, cores, threads, torch version, ISA
        level, relevant CPU flags, mkldnn availability and bf16 support).

    Example:
        >>> "torch" in cpu_info()
        True
    """
    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", "", "x86_64"):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"]
    mkldnn_bf16 = "n/a"
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if probe is not None:
        try:
            mkldnn_bf16 = str(bool(probe()))
        except RuntimeError:
            mkldnn_bf16 = "error"
    return {
        "cpu": model,
        "nproc": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "cpu flags": " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in wanted),
        "mkldnn available": str(torch.backends.mkldnn.is_available()),
        "mkldnn bf16 supported": mkldnn_bf16,
        "load average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


class Stepper:
    """A net, its Adam optimiser and a fixed batch, in one precision/layout.

    Args:
        case: net name and input shape.
        bf16: use ``torch.autocast("cpu", bfloat16)`` and channels_last(_3d).
        seed: weights and batch are drawn from this seed (same for both modes).
    """

    def __init__(self, case: Case, bf16: bool, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.net: nn.Module = get_net(case.net, case.shape[1], 2)
        self.x = torch.randn(case.shape)
        self.y = torch.randint(0, 2, (case.shape[0], *case.shape[2:]))
        self.bf16 = bf16
        if bf16:
            fmt = torch.channels_last if len(case.shape) == 4 else torch.channels_last_3d
            self.net = self.net.to(memory_format=fmt)
            self.x = self.x.contiguous(memory_format=fmt)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.net.train()

    def step(self) -> float:
        """Run one training step.

        Returns:
            Wall time of the step in seconds.
        """
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.net(self.x)
        loss = F.cross_entropy(logits.float(), self.y)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0


def bench(case: Case, warmup: int, repeats: int) -> tuple[float, float, float]:
    """Median step time of fp32 and of bf16 + channels_last, interleaved.

    Args:
        case: what to run.
        warmup: untimed steps per mode.
        repeats: timed steps per mode.

    Returns:
        (fp32 median, bf16 median) in seconds, and the median of the per-pair
        ratios fp32/bf16 (robust to slow drifts of background load).
    """
    fp32, bf16 = Stepper(case, bf16=False), Stepper(case, bf16=True)
    for _ in range(warmup):
        fp32.step()
        bf16.step()
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for s in (fp32, bf16):
            times[s.bf16].append(s.step())
    ratios = [a / b for a, b in zip(times[False], times[True], strict=True)]
    return (
        statistics.median(times[False]),
        statistics.median(times[True]),
        statistics.median(ratios),
    )


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every case, print a markdown table.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per mode (≥5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per mode")
    parser.add_argument("--size3d", type=int, default=48, help="UNet3D patch edge")
    parser.add_argument("--batch3d", type=int, default=2, help="UNet3D batch size")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat (smoke)")
    args = parser.parse_args(argv)

    s3 = args.size3d
    cases = [
        Case("ENet", (8, 1, 256, 256)),
        Case("ENet", (8, 1, 96, 96)),
        Case("UNet", (8, 1, 256, 256)),
        Case("UNet", (8, 1, 96, 96)),
        Case("UNet3D", (args.batch3d, 1, s3, s3, s3)),
    ]
    warmup, repeats = args.warmup, args.repeats
    if args.quick:
        small = [Case(c.net, c.shape[:2] + (16,) * (len(c.shape) - 2)) for c in cases]
        cases = list(dict.fromkeys(small))  # dedupe, keep order
        warmup, repeats = 0, 1

    for key, value in cpu_info().items():
        print(f"- {key}: {value}")
    print(f"- warm-up {warmup}, median of {repeats} interleaved steps per mode\n")
    print("| net | input (B×C×spatial) | fp32 ms | bf16 + channels_last ms | speed-up |")
    print("|---|---|---:|---:|---:|")
    for case in cases:
        t32, t16, ratio = bench(case, warmup, repeats)
        print(
            f"| {case.net} | {_fmt_shape(case.shape)} | {1e3 * t32:.0f} | {1e3 * t16:.0f} "
            f"| {ratio:.2f}× |",
            flush=True,
        )
    print(f"\n- load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
