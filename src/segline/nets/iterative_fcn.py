"""The iterative FCN's network (Lessmann et al., 2019): a 3D U-Net with the same
channel count at every level, two inputs and two outputs.

Inputs (B, C + 1, Z, Y, X): the image patch (C channels) and the instance-memory
patch (1 where a vertebra was already segmented, else 0). Outputs: the mask logits
(B, 1, Z, Y, X) of the first vertebra not yet in the memory
(:mod:`segline.experiments.vertebrae.order`), and one completeness logit (B,) per
patch — does that vertebra lie completely inside the patch — from the bottleneck
features by global average pooling and a linear layer.

A constant width (``channels``, default 16; the paper uses 64 on GPUs) keeps the
net small enough for toy training on one CPU core; ``depth`` 2×2×2 poolings
(inputs are padded to a multiple of ``2**depth`` and the logits cropped back).

Example:
    >>> import torch
    >>> net = IterativeFCN(2, channels=4, depth=2)
    >>> mask, complete = net(torch.zeros(3, 2, 8, 12, 12))
    >>> tuple(mask.shape), tuple(complete.shape)
    ((3, 1, 8, 12, 12), (3,))
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from segline.nets.blocks import DoubleConv, UNetBackbone
from segline.nets.registry import register_net

__all__ = ["IterativeFCN"]


@register_net("IterativeFCN")
class IterativeFCN(UNetBackbone):
    """Constant-width 3D U-Net with a completeness head on the bottleneck.

    Args:
        in_channels: image channels + 1 (the memory).
        n_classes: mask logit channels (1: the one vertebra sought).
        channels: width of every level.
        depth: number of downsamplings.
        norm: ``"group"`` (default), ``"instance"``, ``"batch"`` or ``"none"``.
        dropout: spatial dropout on the bottleneck (0 disables it).
    """

    dims: ClassVar[int] = 3
    cuda_amp_ok: ClassVar[bool] = False
    # bf16 on the 2-core AVX512-BF16 Xeon, channels=8, depth=3, 2 patches of 16x40x40:
    # 0.44 s per training step in channels_last_3d against 0.18 s contiguous
    channels_last_ok: ClassVar[bool] = False

    def __init__(
        self,
        in_channels: int,
        n_classes: int = 1,
        channels: int = 16,
        depth: int = 3,
        norm: str = "group",
        dropout: float = 0.0,
    ) -> None:
        def block(cin: int, cout: int, mid: int) -> nn.Module:
            return DoubleConv(3, cin, cout, mid, norm=norm)

        super().__init__(
            3, in_channels, n_classes, [channels] * (depth + 1), block, dropout=dropout
        )
        self.complete = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """Mask logits (B, n_classes, *spatial) and completeness logits (B,)."""
        logits, bottom = self.forward_with_bottom(x)
        pooled = bottom.float().mean(dim=tuple(range(2, bottom.ndim)))
        return logits, self.complete(pooled)[:, 0].to(logits.dtype)
