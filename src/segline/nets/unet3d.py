"""3D U-Net (Çiçek et al., MICCAI 2016), sized for CPU patches.

Layout as in the paper: each encoder level has two 3×3×3 convs, the first to half
the level's width (paper: 32→64, 64→128, 128→256, bottom 256→512); ``depth``
2×2×2 max-poolings (3 in the paper); 2×2×2 stride-2 transposed convs to go up,
skip concatenation, two 3×3×3 convs per decoder level, a 1×1×1 head.
``base`` is the width of the very first conv (paper: 32); the level widths are
``2 * base * 2**i``.

Deviations: padded ("same") convs with pad-to-multiple/crop-back, so logits have
the input's size; GroupNorm instead of BatchNorm (batches of 1–2 patches); the
up-convolution halves the channels (to the skip's width) instead of keeping them,
which saves parameters. Default ``base=16, depth=3``: ~3.8 M parameters, fine for
32–64³ patches on a CPU.

Determinism: on CUDA, ``MaxPool3d``'s backward raises under
``torch.use_deterministic_algorithms(True)``; pass ``pool="conv"`` (stride-2
conv) or ``warn_only=True`` there. CPU is deterministic either way.

Example:
    >>> import torch
    >>> net = UNet3D(1, 2, base=2, depth=2)
    >>> tuple(net(torch.zeros(1, 1, 5, 6, 7)).shape)
    (1, 2, 5, 6, 7)
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from segline.nets.blocks import DoubleConv, UNetBackbone
from segline.nets.registry import register_net

__all__ = ["UNet3D"]


@register_net("UNet3D")
class UNet3D(UNetBackbone):
    """3D U-Net with GroupNorm and transposed-conv upsampling.

    Args:
        in_channels: input channels (modalities).
        n_classes: number of classes (logit channels).
        base: channels of the first conv; level ``i`` ends with ``2*base*2**i``.
        depth: number of downsamplings (inputs padded to a multiple of ``2**depth``).
        dropout: spatial dropout on the bottom features (0 disables it).
        norm: ``"group"`` (default), ``"instance"``, ``"batch"`` or ``"none"``.
        pool: ``"max"`` (paper) or ``"conv"`` (stride-2 conv, CUDA-deterministic).

    Example:
        >>> UNet3D(1, 2, base=2, depth=1).dims
        3
    """

    dims: ClassVar[int] = 3
    # bf16 autocast on an H200 at 2x1x32x48x48: 14.1 ms/step against 11.4 ms in fp32
    # (bench/RESULTS.md, GPU steps), so AMP=auto trains it in fp32 on CUDA
    cuda_amp_ok: ClassVar[bool] = False

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        base: int = 16,
        depth: int = 3,
        dropout: float = 0.0,
        norm: str = "group",
        pool: str = "max",
    ) -> None:
        def block(cin: int, cout: int, mid: int) -> nn.Module:
            return DoubleConv(3, cin, cout, mid, norm=norm)

        super().__init__(
            3,
            in_channels,
            n_classes,
            [2 * base * 2**i for i in range(depth + 1)],
            block,
            encoder_mid="half",
            dropout=dropout,
            pool=pool,
        )
