"""2D V-Net (after Milletari et al., 3DV 2016, "V-Net"), sized for small inputs.

Layout as the paper's, in 2D: every level is a *residual stage* of 1–3 convolutions
(``x + convs(x)``, then PReLU); the encoder goes down by 2×2 stride-2 convolutions
that double the channels (no pooling), the decoder goes up by 2×2 stride-2
transposed convolutions to the skip's width, concatenates the skip connection and
runs a residual stage at twice that width; a 1×1 convolution gives the logits.
Stage lengths follow the paper: 1, 2, 3, 3, … convolutions from the top level down
(at most 3), the decoder mirroring the encoder.

Differences from the paper, all deliberate:

* 3×3 kernels by default (the paper's are 5×5; ``kernel=5`` gives those). The
  intended inputs are small (the 16×16 shell images of Elastic Boundary Projection):
  after the downsamplings the maps are 4×4 and 2×2, where a 5×5 kernel reads mostly
  zero padding; two 3×3 convs see the same 5×5 field with fewer weights (the EBP
  authors' 2D V-Net uses 3×3 kernels too);
* 2D, ``depth`` = 3 downsamplings by default (the paper's 4 would leave 1×1 maps
  from a 16×16 input), widths ``base * 2**i`` for ``i = 0..depth``, ``base`` = 16
  as in the paper;
* a normalisation after every convolution (GroupNorm by default, see
  :mod:`segline.nets.blocks`); the paper has none;
* the first stage's shortcut is the input itself when it has ``base`` channels and
  a 1×1 convolution otherwise (the paper replicates its one input channel);
* "same" padding, inputs zero-padded to a multiple of ``2**depth`` and the logits
  cropped back, so the logits have the input's size.

Example:
    >>> import torch
    >>> net = VNet2D(16, 1, base=4, depth=2)
    >>> tuple(net(torch.zeros(2, 16, 15, 17)).shape)
    (2, 1, 15, 17)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from segline.nets.blocks import crop_to, init_weights, make_norm, pad_to_multiple
from segline.nets.registry import register_net

__all__ = ["VNet2D"]


def _conv_norm(cin: int, cout: int, kernel: int, norm: str) -> list[nn.Module]:
    """A "same"-padded convolution (bias only without a norm) and its normalisation."""
    return [
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=norm == "none"),
        make_norm(norm, 2, cout),
    ]


class _ResidualStage(nn.Module):
    """``PReLU(shortcut(x) + convs(x))``: ``n`` convolutions (PReLU between them),
    the V-Net stage. ``shortcut`` is the identity when the widths match, else a
    1×1 convolution + norm."""

    def __init__(self, cin: int, cout: int, n: int, kernel: int, norm: str) -> None:
        super().__init__()
        layers = _conv_norm(cin, cout, kernel, norm)
        for _ in range(n - 1):
            layers += [nn.PReLU(cout), *_conv_norm(cout, cout, kernel, norm)]
        self.convs = nn.Sequential(*layers)
        self.shortcut: nn.Module = (
            nn.Identity() if cin == cout else nn.Sequential(*_conv_norm(cin, cout, 1, norm))
        )
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) → (B, cout, H, W)."""
        return self.act(self.convs(x) + self.shortcut(x))


def _resample(up: bool, cin: int, cout: int, norm: str) -> nn.Sequential:
    """2×2 stride-2 convolution (down) or transposed convolution (up), norm, PReLU."""
    conv = nn.ConvTranspose2d if up else nn.Conv2d
    return nn.Sequential(
        conv(cin, cout, 2, stride=2, bias=norm == "none"), make_norm(norm, 2, cout), nn.PReLU(cout)
    )


@register_net("VNet2D")
class VNet2D(nn.Module):
    """2D V-Net: residual PReLU stages, strided-conv down, transposed-conv up.

    Args:
        in_channels: input channels (16 for EBP's CT shell images).
        n_classes: number of output channels (logits).
        base: channels of the top level; doubled at each level (decoder stages
            work at twice the level's width, the upsampled features and the skip).
        depth: number of downsamplings (inputs padded to a multiple of ``2**depth``);
            3 suits 16×16 inputs (2×2 at the bottom).
        kernel: odd convolution kernel size of the stages (3, or the paper's 5).
        norm: ``"group"`` (default), ``"batch"``, ``"instance"`` or ``"none"``.

    Example:
        >>> VNet2D(1, 2, base=4, depth=1).dims
        2
    """

    dims: ClassVar[int] = 2

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        base: int = 16,
        depth: int = 3,
        kernel: int = 3,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"VNet2D needs depth >= 1, got {depth}")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"VNet2D needs an odd kernel size, got {kernel}")
        widths = [base * 2**i for i in range(depth + 1)]

        def n_convs(level: int) -> int:
            return min(level + 1, 3)

        self.multiple = 2**depth
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = in_channels
        for i, w in enumerate(widths):
            if i > 0:
                self.downs.append(_resample(False, prev, w, norm))
                prev = w
            self.encoders.append(_ResidualStage(prev, w, n_convs(i), kernel, norm))
            prev = w
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in range(depth - 1, -1, -1):
            self.ups.append(_resample(True, prev, widths[i], norm))
            prev = 2 * widths[i]
            self.decoders.append(_ResidualStage(prev, prev, n_convs(i), kernel, norm))
        self.head = nn.Conv2d(prev, n_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Args:
            x: (B, in_channels, H, W), any H, W.

        Returns:
            Logits (B, n_classes, H, W) in ``x``'s dtype.
        """
        in_dtype = x.dtype
        h, spatial = pad_to_multiple(x, self.multiple)
        skips: list[torch.Tensor] = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                skips.append(h)
                h = self.downs[i - 1](h)
            h = enc(h)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            h = dec(torch.cat([up(h), skip], dim=1))
        return crop_to(self.head(h), spatial).to(in_dtype)
