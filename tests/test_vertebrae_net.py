"""The iterative FCN network (segline.nets.iterative_fcn)."""

from __future__ import annotations

import torch
from torch import nn

from segline.nets import get_net
from segline.nets.iterative_fcn import IterativeFCN


def test_outputs_shapes_and_registry() -> None:
    net = get_net("iterativefcn", 2, 1, channels=4, depth=2)
    assert isinstance(net, IterativeFCN) and net.dims == 3
    mask, complete = net(torch.zeros(3, 2, 9, 13, 11))  # any size: padded and cropped
    assert tuple(mask.shape) == (3, 1, 9, 13, 11)
    assert tuple(complete.shape) == (3,)


def test_constant_channel_count() -> None:
    net = IterativeFCN(2, channels=6, depth=3)
    widths = {m.out_channels for m in net.modules() if isinstance(m, nn.Conv3d)} - {1}
    assert widths == {6}
    assert net.complete.in_features == 6


def test_gradients_reach_both_heads() -> None:
    net = IterativeFCN(2, channels=4, depth=1)
    mask, complete = net(torch.randn(2, 2, 4, 6, 6))
    (mask.mean() + complete.sum()).backward()
    assert net.complete.weight.grad is not None and net.head.weight.grad is not None
    first = next(m for m in net.modules() if isinstance(m, nn.Conv3d))
    assert first.in_channels == 2 and float(first.weight.grad.abs().sum()) > 0
