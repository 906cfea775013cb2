"""ENet (Paszke et al. 2016, "ENet: a deep neural network architecture for
real-time semantic segmentation"), the default net of the boundary-loss code.

Structure (``w`` = ``width``; sizes for an H×W input):

* initial block: 3×3 stride-2 conv to ``16w - C_in`` channels, concatenated with a
  2×2 max-pool of the input → ``16w`` at H/2;
* stage 1: downsampling bottleneck to ``64w`` (H/4) + 4 regular bottlenecks;
* stage 2: downsampling bottleneck to ``128w`` (H/8), then regular, dilated 2,
  asymmetric 5, dilated 4, regular, dilated 8, asymmetric 5, dilated 16;
* stage 3: stage 2 without the downsampling;
* stage 4: upsampling bottleneck to ``64w`` (H/4) + 2 regular;
* stage 5: upsampling bottleneck to ``16w`` (H/2) + 1 regular;
* a 2×2 stride-2 transposed conv to the logits (H).

A bottleneck is ``PReLU(main + ext)`` where ``ext`` is 1×1 projection to a quarter
of the channels (a 2×2 stride-2 conv when downsampling) → main conv (3×3, dilated
3×3, 5×1 then 1×5, or a 3×3 stride-2 transposed conv when upsampling) → 1×1
expansion → spatial dropout (``dropout / 10`` in stage 1, ``dropout`` after), with
norm + PReLU between them. The main branch max-pools (keeping the argmax) and
zero-pads the channels when downsampling, and when upsampling it is a 1×1 conv
followed by max-unpooling with the argmax of the matching downsampling.

Deviations: GroupNorm by default instead of BatchNorm (``norm="batch"`` restores
it); max-unpooling is done by :func:`max_unpool2x` (expand + compare with the
argmax) because ``torch.nn.MaxUnpool2d`` raises under
``torch.use_deterministic_algorithms(True)``, even on CPU. Everything is
deterministic on CPU and CUDA. Inputs are padded to a multiple of 8 and the
logits cropped back.

Example:
    >>> import torch
    >>> net = ENet(1, 2, width=0.25)
    >>> tuple(net(torch.zeros(1, 1, 13, 22)).shape)
    (1, 2, 13, 22)
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from segline.nets.blocks import crop_to, init_weights, make_norm, pad_to_multiple
from segline.nets.registry import register_net

__all__ = ["ENet", "max_unpool2x"]


def max_unpool2x(y: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Deterministic inverse of a 2×2 stride-2 max-pooling.

    Args:
        y: pooled values (B, C, h, w).
        indices: the argmax returned by ``F.max_pool2d(x, 2, return_indices=True)``
            (flat indices into each (2h, 2w) plane), same shape as ``y``.

    Returns:
        (B, C, 2h, 2w): each value put back at its argmax, zeros elsewhere.

    Example:
        >>> x = torch.tensor([[[[1.0, 5.0], [2.0, 3.0]]]])
        >>> y, i = F.max_pool2d(x, 2, return_indices=True)
        >>> max_unpool2x(y, i).tolist()
        [[[[0.0, 5.0], [0.0, 0.0]]]]
    """
    b, c, h, w = y.shape
    shape = (b, c, 2 * h, 2 * w)
    up = y[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(shape)
    up_idx = indices[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(shape)
    pos = torch.arange(4 * h * w, device=y.device).view(1, 1, 2 * h, 2 * w)
    return up * (up_idx == pos).to(up.dtype)


def _conv(cin: int, cout: int, k: int | tuple[int, int], **kw: object) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, bias=False, **kw)  # type: ignore[arg-type]


class _Initial(nn.Module):
    """Initial block: strided conv ‖ max-pool of the input, norm, PReLU."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.pool_input = cin < cout
        self.conv = _conv(cin, cout - cin if self.pool_input else cout, 3, stride=2, padding=1)
        self.norm = make_norm(norm, 2, cout)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool_input:
            y = torch.cat([y, F.max_pool2d(x, 2)], dim=1)
        return self.act(self.norm(y))


class _Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck (same channels in and out)."""

    def __init__(
        self, ch: int, norm: str, dropout: float, dilation: int = 1, asymmetric: int = 0
    ) -> None:
        super().__init__()
        mid = max(1, ch // 4)
        main: list[nn.Module]
        if asymmetric:
            p = asymmetric // 2
            main = [
                _conv(mid, mid, (asymmetric, 1), padding=(p, 0)),
                _conv(mid, mid, (1, asymmetric), padding=(0, p)),
            ]
        else:
            main = [_conv(mid, mid, 3, padding=dilation, dilation=dilation)]
        self.ext = nn.Sequential(
            _conv(ch, mid, 1),
            make_norm(norm, 2, mid),
            nn.PReLU(mid),
            *main,
            make_norm(norm, 2, mid),
            nn.PReLU(mid),
            _conv(mid, ch, 1),
            make_norm(norm, 2, ch),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.ext(x))


class _Down(nn.Module):
    """Downsampling bottleneck; returns the output and the max-pool argmax."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float) -> None:
        super().__init__()
        mid = max(1, cin // 4)
        self.extra = cout - cin
        self.ext = nn.Sequential(
            _conv(cin, mid, 2, stride=2),
            make_norm(norm, 2, mid),
            nn.PReLU(mid),
            _conv(mid, mid, 3, padding=1),
            make_norm(norm, 2, mid),
            nn.PReLU(mid),
            _conv(mid, cout, 1),
            make_norm(norm, 2, cout),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = F.max_pool2d(x, 2, return_indices=True)
        ext = self.ext(x)
        main = F.pad(main, [0, 0, 0, 0, 0, self.extra])  # zero channels up to cout
        return self.act(main + ext), indices


class _Up(nn.Module):
    """Upsampling bottleneck: 1×1 conv + max-unpool ‖ transposed-conv branch."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float) -> None:
        super().__init__()
        mid = max(1, cin // 4)
        self.main = nn.Sequential(_conv(cin, cout, 1), make_norm(norm, 2, cout))
        self.ext = nn.Sequential(
            _conv(cin, mid, 1),
            make_norm(norm, 2, mid),
            nn.PReLU(mid),
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1, bias=False),
            make_norm(norm, 2, mid),
            nn.PReLU(mid),
            _conv(mid, cout, 1),
            make_norm(norm, 2, cout),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        main = max_unpool2x(self.main(x), indices)
        return self.act(main + self.ext(x))


def _stage23(ch: int, norm: str, dropout: float) -> nn.Sequential:
    """The 8 bottlenecks shared by stages 2 and 3."""
    return nn.Sequential(
        _Bottleneck(ch, norm, dropout),
        _Bottleneck(ch, norm, dropout, dilation=2),
        _Bottleneck(ch, norm, dropout, asymmetric=5),
        _Bottleneck(ch, norm, dropout, dilation=4),
        _Bottleneck(ch, norm, dropout),
        _Bottleneck(ch, norm, dropout, dilation=8),
        _Bottleneck(ch, norm, dropout, asymmetric=5),
        _Bottleneck(ch, norm, dropout, dilation=16),
    )


@register_net("ENet")
class ENet(nn.Module):
    """ENet for 2D segmentation (~0.35 M parameters at ``width=1``).

    Args:
        in_channels: input channels (modalities).
        n_classes: number of classes (logit channels).
        width: multiplies the paper's channel counts (16, 64, 128); at least 1/16.
        dropout: spatial dropout of stages 2–5 (stage 1 uses a tenth), paper: 0.1.
        norm: ``"group"`` (default) or ``"batch"`` (paper), ``"instance"``, ``"none"``.

    Example:
        >>> ENet(1, 2).dims
        2
    """

    dims: ClassVar[int] = 2
    multiple: ClassVar[int] = 8
    # bf16 on CPU: 335 ms/step in NCHW, 602 ms in channels_last (bench/RESULTS.md)
    channels_last_ok: ClassVar[bool] = False
    # bf16 autocast on an H200 at 8x1x512^2: 66.6 ms/step against 45.4 ms in fp32
    # (bench/RESULTS.md, GPU steps), so AMP=auto trains it in fp32 on CUDA
    cuda_amp_ok: ClassVar[bool] = False

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        width: float = 1.0,
        dropout: float = 0.1,
        norm: str = "group",
    ) -> None:
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (16, 64, 128))
        p1 = dropout / 10
        self.initial = _Initial(in_channels, c1, norm)
        self.down1 = _Down(c1, c2, norm, p1)
        self.stage1 = nn.Sequential(*(_Bottleneck(c2, norm, p1) for _ in range(4)))
        self.down2 = _Down(c2, c3, norm, dropout)
        self.stage2 = _stage23(c3, norm, dropout)
        self.stage3 = _stage23(c3, norm, dropout)
        self.up4 = _Up(c3, c2, norm, dropout)
        self.stage4 = nn.Sequential(_Bottleneck(c2, norm, dropout), _Bottleneck(c2, norm, dropout))
        self.up5 = _Up(c2, c1, norm, dropout)
        self.stage5 = _Bottleneck(c1, norm, dropout)
        self.fullconv = nn.ConvTranspose2d(c1, n_classes, 2, stride=2)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Args:
            x: (B, C_in, H, W), any H and W.

        Returns:
            Logits (B, n_classes, H, W) in ``x``'s dtype.
        """
        in_dtype = x.dtype
        h, spatial = pad_to_multiple(x, self.multiple)
        h = self.initial(h)
        h, idx1 = self.down1(h)
        h = self.stage1(h)
        h, idx2 = self.down2(h)
        h = self.stage3(self.stage2(h))
        h = self.stage4(self.up4(h, idx2))
        h = self.stage5(self.up5(h, idx1))
        return crop_to(self.fullconv(h), spatial).to(in_dtype)
