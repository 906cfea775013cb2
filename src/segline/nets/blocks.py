"""Building blocks shared by the segmentation networks (2D and 3D alike).

Every block takes ``dims`` (2 or 3) and picks the matching ``Conv2d``/``Conv3d``
and friends, so one definition serves the 2D and the 3D U-Nets.

Normalisation: :class:`torch.nn.GroupNorm` is the default (``norm="group"``). It
normalises each sample on its own, so it behaves the same with a batch of 1 or 2
3D patches as with a batch of 8 slices, and identically in ``train()`` and
``eval()`` (BatchNorm's running statistics are poor with such small batches and
make validation differ from training). Unlike InstanceNorm it stays defined on the
1-voxel feature maps that appear at the bottom of a deep U-Net fed a tiny input.
``norm="batch"`` and ``norm="instance"`` are available for comparisons.

Sizes: a net that downsamples ``n`` times needs spatial sizes divisible by
``2**n``; :func:`pad_to_multiple` zero-pads at the high end of each axis and
:func:`crop_to` removes the padding from the logits, so every net accepts any size.

Determinism: everything here is deterministic on CPU under
``torch.use_deterministic_algorithms(True)``. On CUDA, ``MaxPool3d``'s backward
has no deterministic kernel (it raises in that mode); :class:`UNetBackbone` has
``pool="conv"`` (strided convolution) for that case. Transposed convolutions are
used for upsampling instead of (bi/tri)linear interpolation, whose CUDA backward
is non-deterministic too.

Example:
    >>> import torch
    >>> block = DoubleConv(2, 1, 8)
    >>> tuple(block(torch.zeros(1, 1, 6, 6)).shape)
    (1, 8, 6, 6)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvNormAct",
    "DoubleConv",
    "ResBlock",
    "UNetBackbone",
    "conv_cls",
    "conv_transpose_cls",
    "crop_to",
    "dropout_cls",
    "init_weights",
    "make_norm",
    "pad_to_multiple",
]

BlockFn = Callable[[int, int, int], nn.Module]
"""Factory ``(in_channels, out_channels, mid_channels) -> block``."""


def _check_dims(dims: int) -> None:
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")


def conv_cls(dims: int) -> type[nn.Module]:
    """Return ``nn.Conv2d`` or ``nn.Conv3d``.

    Args:
        dims: number of spatial dimensions (2 or 3).

    Returns:
        The convolution class.

    Example:
        >>> conv_cls(3).__name__
        'Conv3d'
    """
    _check_dims(dims)
    return nn.Conv2d if dims == 2 else nn.Conv3d


def conv_transpose_cls(dims: int) -> type[nn.Module]:
    """Return ``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``.

    Args:
        dims: number of spatial dimensions (2 or 3).

    Returns:
        The transposed convolution class.

    Example:
        >>> conv_transpose_cls(2).__name__
        'ConvTranspose2d'
    """
    _check_dims(dims)
    return nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d


def dropout_cls(dims: int) -> type[nn.Module]:
    """Return the channel-wise ("spatial") dropout class, ``nn.Dropout2d``/``3d``.

    Args:
        dims: number of spatial dimensions (2 or 3).

    Returns:
        The dropout class.

    Example:
        >>> dropout_cls(3).__name__
        'Dropout3d'
    """
    _check_dims(dims)
    return nn.Dropout2d if dims == 2 else nn.Dropout3d


def _groups(channels: int, max_groups: int = 8) -> int:
    """Largest divisor of ``channels`` not above ``max_groups``."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def make_norm(kind: str, dims: int, channels: int) -> nn.Module:
    """Build a normalisation layer.

    Args:
        kind: ``"group"`` (GroupNorm, up to 8 groups), ``"instance"`` (affine
            InstanceNorm), ``"batch"`` (BatchNorm) or ``"none"`` (identity).
        dims: number of spatial dimensions (2 or 3).
        channels: number of channels to normalise.

    Returns:
        The layer.

    Example:
        >>> make_norm("group", 2, 12).num_groups
        6
    """
    _check_dims(dims)
    if kind == "group":
        return nn.GroupNorm(_groups(channels), channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)  # same maths, channels_last-friendly
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; known: group, instance, batch, none")


