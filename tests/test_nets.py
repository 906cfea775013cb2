"""Tests for segline.nets: shapes on odd sizes, determinism, bf16 + channels_last,
parameter counts, Dimwit learnability and the registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segline.nets import get_net, get_net_class, net_names
from segline.nets.blocks import crop_to, make_norm, pad_to_multiple
from segline.nets.dimwit import Dimwit
from segline.nets.enet import ENet, max_unpool2x
from segline.nets.unet3d import UNet3D

SHAPE_2D = (1, 5, 37, 45)
SHAPE_3D = (1, 1, 20, 24, 28)
N_CLASSES = 3

# Default-size parameter counts (in_channels=1, n_classes=2), kept exact so a change
# in an architecture is a visible, deliberate test update.
PARAMS = {
    "Dimwit": 2_514,
    "Dimwit3D": 1_978,
    "ENet": 358_985,
    "UNet": 7_762_498,
    "ResidualUNet": 8_113_634,
    "UNet3D": 3_844_594,
    "VNet2D": 1_197_826,
}

# Small variants for the (many) forward/backward tests; the defaults are tested
# for shape once each.
SMALL: dict[str, dict[str, float]] = {
    "Dimwit": {},
    "Dimwit3D": {},
    "ENet": {"width": 0.5},
    "UNet": {"base": 8},
    "ResidualUNet": {"base": 8},
    "UNet3D": {"base": 4},
    "VNet2D": {"base": 8},
}


def _input(name: str, channels_3d: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    dims = get_net_class(name).dims
    shape = SHAPE_2D if dims == 2 else (SHAPE_3D[0], channels_3d, *SHAPE_3D[2:])
    return torch.randn(shape, generator=gen)


def _build(name: str, seed: int = 0, **kw: float) -> nn.Module:
    torch.manual_seed(seed)
    in_ch = SHAPE_2D[1] if get_net_class(name).dims == 2 else SHAPE_3D[1]
    return get_net(name, in_ch, N_CLASSES, **{**SMALL[name], **kw})


@pytest.fixture
def deterministic() -> Iterator[None]:
    """Run a test under torch.use_deterministic_algorithms(True)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def test_registry_lists_all_names() -> None:
    # MipFused registers itself when the vessels experiment is imported (a test of
    # this process may have done so)
    assert [n for n in net_names() if n != "MipFused"] == [
        "Dimwit",
        "Dimwit3D",
        "ENet",
        "IterativeFCN",
        "ResidualUNet",
        "UNet",
        "UNet3D",
        "VNet2D",
    ]
    # IterativeFCN has two outputs (mask, completeness): tests/test_vertebrae_net.py
    assert set(net_names()) - {"IterativeFCN", "MipFused"} == set(PARAMS)


@pytest.mark.parametrize("name", ["unet3d", "UNET3D", "UNet3D", "uNeT3d"])
def test_registry_is_case_insensitive(name: str) -> None:
    assert get_net_class(name) is UNet3D


def test_registry_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match=r"unknown network 'VNet'.*ENet.*UNet3D"):
        get_net("VNet", 1, 2)


def test_registry_passes_kwargs() -> None:
    net = get_net("ENet", 1, 4, width=0.25, dropout=0.0)
    assert isinstance(net, ENet)
    assert net.fullconv.out_channels == 4
    assert net.fullconv.in_channels == 4  # 16 * 0.25


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_dims_attribute(name: str) -> None:
    expected = 3 if name.endswith("3D") else 2
    assert get_net_class(name).dims == expected
    assert get_net(name, 1, 2, **SMALL[name]).dims == expected


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_counts(name: str) -> None:
    net = get_net(name, 1, 2)
    n = sum(p.numel() for p in net.parameters())
    print(f"{name}: {n:,} parameters")
    assert n == PARAMS[name]
    if name.startswith("Dimwit"):
        assert 1_000 <= n <= 10_000


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_default_net_odd_shape(name: str) -> None:
    torch.manual_seed(0)
    dims = get_net_class(name).dims
    x = torch.randn(SHAPE_2D if dims == 2 else SHAPE_3D)
    net = get_net(name, x.shape[1], N_CLASSES).eval()
    with torch.no_grad():
        y = net(x)
    assert y.shape == (x.shape[0], N_CLASSES, *x.shape[2:])
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert y.std() > 0  # not a constant output


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_backward_deterministic(name: str, deterministic: None) -> None:
    x = _input(name)
    grads = []
    for _ in range(2):
        net = _build(name).train()
        torch.manual_seed(5)  # same dropout masks in both runs
        y = net(x)
        assert y.shape == (x.shape[0], N_CLASSES, *x.shape[2:])
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        g = [p.grad for p in net.parameters()]
        assert all(t is not None and torch.isfinite(t).all() for t in g)
        assert sum(float(t.abs().sum()) for t in g if t is not None) > 0
        grads.append(g)
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_same_seed_same_output(name: str) -> None:
    x = _input(name)
    a, b, c = _build(name, seed=3).eval(), _build(name, seed=3).eval(), _build(name, seed=4)
    with torch.no_grad():
        ya, yb, yc = a(x), b(x), c.eval()(x)
    assert torch.equal(ya, yb)
    assert not torch.allclose(ya, yc)


