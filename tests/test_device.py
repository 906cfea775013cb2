"""Device / precision choice: the DEVICE and AMP knobs, the cores a training's helper
processes may use under make -jN, and the per-net channels_last opt-out (the thread
count: tests/test_threads.py)."""

from __future__ import annotations

import pytest
import torch

from segline.nets import get_net
from segline.train import device as dev


def test_amp_off_is_fp32_contiguous() -> None:
    p = dev.choose("cpu", "off")
    assert p.device == torch.device("cpu") and p.amp_dtype is None and not p.channels_last
    assert p.memory_format(2) == torch.contiguous_format
    assert p.describe() == "cpu fp32"


def test_explicit_bf16_uses_channels_last_for_2d_and_3d() -> None:
    p = dev.choose("cpu", "bf16")
    assert p.amp_dtype == torch.bfloat16 and p.channels_last
    assert p.memory_format(2) == torch.channels_last
    assert p.memory_format(3) == torch.channels_last_3d
    assert p.describe() == "cpu bf16 channels_last"


def test_auto_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)
    assert dev.choose("auto", "auto").amp_dtype == torch.bfloat16
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)
    auto = dev.choose("auto", "auto")
    assert auto.amp_dtype is None and not auto.channels_last


def test_cuda_requested_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        dev.choose("cuda", "auto")


def test_enet_opts_out_of_channels_last_others_keep_it() -> None:
    p = dev.choose("cpu", "bf16")
    enet = get_net("ENet", 1, 2)
    unet = get_net("UNet", 1, 2, base=8)
    kept = dev.for_model(p, unet)
    assert kept is p
    dropped = dev.for_model(p, enet)
    assert not dropped.channels_last and dropped.amp_dtype == torch.bfloat16
    assert dropped.memory_format(2) == torch.contiguous_format
    off = dev.choose("cpu", "off")
    assert dev.for_model(off, enet) is off


@pytest.mark.parametrize(
    ("makeflags", "expected"),
    [("", 4), ("-j2", 2), (" -j 4 --no-print-directory", 1), ("-j8", 1)],
)
def test_cores_for_make(monkeypatch: pytest.MonkeyPatch, makeflags: str, expected: int) -> None:
    """The cores a training's helper processes (WORKERS=auto) may use: a -jN share."""
    monkeypatch.setattr(dev.os, "sched_getaffinity", lambda _pid: set(range(4)))
    monkeypatch.setenv("MAKEFLAGS", makeflags)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert dev.cores_for_make() == expected


def test_auto_amp_on_cuda_follows_the_nets_measurement() -> None:
    """AMP=auto on CUDA: ENet and UNet3D (slower in bf16 on an H200) train in fp32;
    UNet keeps bf16; a dtype asked for by name is always kept."""
    from segline.train.device import Precision, for_model

    cuda = torch.device("cuda")  # a device object only; nothing runs on it
    auto = Precision(cuda, torch.bfloat16, channels_last=True, auto_amp=True)
    named = Precision(cuda, torch.bfloat16, channels_last=True, auto_amp=False)
    enet, unet = get_net("ENet", 1, 2), get_net("UNet", 1, 2, base=4)
    unet3d = get_net("UNet3D", 1, 2, base=2, depth=1)
    assert for_model(auto, enet).amp_dtype is None
    assert for_model(auto, unet3d).amp_dtype is None
    assert for_model(auto, unet).amp_dtype is torch.bfloat16
    assert for_model(named, enet).amp_dtype is torch.bfloat16
    # on the CPU ENet keeps bf16 (faster there, bench/RESULTS.md), without channels_last
    cpu_auto = Precision(torch.device("cpu"), torch.bfloat16, channels_last=True, auto_amp=True)
    assert for_model(cpu_auto, enet) == Precision(
        torch.device("cpu"), torch.bfloat16, channels_last=False, auto_amp=True
    )
    assert dev.choose("cpu", "auto").auto_amp and not dev.choose("cpu", "off").auto_amp


def test_cores_in_a_slurm_job_are_the_jobs_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``srun -c8`` with ``make -j5`` each training has its own 8 CPUs: no division."""
    monkeypatch.setattr(dev.os, "sched_getaffinity", lambda _pid: set(range(4)))
    monkeypatch.setenv("MAKEFLAGS", "-j5")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert dev.cores_for_make() == 8
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")  # srun without -c: the -j share
    assert dev.cores_for_make() == 1


def test_memory_format_converts_the_tensors_of_its_rank_only() -> None:
    """A net mixing 3D and 2D layers (the fused MIP network) takes channels_last_3d on
    its 5-D weights and leaves its 4-D ones (Module.to fails on them); a net of one
    dimensionality gets exactly what Module.to gives, so its results are unchanged."""
    from segline.experiments.vessels.fused import MipFused

    torch.manual_seed(0)
    mixed = torch.nn.Sequential(torch.nn.Conv3d(2, 2, 3), torch.nn.Conv2d(2, 2, 3))
    with pytest.raises(RuntimeError, match="rank 5"):
        torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3)).to(memory_format=torch.channels_last_3d)
    out = dev.to_memory_format(mixed, torch.channels_last_3d)
    assert out[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not out[0].weight.is_contiguous()  # converted, not just allowed
    assert out[1].weight.is_contiguous() and out[1].bias.is_contiguous()
    fused = dev.to_memory_format(MipFused(1, 2, levels=2, widths="4,8"), torch.channels_last_3d)
    ranks = {p.dim() for p in fused.parameters()}
    assert {4, 5} <= ranks, ranks
    assert all(
        p.is_contiguous(memory_format=torch.channels_last_3d)
        for p in fused.net3d.parameters()
        if p.dim() == 5
    )
    y = fused(torch.rand(1, 1, 8, 16, 16).contiguous(memory_format=torch.channels_last_3d))
    assert torch.isfinite(y if isinstance(y, torch.Tensor) else y[0]).all()
    for fmt, make in (
        (torch.channels_last, lambda: torch.nn.Conv2d(3, 4, 3)),
        (torch.channels_last_3d, lambda: torch.nn.Conv3d(3, 4, 3)),
    ):
        torch.manual_seed(1)
        a = make().to(memory_format=fmt)
        torch.manual_seed(1)
        b = dev.to_memory_format(make(), fmt)
        assert a.weight.stride() == b.weight.stride() and torch.equal(a.weight, b.weight)
    assert dev.to_memory_format(mixed, torch.contiguous_format) is mixed
