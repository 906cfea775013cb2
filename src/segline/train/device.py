"""Device, precision and thread choices for training.

CUDA when present (fp16 or bf16 autocast), CPU otherwise. On a CPU with native
bf16 (AVX512-BF16 / AMX) bf16 autocast + channels_last is the default for ``auto``
— bench/RESULTS.md shows the speed-up and that the toy test Dice is unchanged —
except for nets that opt out of channels_last (:func:`for_model`).
``DEVICE=`` / ``AMP=`` override.

Threads (``THREADS``, ``--threads``): a training computes with a fixed number of
torch intra-op threads, :data:`DEFAULT_THREADS` unless asked otherwise, never derived
from make's ``-jN``, the cores or a SLURM allocation. The thread count splits the
reductions of convolutions and matrix products (oneDNN, MKL, OpenMP), so it changes the
last bits of weights and gradients: it is part of a training's identity (``args.json``
``threads``, the make record) like the seed, and ``make -j1`` and ``make -j2`` give
byte-identical checkpoints. The cores and ``-jN`` (:func:`cores_for_make`) only size the
helper processes (``WORKERS``, metric processes), which change no result.
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
        auto_amp: the autocast dtype was chosen by ``AMP=auto`` (a net may then
            decline it, :func:`for_model`), not asked for by name.
        card: the GPU taken from ``GPUS`` (:mod:`segline.train.gpus`), e.g.
            ``cuda:2 NVIDIA H100 80GB HBM3, token gpu-2-0``; recorded in provenance
            only. Empty when ``GPUS`` is not set.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    auto_amp: bool = False
    card: str = ""

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

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 autocast needs loss scaling: gradients below fp16's smallest normal
        (6e-5) flush to zero without it. bf16 has fp32's exponent range and does not."""
        return self.amp_dtype is torch.float16

    def describe(self) -> str:
        """E.g. ``cpu bf16 channels_last``; it enters the training's identity.

        A card taken from ``GPUS`` is described by its type only (``cuda``, as
        ``DEVICE=auto`` on a one-GPU machine): which card was free must not refuse a
        resume nor differ between two runs of one experiment (:attr:`card` has it).
        """
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        where = self.device.type if self.card else str(self.device)
        return f"{where} {amp}{' channels_last' if self.channels_last else ''}"


def to_memory_format(model: torch.nn.Module, fmt: torch.memory_format) -> torch.nn.Module:
    """``model`` with its parameters and buffers of the format's rank in ``fmt``.

    ``channels_last`` applies to 4-D tensors (2D convolutions), ``channels_last_3d`` to
    5-D ones (3D convolutions); the others are left as they are. ``Module.to`` instead
    converts every 4-D and 5-D tensor and fails on a net that mixes 2D and 3D layers
    (the fused MIP network: a 3D body and a 2D projection head) with ``required rank
    5 tensor to use channels_last_3d format``. For a net of one dimensionality both
    convert the same tensors, so its results are unchanged.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv3d(2, 2, 3), torch.nn.Conv2d(2, 2, 3))
        >>> net = to_memory_format(net, torch.channels_last_3d)
        >>> net[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
        True
        >>> net[1].weight.is_contiguous()
        True
    """
    if fmt is torch.contiguous_format:
        return model
    rank = 5 if fmt is torch.channels_last_3d else 4

    def convert(t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=fmt) if t.dim() == rank else t

    return model._apply(convert)