# bf16 keeps 8 mantissa bits; ENet's max-unpooling amplifies the rounding because a
# rounded tie can move a pooled argmax (measured ~9 % relative L2 error, vs ~1 %).
BF16_TOL = {"ENet": 0.2}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_channels_last_bf16_close_to_fp32(name: str) -> None:
    x = _input(name)
    net = _build(name).eval()
    with torch.no_grad():
        ref = net(x)
        fmt = torch.channels_last if net.dims == 2 else torch.channels_last_3d
        net = net.to(memory_format=fmt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x.contiguous(memory_format=fmt))
    assert out.shape == ref.shape
    assert out.dtype == torch.float32  # logits follow the input dtype
    rel = float((out - ref).norm() / ref.norm())
    assert rel < BF16_TOL.get(name, 0.05), rel


def test_max_unpool2x_matches_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 8, generator=gen)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    expected = F.max_unpool2d(y, idx, 2)
    assert torch.equal(max_unpool2x(y, idx), expected)
    # each 2×2 window keeps exactly its max
    assert int((max_unpool2x(y, idx) != 0).sum()) == y.numel()


def test_pad_and_crop_roundtrip() -> None:
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    y, shape = pad_to_multiple(x, 4)
    assert y.shape == (1, 2, 8, 8)
    assert shape == (5, 7)
    assert float(y[..., 5:, :].abs().sum()) == 0.0
    assert torch.equal(crop_to(y, shape), x)
    same, _ = pad_to_multiple(y, 4)
    assert same is y


def test_make_norm_groups_and_errors() -> None:
    assert make_norm("group", 2, 12).num_groups == 6
    assert make_norm("group", 3, 4).num_groups == 4
    assert make_norm("group", 3, 256).num_groups == 8
    assert isinstance(make_norm("batch", 3, 4), nn.BatchNorm3d)
    with pytest.raises(ValueError, match="unknown norm"):
        make_norm("layer", 2, 4)


def test_unet_depth_and_base_change_widths() -> None:
    net = get_net("UNet", 1, 2, base=8, depth=2)
    widths = [enc[-1][0].out_channels for enc in net.encoders]
    assert widths == [8, 16, 32]
    assert net.multiple == 4
    net3 = get_net("UNet3D", 1, 2, base=4, depth=3)
    # Çiçek et al.: the first conv of a level has half the level's width
    assert [(e[0][0].out_channels, e[1][0].out_channels) for e in net3.encoders] == [
        (4, 8),
        (8, 16),
        (16, 32),
        (32, 64),
    ]


def test_conv_pool_option_has_no_maxpool() -> None:
    net = get_net("UNet3D", 1, 2, base=4, pool="conv")
    assert not any(isinstance(m, nn.MaxPool3d) for m in net.modules())
    y = net(torch.zeros(1, 1, 9, 10, 11))
    assert y.shape == (1, 2, 9, 10, 11)


def test_dropout_active_only_in_train() -> None:
    torch.manual_seed(0)
    net = get_net("UNet", 1, 2, base=4, depth=2, dropout=0.5)
    x = torch.randn(1, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    assert not torch.allclose(a, b)


def _dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    inter = float((pred & target).sum())
    return 2 * inter / (float(pred.sum()) + float(target.sum()))


def test_dimwit_learns_a_bright_square() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n, size = 8, 32
    target = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        r, c = torch.randint(2, size - 12, (2,), generator=gen).tolist()
        s = int(torch.randint(6, 11, (1,), generator=gen))
        target[i, r : r + s, c : c + s] = 1
    image = (target.float() + 0.3 * torch.randn(n, size, size, generator=gen)).unsqueeze(1)
    net = Dimwit(1, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    with torch.no_grad():
        before = _dice(net(image).argmax(1) == 1, target == 1)
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(net(image), target)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = _dice(net(image).argmax(1) == 1, target == 1)
    print(f"Dimwit Dice before {before:.3f}, after 30 steps {after:.3f}")
    assert after > 0.8
    assert after > before


def test_registry_rejects_bad_kwarg_naming_what_the_net_takes() -> None:
    # a ValueError (one line from the training CLI), not a TypeError traceback
    with pytest.raises(ValueError, match=r"ENet does not take option\(s\) base; it takes: width"):
        get_net("ENet", 1, 2, base=16)
    with pytest.raises(ValueError, match=r"UNet does not take option\(s\) depht, widht"):
        get_net("UNet", 1, 2, widht=2, depht=3)