class ConvNormAct(nn.Sequential):
    """Convolution (no bias), normalisation, ReLU.

    Args:
        dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size (odd, "same" padding).
        norm: see :func:`make_norm`.
        act: apply the ReLU (``False`` for the last conv of a residual branch).

    Example:
        >>> tuple(ConvNormAct(3, 2, 4)(torch.zeros(1, 2, 3, 4, 5)).shape)
        (1, 4, 3, 4, 5)
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        norm: str = "group",
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            conv_cls(dims)(
                in_channels,
                out_channels,
                kernel_size,
                padding=kernel_size // 2,
                bias=norm == "none",
            ),
            make_norm(norm, dims, out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two 3×3(×3) ConvNormAct, the U-Net level block.

    Args:
        dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        mid_channels: channels after the first conv (default ``out_channels``;
            the 3D U-Net of Çiçek et al. uses ``out_channels // 2`` in the encoder).
        norm: see :func:`make_norm`.

    Example:
        >>> tuple(DoubleConv(2, 1, 4, mid_channels=2)(torch.zeros(2, 1, 5, 5)).shape)
        (2, 4, 5, 5)
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        norm: str = "group",
    ) -> None:
        mid = mid_channels or out_channels
        super().__init__(
            ConvNormAct(dims, in_channels, mid, norm=norm),
            ConvNormAct(dims, mid, out_channels, norm=norm),
        )


class ResBlock(nn.Module):
    """Residual block: ``relu(x' + norm(conv(relu(norm(conv(x))))))``.

    ``x'`` is ``x`` itself when the channel counts match, otherwise a 1×1 conv +
    norm projection (He et al. 2016, "option B").

    Args:
        dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        mid_channels: channels after the first conv (default ``out_channels``).
        norm: see :func:`make_norm`.

    Example:
        >>> tuple(ResBlock(2, 3, 8)(torch.zeros(1, 3, 7, 9)).shape)
        (1, 8, 7, 9)
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        norm: str = "group",
    ) -> None:
        super().__init__()
        mid = mid_channels or out_channels
        self.branch = nn.Sequential(
            ConvNormAct(dims, in_channels, mid, norm=norm),
            ConvNormAct(dims, mid, out_channels, norm=norm, act=False),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else ConvNormAct(dims, in_channels, out_channels, kernel_size=1, norm=norm, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, C_in, *spatial).

        Returns:
            (B, C_out, *spatial).
        """
        return self.act(self.branch(x) + self.shortcut(x))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the spatial axes of ``x`` at their high end up to a multiple.

    Args:
        x: (B, C, *spatial).
        multiple: every spatial size is rounded up to a multiple of this.

    Returns:
        The padded tensor (``x`` itself when nothing is needed) and the original
        spatial shape, for :func:`crop_to`.

    Example:
        >>> y, shape = pad_to_multiple(torch.ones(1, 1, 5, 8), 4)
        >>> tuple(y.shape), shape
        ((1, 1, 8, 8), (5, 8))
    """
    spatial = tuple(x.shape[2:])
    extra = [(-s) % multiple for s in spatial]
    if not any(extra):
        return x, spatial
    pads: list[int] = []
    for e in reversed(extra):  # F.pad wants the last axis first
        pads += [0, e]
    return F.pad(x, pads), spatial


def crop_to(x: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """Keep the first ``spatial[i]`` elements of each spatial axis.

    Args:
        x: (B, C, *spatial_padded).
        spatial: target spatial shape (as returned by :func:`pad_to_multiple`).

    Returns:
        A view of ``x`` with shape (B, C, *spatial).

    Example:
        >>> tuple(crop_to(torch.ones(1, 2, 8, 8), (5, 8)).shape)
        (1, 2, 5, 8)
    """
    if tuple(x.shape[2:]) == tuple(spatial):
        return x
    index = (slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)
    return x[index]


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal conv weights (fan-out, ReLU), zero biases, unit norms.

    Only draws from torch's global generator, in module order, so two nets built
    after the same ``torch.manual_seed`` are identical.

    Args:
        module: the network; modified in place.

    Example:
        >>> _ = torch.manual_seed(0); a = nn.Conv2d(1, 2, 3); init_weights(a)
        >>> _ = torch.manual_seed(0); b = nn.Conv2d(1, 2, 3); init_weights(b)
        >>> bool(torch.equal(a.weight, b.weight))
        True
    """
    conv_types = (
        nn.Conv2d,
        nn.Conv3d,
        nn.ConvTranspose2d,
        nn.ConvTranspose3d,
    )
    for m in module.modules():
        if isinstance(m, conv_types):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GroupNorm | nn.BatchNorm2d | nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class UNetBackbone(nn.Module):
    """Generic U-Net: encoder levels, bottom, transposed-conv decoder, 1×1 head.

    Level ``i`` works at ``widths[i]`` channels and at resolution ``2**-i``;
    ``widths[-1]`` is the bottom. Each decoder step upsamples with a 2×2(×2)
    stride-2 transposed conv to ``widths[i]`` channels, concatenates the skip
    connection and applies ``block(2 * widths[i], widths[i], widths[i])``.
    Inputs of any size are padded to a multiple of ``2 ** (len(widths) - 1)`` and
    the logits cropped back.

    Args:
        dims: 2 or 3.
        in_channels: input channels.
        n_classes: output channels (logits).
        widths: channels per level, top to bottom (at least 2 entries).
        block: factory ``(in, out, mid) -> nn.Module`` for a level.
        encoder_mid: ``"same"`` (mid = out) or ``"half"`` (mid = out // 2, the
            3D U-Net of Çiçek et al.) for the encoder and bottom blocks.
        dropout: spatial dropout rate applied to the bottom features.
        pool: ``"max"`` (2×2(×2) max pooling) or ``"conv"`` (stride-2 conv; fully
            deterministic on CUDA).

    Example:
        >>> net = UNetBackbone(2, 1, 3, [4, 8], lambda i, o, m: DoubleConv(2, i, o, m))
        >>> tuple(net(torch.zeros(1, 1, 5, 7)).shape)
        (1, 3, 5, 7)
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        n_classes: int,
        widths: Sequence[int],
        block: BlockFn,
        encoder_mid: str = "same",
        dropout: float = 0.0,
        pool: str = "max",
    ) -> None:
        super().__init__()
        _check_dims(dims)
        if len(widths) < 2:
            raise ValueError("a U-Net needs at least two levels (depth >= 1)")
        if encoder_mid not in ("same", "half"):
            raise ValueError(f"encoder_mid must be 'same' or 'half', got {encoder_mid!r}")
        if pool not in ("max", "conv"):
            raise ValueError(f"pool must be 'max' or 'conv', got {pool!r}")
        self.multiple = 2 ** (len(widths) - 1)
        conv, convt = conv_cls(dims), conv_transpose_cls(dims)

        def mid(w: int) -> int:
            return max(1, w // 2) if encoder_mid == "half" else w

        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = in_channels
        for i, w in enumerate(widths):
            self.encoders.append(block(prev, w, mid(w)))
            if i < len(widths) - 1:
                down: nn.Module = (
                    (nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2))
                    if pool == "max"
                    else conv(w, w, 2, stride=2)
                )
                self.downs.append(down)
            prev = w
        self.dropout = dropout_cls(dims)(dropout) if dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in range(len(widths) - 2, -1, -1):
            self.ups.append(convt(widths[i + 1], widths[i], 2, stride=2))
            self.decoders.append(block(2 * widths[i], widths[i], widths[i]))
        self.head = conv(widths[0], n_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Args:
            x: (B, C_in, *spatial), any spatial size.

        Returns:
            Logits (B, n_classes, *spatial), in ``x``'s dtype.
        """
        return self.forward_with_bottom(x)[0]

    def forward_with_bottom(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits as :meth:`forward`, and the bottom (bottleneck) features
        (B, widths[-1], *spatial / 2**depth) for a head of its own
        (:class:`segline.nets.iterative_fcn.IterativeFCN`'s completeness logit)."""
        in_dtype = x.dtype
        h, spatial = pad_to_multiple(x, self.multiple)
        skips: list[torch.Tensor] = []
        for i, enc in enumerate(self.encoders):
            h = enc(h)
            if i < len(self.downs):
                skips.append(h)
                h = self.downs[i](h)
        h = bottom = self.dropout(h)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            h = dec(torch.cat([up(h), skip], dim=1))
        return crop_to(self.head(h), spatial).to(in_dtype), bottom