def for_model(precision: Precision, model: torch.nn.Module) -> Precision:
    """``precision`` adjusted to what is measured to be faster for this net.

    - A net class may set ``channels_last_ok = False`` (ENet does: with bf16 on a 2-core
      AVX512-BF16 CPU its training step took 602 ms in channels_last vs 335 ms in NCHW,
      fp32 503 ms, bench/RESULTS.md); every other net keeps the layout chosen by
      :func:`choose`.
    - A net class may set ``cuda_amp_ok = False`` (ENet and UNet3D do: on an H200 their
      steps were slower in bf16 than in fp32, bench/RESULTS.md): on CUDA, when the autocast dtype
      came from ``AMP=auto``, such a net trains in fp32. ``AMP=bf16``/``fp16`` by name
      is always obeyed.
    """
    if precision.channels_last and not getattr(model, "channels_last_ok", True):
        precision = replace(precision, channels_last=False)
    if (
        precision.auto_amp
        and precision.device.type == "cuda"
        and precision.amp_dtype is not None
        and not getattr(model, "cuda_amp_ok", True)
    ):
        precision = replace(precision, amp_dtype=None)
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
    return Precision(
        dev, dtype, channels_last=dtype is not None or dev.type == "cuda", auto_amp=amp == "auto"
    )


def make_jobs() -> int:
    """make's ``-jN`` as seen in MAKEFLAGS (1 outside make or without ``-j``; a bare
    ``-j``, unlimited jobs, counts as one job per core)."""
    match = re.search(r"(?:^|\s)-j\s*(\d*)", os.environ.get("MAKEFLAGS", ""))
    if not match:
        return 1
    return int(match.group(1)) if match.group(1) else (os.cpu_count() or 1)


def cores_for_make() -> int:
    """The cores one training may use: this process's CPU affinity divided by make's
    ``-jN`` (:func:`make_jobs`), at least 1, so that parallel trainings do not
    oversubscribe the machine. In a SLURM job (``CC='srun -c8 …'``) the job's own CPUs
    (``SLURM_CPUS_PER_TASK``): make's other jobs run on other allocations.

    It sizes the helper processes only (``WORKERS=auto``, the metric processes:
    scheduling, no result depends on them), never the compute threads
    (:func:`training_threads`), which would make the bytes depend on ``-jN``."""
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm_cpus.isdigit() and int(slurm_cpus) > 0:
        return int(slurm_cpus)
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    return max(1, cores // max(1, make_jobs()))


DEFAULT_THREADS = 1
"""Torch intra-op threads of a training unless ``THREADS`` / ``--threads`` says
otherwise: one, so that ``make -jN`` runs N trainings side by side on N cores without
oversubscribing them (on the 2-core CPU of bench/RESULTS.md two 1-thread trainings
at once have more throughput than one 2-thread training after the other)."""


def training_threads(requested: int | None = None) -> int:
    """The intra-op threads of one training: ``requested`` (``--threads``), else
    :data:`DEFAULT_THREADS`; whatever ``MAKEFLAGS``, the cores or ``SLURM_CPUS_PER_TASK``
    say (they must not change the bytes of a result).

    Example:
        >>> training_threads(), training_threads(4)
        (1, 4)
    """
    if requested is None:
        return DEFAULT_THREADS
    if requested < 1:
        raise ValueError(f"threads must be >= 1, got {requested}")
    return requested


def recorded_threads(args: dict[str, object]) -> int:
    """The threads a training computed with, from its ``args.json`` (``threads``), so
    that applying it later (``predict``) computes as its test evaluation did. A training
    recorded before the count was gets :data:`DEFAULT_THREADS`: it computed with the
    cores divided by make's ``-jN``, which no file holds."""
    value = args.get("threads")
    return value if isinstance(value, int) and value >= 1 else DEFAULT_THREADS


def use_threads(threads: int) -> None:
    """Compute with ``threads`` torch intra-op threads in this process (oneDNN, MKL and
    torch's OpenMP pool all follow ``torch.set_num_threads``).

    The inter-op pool is left alone: it runs independent operations side by side
    (``torch.jit.fork``), never splits one operation's arithmetic, so its size changes
    no bytes; eager training and inference do not use it. DataLoader worker processes
    (one torch thread each, torch sets it) prepare samples with numpy/scipy and only
    copy and pad tensors; the metric processes compute with numpy/scipy: neither
    depends on the thread count.
    """
    torch.set_num_threads(training_threads(threads))
