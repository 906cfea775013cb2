"""Dimwit and Dimwit3D: deliberately tiny nets for debugging the pipeline.

``make NET=Dimwit EPC=5 DEBUG=--debug`` runs the whole Make graph in seconds; the
net is still able to learn a bright blob, so a broken loss or data loader shows up
as a flat Dice curve rather than being hidden by a net that cannot learn.

Layout: 3×3 conv → ReLU → 3×3 conv (dilation 2) → ReLU → 1×1 conv to the logits.
No pooling, so any input size works as is; receptive field 7×7(×7).

Example:
    >>> import torch
    >>> tuple(Dimwit(1, 2)(torch.zeros(1, 1, 5, 7)).shape)
    (1, 2, 5, 7)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from segline.nets.blocks import conv_cls, init_weights
from segline.nets.registry import register_net

__all__ = ["Dimwit", "Dimwit3D"]


class _Tiny(nn.Module):
    """Shared body of Dimwit/Dimwit3D (``dims`` set by the subclass)."""

    dims: ClassVar[int] = 2

    def __init__(self, in_channels: int, n_classes: int, base: int, dropout: float = 0.0) -> None:
        super().__init__()
        conv = conv_cls(self.dims)
        drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.body = nn.Sequential(
            conv(in_channels, base, 3, padding=1),
            nn.ReLU(inplace=True),
            conv(base, base, 3, padding=2, dilation=2),
            nn.ReLU(inplace=True),
            drop,
            conv(base, n_classes, 1),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Args:
            x: (B, C_in, *spatial).

        Returns:
            Logits (B, n_classes, *spatial) in ``x``'s dtype.
        """
        return self.body(x).to(x.dtype)


@register_net("Dimwit")
class Dimwit(_Tiny):
    """Tiny 2D net (~2.6 k parameters at ``base=16``, 1 input, 2 classes).

    Args:
        in_channels: input channels.
        n_classes: number of classes (logit channels).
        base: hidden channels.
        dropout: dropout before the 1×1 head (0 disables it).

    Example:
        >>> sum(p.numel() for p in Dimwit(1, 2).parameters())
        2514
    """

    dims: ClassVar[int] = 2

    def __init__(
        self, in_channels: int, n_classes: int, base: int = 16, dropout: float = 0.0
    ) -> None:
        super().__init__(in_channels, n_classes, base, dropout)


@register_net("Dimwit3D")
class Dimwit3D(_Tiny):
    """Tiny 3D net for tests (~2 k parameters at ``base=8``, 1 input, 2 classes).

    Args:
        in_channels: input channels.
        n_classes: number of classes (logit channels).
        base: hidden channels.
        dropout: dropout before the 1×1 head (0 disables it).

    Example:
        >>> tuple(Dimwit3D(1, 3)(torch.zeros(1, 1, 4, 5, 6)).shape)
        (1, 3, 4, 5, 6)
    """

    dims: ClassVar[int] = 3

    def __init__(
        self, in_channels: int, n_classes: int, base: int = 8, dropout: float = 0.0
    ) -> None:
        super().__init__(in_channels, n_classes, base, dropout)
