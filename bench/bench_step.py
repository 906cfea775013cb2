"""Time one CPU training step (forward + backward + Adam) in fp32, bf16 autocast, and
bf16 autocast with channels_last / channels_last_3d, for ENet, UNet, ResidualUNet and
UNet3D.

The three variants of a net start from the same weights; their steps are interleaved
(fp32, bf16, bf16+CL, fp32, ...) so that background load hits all alike. Each is
warmed up, then the median of ``--repeats`` steps is reported, and the speed-up of the
mode training uses by default (``AMP=auto``: bf16, with channels_last unless the net
opts out, see ``segline.train.device.for_model``) over fp32, as the median of the
per-round ratios. The loss is cross-entropy on random labels, computed in fp32.

Usage:
    .venv/bin/python bench/bench_step.py                 # full run (~5 min, 2 cores)
    .venv/bin/python bench/bench_step.py --quick         # smoke test, seconds

Example output row (markdown)::

    | UNet | 8×1×96×96 | 245 | 180 | 167 | bf16+CL | 1.46× |
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
        bf16: use ``torch.autocast("cpu", bfloat16)``.
        channels_last: put weights and input in channels_last(_3d).
        seed: weights and batch are drawn from this seed (same for both modes).
    """

    def __init__(self, case: Case, bf16: bool, channels_last: bool, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.net: nn.Module = get_net(case.net, case.shape[1], 2)
        self.x = torch.randn(case.shape)
        self.y = torch.randint(0, 2, (case.shape[0], *case.shape[2:]))
        self.bf16 = bf16
        if channels_last:
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


MODES = {"fp32": (False, False), "bf16": (True, False), "bf16+CL": (True, True)}
"""Mode name → (bf16 autocast, channels_last)."""


def bench(case: Case, warmup: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median step time of each of :data:`MODES`, steps interleaved.

    Args:
        case: what to run.
        warmup: untimed steps per mode.
        repeats: timed steps per mode.

    Returns:
        Mode → (median seconds, median of the per-round ratios fp32 / mode), the
        ratios being robust to slow drifts of background load.
    """
    steppers = {name: Stepper(case, bf16, cl) for name, (bf16, cl) in MODES.items()}
    for _ in range(warmup):
        for s in steppers.values():
            s.step()
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(repeats):
        for name, s in steppers.items():
            times[name].append(s.step())
    out = {}
    for name, ts in times.items():
        ratios = [a / b for a, b in zip(times["fp32"], ts, strict=True)]
        out[name] = (statistics.median(ts), statistics.median(ratios))
    return out


def default_mode(net: str) -> str:
    """The mode training uses with ``AMP=auto`` on a bf16 CPU (see ``device.for_model``)."""
    return "bf16+CL" if getattr(get_net(net, 1, 2), "channels_last_ok", True) else "bf16"


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
        Case("ResidualUNet", (8, 1, 256, 256)),
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
    print(
        "| net | input (B×C×spatial) | fp32 ms | bf16 ms | bf16 + channels_last ms "
        "| training default (AMP=auto) | its speed-up |"
    )
    print("|---|---|---:|---:|---:|---|---:|")
    for case in cases:
        res = bench(case, warmup, repeats)
        mode = default_mode(case.net)
        print(
            f"| {case.net} | {_fmt_shape(case.shape)} | {1e3 * res['fp32'][0]:.0f} "
            f"| {1e3 * res['bf16'][0]:.0f} | {1e3 * res['bf16+CL'][0]:.0f} | {mode} "
            f"| {res[mode][1]:.2f}× |",
            flush=True,
        )
    print(f"\n- load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
