"""Residual U-Net: the 2D U-Net with every double conv made a residual block.

Same layout as :class:`segline.nets.unet.UNet` (levels, widths, transposed-conv
upsampling, skip concatenation); each level block is
:class:`segline.nets.blocks.ResBlock` (two 3×3 conv+norm with an identity or
1×1-projection shortcut), as in the residual U-Nets of e.g. Zhang et al. 2018
("Road extraction by deep residual U-Net") and Kerfoot et al. 2018.

Example:
    >>> import torch
    >>> net = ResidualUNet(1, 3, base=4, depth=2)
    >>> tuple(net(torch.zeros(2, 1, 10, 11)).shape)
    (2, 3, 10, 11)
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from segline.nets.blocks import ResBlock, UNetBackbone
from segline.nets.registry import register_net

__all__ = ["ResidualUNet"]


@register_net("ResidualUNet")
class ResidualUNet(UNetBackbone):
    """2D U-Net built from residual blocks.

    Args:
        in_channels: input channels (modalities).
        n_classes: number of classes (logit channels).
        base: channels of the top level; doubled at each level.
        depth: number of downsamplings (inputs padded to a multiple of ``2**depth``).
        dropout: spatial dropout on the bottom features (0 disables it).
        norm: ``"group"`` (default), ``"batch"``, ``"instance"`` or ``"none"``.
        pool: ``"max"`` or ``"conv"`` (stride-2 conv).

    Example:
        >>> ResidualUNet(1, 2, base=4, depth=1).dims
        2
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
            return ResBlock(2, cin, cout, mid, norm=norm)

        super().__init__(
            2,
            in_channels,
            n_classes,
            [base * 2**i for i in range(depth + 1)],
            block,
            dropout=dropout,
            pool=pool,
        )
