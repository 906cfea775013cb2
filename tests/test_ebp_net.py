"""EBP shell network: the core VNet2D on shell-sized inputs, and ShellModel (any
registered 2D net as a (B, H, W) step regressor clamped to ±STEP_CLIP)."""

from __future__ import annotations

import pytest
import torch

from segline.experiments.ebp.net import STEP_CLIP, ShellModel, build_shell_model
from segline.nets import get_net, net_names
from segline.nets.vnet2d import VNet2D

IN_CH = 16  # 10c + 6 for one CT channel


@pytest.mark.parametrize("size", [(16, 16), (15, 17), (8, 8), (5, 9)])
def test_vnet2d_keeps_the_input_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = get_net("VNet2D", IN_CH, 3)
    assert isinstance(net, VNet2D) and net.dims == 2 and net.multiple == 8
    y = net(torch.randn(2, IN_CH, *size))
    assert y.shape == (2, 3, *size)
    assert torch.isfinite(y).all() and y.std() > 0


def test_vnet2d_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    net = VNet2D(IN_CH, 1, base=8)
    x = torch.randn(4, IN_CH, 15, 17, requires_grad=True)
    net(x).square().mean().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def test_vnet2d_layout_follows_vnet() -> None:
    net = VNet2D(1, 2, base=4, depth=3)
    # widths double per level; stages of 1, 2, 3, 3 convolutions, the decoder mirrored
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in e.convs) for e in net.encoders]
    assert convs == [1, 2, 3, 3]
    assert [d[0].out_channels for d in net.downs] == [8, 16, 32]
    assert [u[0].out_channels for u in net.ups] == [16, 8, 4]
    assert [sum(isinstance(m, torch.nn.Conv2d) for m in d.convs) for d in net.decoders] == [
        3, 2, 1,
    ]
    assert net.head.in_channels == 8  # upsampled 4 + skip 4
    assert any(isinstance(m, torch.nn.PReLU) for m in net.modules())
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    k5 = VNet2D(1, 2, base=4, kernel=5)
    assert k5.encoders[0].convs[0].kernel_size == (5, 5)


@pytest.mark.parametrize("kw", [{"depth": 0}, {"kernel": 4}])
def test_vnet2d_rejects_bad_options(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="VNet2D needs"):
        VNet2D(1, 2, **kw)


def _raw_and_clamped(name: str, kwargs: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_shell_model(name, IN_CH, kwargs).eval()
    with torch.no_grad():
        for p in model.net.parameters():  # raw outputs far beyond the clip
            p.mul_(5.0)
        x = torch.randn(3, IN_CH, 15, 16)
        return model.net(x), model(x)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("VNet2D", {"base": 4}), ("UNet", {"base": 4, "depth": 2}), ("dimwit", {})],
)
def test_shell_model_gives_clamped_steps(name: str, kwargs: dict[str, int]) -> None:
    raw, y = _raw_and_clamped(name, kwargs)
    assert raw.shape == (3, 1, 15, 16)
    assert y.shape == (3, 15, 16) and y.dtype == torch.float32
    assert float(raw.max()) > STEP_CLIP and float(raw.min()) < -STEP_CLIP
    assert torch.equal(y, raw[:, 0].clamp(-2.0, 2.0))
    assert float(y.max()) == 2.0 and float(y.min()) == -2.0


def test_shell_model_gradient_inside_the_clip() -> None:
    torch.manual_seed(0)
    model = build_shell_model("VNet2D", IN_CH, {"base": 4})
    assert model.dims == 2 and STEP_CLIP == 2.0
    y = model(torch.randn(2, IN_CH, 16, 16))
    inside = y.detach().abs() < STEP_CLIP
    assert bool(inside.any())
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert float(model.net.head.weight.grad.abs().sum()) > 0


def test_training_mode_passes_the_raw_output() -> None:
    """A clamp has no gradient beyond ±2: in training the loss sees the raw step, so a
    unit pushed far out is pulled back (net.py docstring); eval mode clamps."""
    torch.manual_seed(0)
    model = build_shell_model("Dimwit", IN_CH, {})
    with torch.no_grad():
        for p in model.net.parameters():
            p.mul_(5.0)
    x = torch.randn(2, IN_CH, 16, 16)
    model.train()
    y = model(x)
    assert torch.equal(y, model.net(x)[:, 0]) and float(y.detach().abs().max()) > STEP_CLIP
    ((y - 0.5) ** 2).mean().backward()
    assert float(model.net.head.weight.grad.abs().sum()) > 0 if hasattr(model.net, "head") else True
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    model.eval()
    assert float(model(x).detach().abs().max()) == STEP_CLIP


def test_shell_model_refuses_a_3d_net_and_bad_options() -> None:
    with pytest.raises(ValueError, match=r"needs a 2D network; UNet3D is 3D") as err:
        build_shell_model("UNet3D", IN_CH, {"base": 4})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"VNet2D does not take option\(s\) width"):
        build_shell_model("VNet2D", IN_CH, {"width": 2})
    with pytest.raises(ValueError, match="unknown network"):
        build_shell_model("NoSuchNet", IN_CH, {})


def test_shell_model_is_not_a_registered_net() -> None:
    assert "ShellModel" not in net_names()
    assert isinstance(ShellModel("Dimwit", IN_CH), torch.nn.Module)


def test_shell_model_passes_on_the_nets_precision_preferences() -> None:
    enet = build_shell_model("ENet", IN_CH, {"width": 0.25})
    assert enet.channels_last_ok is False and enet.cuda_amp_ok is False
    vnet = build_shell_model("VNet2D", IN_CH, {"base": 4})
    assert vnet.channels_last_ok is True and vnet.cuda_amp_ok is True
