"""2D U-Net (Ronneberger et al., MICCAI 2015), padded convolutions.

Differences from the paper, all deliberate:

* "same" padding and pad-to-multiple/crop-back, so logits match the input size;
* GroupNorm after every conv (see :mod:`segline.nets.blocks` for why not
  BatchNorm with our batch sizes);
* base width 32 instead of 64 (¼ of the parameters, ~7.8 M with depth 4);
* 2×2 stride-2 transposed convs to upsample (the paper's "up-convolution"; also
  deterministic on CUDA, unlike bilinear upsampling's backward).

``depth`` is the number of 2×2 max-poolings (4 in the paper): widths are
``base * 2**i`` for ``i = 0..depth``, and inputs are internally padded to a
multiple of ``2**depth``.

Example:
    >>> import torch
    >>> net = UNet(1, 2, base=4, depth=2)
    >>> tuple(net(torch.zeros(1, 1, 9, 13)).shape)
    (1, 2, 9, 13)
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from segline.nets.blocks import DoubleConv, UNetBackbone
from segline.nets.registry import register_net

__all__ = ["UNet"]


@register_net("UNet")
class UNet(UNetBackbone):
    """2D U-Net with GroupNorm and transposed-conv upsampling.

    Args:
        in_channels: input channels (modalities).
        n_classes: number of classes (logit channels).
        base: channels of the top level; doubled at each level.
        depth: number of downsamplings.
        dropout: spatial dropout on the bottom features (0 disables it).
        norm: ``"group"`` (default), ``"batch"``, ``"instance"`` or ``"none"``.
        pool: ``"max"`` (paper) or ``"conv"`` (stride-2 conv).

    Example:
        >>> sum(p.numel() for p in UNet(1, 2, base=4, depth=1).parameters())
        1682
    """

    dims: ClassVar[int] = 2

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        base: int = 32,
        depth: int = 4,
        dropout: float = 0.0,
        norm: str = "group",
        pool: str = "max",
    ) -> None:
        def block(cin: int, cout: int, mid: int) -> nn.Module:
            return DoubleConv(2, cin, cout, mid, norm=norm)

        super().__init__(
            2,
            in_channels,
            n_classes,
            [base * 2**i for i in range(depth + 1)],
            block,
            dropout=dropout,
            pool=pool,
        )
