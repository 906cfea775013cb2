"""Device, precision and thread choices for training.

CUDA when present (fp16 or bf16 autocast), CPU otherwise. On a CPU with native
bf16 (AVX512-BF16 / AMX) bf16 autocast + channels_last is the default for ``auto``
— bench/RESULTS.md shows the speed-up and that the toy test Dice is unchanged —
except for nets that opt out of channels_last (:func:`for_model`).
``DEVICE=`` / ``AMP=`` override.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Precision:
    """Where and how to compute.

    Attributes:
        device: torch device.
        amp_dtype: autocast dtype or None for fp32.
        channels_last: use channels_last memory format (2D) / channels_last_3d (3D).
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> torch.autocast:
        """Autocast context (disabled for fp32)."""
        return torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def memory_format(self, dims: int) -> torch.memory_format:
        """channels_last (2D nets) / channels_last_3d (3D nets) when enabled."""
        if not self.channels_last:
            return torch.contiguous_format
        return torch.channels_last_3d if dims == 3 else torch.channels_last

    def describe(self) -> str:
        """E.g. ``cpu bf16 channels_last``."""
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return f"{self.device} {amp}{' channels_last' if self.channels_last else ''}"


def for_model(precision: Precision, model: torch.nn.Module) -> Precision:
    """``precision`` without channels_last when the net says it is slower with it.

    A net class may set ``channels_last_ok = False`` (ENet does: with bf16 on a 2-core
    AVX512-BF16 CPU its training step took 602 ms in channels_last vs 335 ms in NCHW,
    fp32 503 ms, bench/RESULTS.md); every other net keeps the layout chosen by
    :func:`choose`.
    """
    if precision.channels_last and not getattr(model, "channels_last_ok", True):
        return replace(precision, channels_last=False)
    return precision


def cpu_has_bf16() -> bool:
    """True when oneDNN reports native bf16 support on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose(device: str = "auto", amp: str = "auto") -> Precision:
    """Resolve ``DEVICE`` and ``AMP`` knobs.

    Args:
        device: "auto", "cpu", "cuda" or "cuda:N".
        amp: "auto", "off", "bf16" or "fp16".
    """
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"DEVICE={device} but CUDA is not available")
    if amp == "off":
        dtype = None
    elif amp == "bf16":
        dtype = torch.bfloat16
    elif amp == "fp16":
        dtype = torch.float16
    elif dev.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if cpu_has_bf16() else None
    return Precision(dev, dtype, channels_last=dtype is not None or dev.type == "cuda")


def threads_for_make() -> int:
    """Threads per training process: cores divided by make's ``-jN`` (from MAKEFLAGS),
    so ``make -j2`` does not oversubscribe the CPU. In a SLURM job (``CC='srun -c8 …'``)
    the job's own CPUs (``SLURM_CPUS_PER_TASK``): make's jobs run on other allocations.
    ``SEGLINE_THREADS`` overrides both."""
    if os.environ.get("SEGLINE_THREADS"):
        return max(1, int(os.environ["SEGLINE_THREADS"]))
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm_cpus.isdigit() and int(slurm_cpus) > 0:
        return int(slurm_cpus)
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    match = re.search(r"(?:^|\s)-j\s*(\d+)", os.environ.get("MAKEFLAGS", ""))
    jobs = int(match.group(1)) if match else 1
    return max(1, cores // max(1, jobs))
