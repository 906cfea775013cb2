"""The 2D-3D fusion network of Guo et al. (IEEE TMI 2024): a 3D encoder-decoder over
the patch and a 2D encoder-decoder over the patch's maximum intensity projection
(MIP), fed at every level with the 3D features at each ray's MIP index
(``--net MipFused``, the vessels method ``mip_fused``).

Both networks are residual U-Nets with the same widths per level (``widths``,
``levels``; the published defaults are 5 levels of 6, 16, 32, 64, 128 channels):
pre-activation blocks (instance norm, ReLU, 3-wide convolution) with a residual from
the block's first convolution, 2× max pooling down, a 4-wide stride-2 transposed
convolution (then norm and ReLU) up, skip concatenation, and a head of two
1-wide convolutions.

Fusion. For a patch (B, C, D, H, W) projected along spatial ``axis`` (0 = D):

- the MIP image is the maximum of channel 0 along ``axis`` and the *MIP index* of
  a ray the (first) index of that maximum, (B, *plane) in voxels of the patch;
- at level ``i`` (1 = full resolution, scale ``s = 2**(i-1)``) the index map is
  resampled linearly (corner-aligned) to the level's plane, truncated and divided by
  ``s`` (the level voxel holding the full-resolution voxel), then the 3D encoder and
  decoder features of that level are read at it (:func:`gather_features`);
- the 2D encoder concatenates its level-``i`` features with the gathered 3D encoder
  features before pooling (and at the bottom, before going up); each 2D decoder
  level concatenates its output with the gathered 3D decoder features of that level
  before the next up-convolution, and the head reads the concatenation of level 1.
  The 2D skips carry the 2D features only.

Outputs. In training mode ``forward`` returns a :class:`FusedOutput`: the 3D logits
(B, K, D, H, W), the fused 2D logits (B, K, *plane) and the MIP index; the loss
``mip_fused`` (:mod:`segline.experiments.vessels.loss`) reads the last two as batch
keys (the vessel trainer adds them). In eval mode it returns the 3D logits only:
prediction, validation and the evaluation stage use the 3D head alone, as the
published inference does.

Spatial sizes must be multiples of ``2**(levels-1)`` in training (the fusion
reads the same voxels in the 3D and 2D pyramids); in eval mode other sizes are
zero-padded at their high end and cropped back.

Example:
    >>> import torch
    >>> net = MipFused(1, 2, levels=2, widths="2,4").train()
    >>> out = net(torch.rand(1, 1, 4, 6, 8))
    >>> tuple(out.logits.shape), tuple(out.fused.shape), tuple(out.depth.shape)
    ((1, 2, 4, 6, 8), (1, 2, 6, 8), (1, 6, 8))
    >>> tuple(net.eval()(torch.rand(1, 1, 5, 6, 7)).shape)
    (1, 2, 5, 6, 7)
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segline.experiments.vessels.loss import FUSED_KEYS
from segline.nets.blocks import crop_to, pad_to_multiple
from segline.nets.registry import register_net

__all__ = ["NAME", "FusedOutput", "MipFused", "gather_features", "level_depth", "mip_index"]

NAME = "MipFused"
"""The network's registered name (``--net``, make's ``NET``)."""


class FusedOutput(NamedTuple):
    """What :class:`MipFused` returns in training mode.

    Attributes:
        logits: (B, K, D, H, W) 3D logits.
        fused: (B, K, *plane) logits of the fused 2D network on the MIP.
        depth: (B, *plane) int64 MIP index of each ray (voxels of the patch).
    """

    logits: Tensor
    fused: Tensor
    depth: Tensor

    def batch_keys(self) -> dict[str, Tensor]:
        """The 2D outputs under the batch keys the loss ``mip_fused`` reads
        (:data:`segline.experiments.vessels.loss.FUSED_KEYS`)."""
        return dict(zip(FUSED_KEYS, (self.fused, self.depth), strict=True))


def mip_index(image: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """The MIP of channel 0 along a spatial axis and the index of each ray's maximum.

    Args:
        image: (B, C, D, H, W).
        axis: spatial axis 0, 1 or 2.

    Returns:
        ``(mip (B, 1, *plane), depth (B, *plane) int64)``; ties give the first index
        (as the MIP stage, :mod:`segline.experiments.vessels.mip`).

    Example:
        >>> v = torch.tensor([[1.0, 5.0], [3.0, 5.0]]).reshape(1, 1, 2, 1, 2)
        >>> m, d = mip_index(v, 0)
        >>> m.flatten().tolist(), d.flatten().tolist()
        ([3.0, 5.0], [1, 0])
    """
    x = image[:, 0].float()
    # torch.argmax returns the first of equal maxima (torch.max(dim) may not)
    return x.amax(dim=axis + 1).unsqueeze(1), x.argmax(dim=axis + 1)


def level_depth(depth: Tensor, plane: tuple[int, int], scale: int, size: int) -> Tensor:
    """The MIP index of a pyramid level: the full-resolution index map resampled to
    the level's ``plane`` (bilinear, corner-aligned), truncated, divided by
    ``scale`` (floor) and kept inside ``[0, size)``; level 1 (``scale`` 1) is
    ``depth`` itself.

    Args:
        depth: (B, *plane0) int64 full-resolution index.
        plane: the level's plane shape.
        scale: ``2**(level-1)``.
        size: the level's length along the projection axis.

    Example:
        >>> d = torch.tensor([[[0, 2], [4, 6]]])
        >>> level_depth(d, (1, 1), 2, 4).tolist()
        [[[0]]]
        >>> level_depth(d, (2, 2), 2, 4).tolist()
        [[[0, 1], [2, 3]]]
    """
    if scale == 1 and tuple(depth.shape[1:]) == tuple(plane):
        return depth.clamp(0, size - 1)
    resampled = F.interpolate(
        depth.unsqueeze(1).float(), size=plane, mode="bilinear", align_corners=True
    ).squeeze(1)
    return (resampled.long() // scale).clamp(0, size - 1)


def gather_features(features: Tensor, depth: Tensor, axis: int) -> Tensor:
    """The features of a (B, C, D, H, W) volume at one index per ray along ``axis``.

    Args:
        features: (B, C, D, H, W).
        depth: (B, *plane) integer indices into spatial ``axis``.
        axis: 0, 1 or 2 (dim ``axis + 2`` of ``features``).

    Returns:
        (B, C, *plane): ``features[b, c, ..., depth[b, r], ...]``.

    Example:
        >>> f = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
        >>> gather_features(f, torch.tensor([[[1, 0], [0, 1]]]), 0).tolist()
        [[[[4.0, 1.0], [2.0, 7.0]]]]
    """
    moved = features.movedim(axis + 2, 2)
    b, c = moved.shape[:2]
    index = depth.long().reshape(b, 1, 1, *moved.shape[3:]).expand(b, c, 1, *moved.shape[3:])
    return moved.gather(2, index).squeeze(2)


def _parse_widths(widths: str | int, levels: int) -> list[int]:
    """``"6,16,32,64,128"`` -> its first ``levels`` widths (positive integers)."""
    parts = [p.strip() for p in str(widths).split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"MipFused: widths must be positive integers separated by commas, "
                         f"got {widths!r}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"MipFused: levels must be an integer >= 2, got {levels!r}")
    if len(parts) < levels:
        raise ValueError(f"MipFused: {levels} levels need {levels} widths, got {widths!r}")
    return [int(p) for p in parts[:levels]]


def _norm(dims: int, channels: int) -> nn.Module:
    return (nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d)(channels)


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv3d if dims == 3 else nn.Conv2d


class _PreAct(nn.Sequential):
    """Instance norm, ReLU, 3-wide convolution (pre-activation)."""

    def __init__(self, dims: int, cin: int, cout: int) -> None:
        super().__init__(_norm(dims, cin), nn.ReLU(), _conv(dims)(cin, cout, 3, padding=1))


class _Block(nn.Module):
    """Two pre-activation convolutions; the residual is the first one's output
    (encoder) or the up-convolution's (decoder, ``forward(x, residual)``)."""

    def __init__(self, dims: int, cin: int, cout: int) -> None:
        super().__init__()
        self.first = _PreAct(dims, cin, cout)
        self.second = _PreAct(dims, cout, cout)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        y = self.first(x)
        return self.second(y) + (y if residual is None else residual)


class _Up(nn.Sequential):
    """4-wide stride-2 transposed convolution, instance norm, ReLU: twice the size."""

    def __init__(self, dims: int, cin: int, cout: int) -> None:
        conv = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        super().__init__(conv(cin, cout, 4, stride=2, padding=1), _norm(dims, cout), nn.ReLU())


class _UNet(nn.Module):
    """A residual U-Net (3D, or the fused 2D one when ``fused``: every level's input
    and up-convolution take the gathered 3D features concatenated, so twice the
    channels)."""

    def __init__(self, dims: int, in_channels: int, n_classes: int, widths: list[int],
                 fused: bool = False) -> None:
        super().__init__()
        f = 2 if fused else 1
        ins = [in_channels] + [f * w for w in widths[:-1]]
        self.down = nn.ModuleList(_Block(dims, a, w) for a, w in zip(ins, widths, strict=True))
        self.pool = (nn.MaxPool3d if dims == 3 else nn.MaxPool2d)(2)
        self.up = nn.ModuleList(
            _Up(dims, f * widths[i + 1], widths[i]) for i in range(len(widths) - 1)
        )
        self.dec = nn.ModuleList(_Block(dims, 2 * w, w) for w in widths[:-1])
        conv = _conv(dims)
        self.head = nn.Sequential(conv(f * widths[0], widths[0], 1), conv(widths[0], n_classes, 1))


class _Features(NamedTuple):
    """The 3D network's logits and per-level features (index 0 = level 1)."""

    logits: Tensor
    encoder: list[Tensor]
    decoder: list[Tensor]  # levels 1..L-1


@register_net("MipFused")
class MipFused(nn.Module):
    """3D residual U-Net fused with a 2D one on the MIP (module docstring).

    Args:
        in_channels: image channels (the MIP is taken of channel 0).
        n_classes: classes (logit channels of both heads).
        axis: the projection axis of the patch (0 = z, 1 = y, 2 = x), the MIP store's
            (make's ``MIP_AXIS``).
        levels: resolution levels of both networks (published: 5).
        widths: channels per level, comma-separated; the first ``levels`` are used
            (published: ``6,16,32,64,128``).
    """

    dims: ClassVar[int] = 3

    def __init__(self, in_channels: int, n_classes: int, axis: int = 0, levels: int = 5,
                 widths: str = "6,16,32,64,128") -> None:
        super().__init__()
        if isinstance(axis, bool) or axis not in (0, 1, 2):
            raise ValueError(f"MipFused: axis must be 0, 1 or 2, got {axis!r}")
        self.axis = int(axis)
        self.widths = _parse_widths(widths, levels)
        self.levels = len(self.widths)
        self.net3d = _UNet(3, in_channels, n_classes, self.widths)
        self.net2d = _UNet(2, 1, n_classes, self.widths, fused=True)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (``2**(levels-1)``)."""
        return 2 ** (self.levels - 1)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, widths={self.widths}"

    def _forward3d(self, x: Tensor) -> _Features:
        net = self.net3d
        encoder: list[Tensor] = []
        h = x
        for i, block in enumerate(net.down):
            h = block(h if i == 0 else net.pool(h))
            encoder.append(h)
        decoder: list[Tensor] = [h] * (self.levels - 1)
        for i in reversed(range(self.levels - 1)):
            u = net.up[i](h)
            h = net.dec[i](torch.cat([u, encoder[i]], 1), u)
            decoder[i] = h
        return _Features(net.head(h), encoder, decoder)

    def _forward2d(self, mip: Tensor, depth: Tensor, f3: _Features) -> Tensor:
        net, axis = self.net2d, self.axis
        depths = []
        for i, e in enumerate(f3.encoder):
            plane = tuple(n for a, n in enumerate(e.shape[2:]) if a != axis)
            depths.append(level_depth(depth, plane, 2**i, int(e.shape[2 + axis])))  # type: ignore[arg-type]
        skips: list[Tensor] = []
        h = mip
        for i, block in enumerate(net.down):
            e = block(h if i == 0 else net.pool(h))
            skips.append(e)
            h = torch.cat([e, gather_features(f3.encoder[i], depths[i], axis)], 1)
        for i in reversed(range(self.levels - 1)):
            u = net.up[i](h)
            d = net.dec[i](torch.cat([u, skips[i]], 1), u)
            h = torch.cat([d, gather_features(f3.decoder[i], depths[i], axis)], 1)
        return net.head(h)

    def forward(self, x: Tensor) -> Tensor | FusedOutput:
        """3D logits (eval mode) or the :class:`FusedOutput` (training mode)."""
        if not self.training:
            padded, spatial = pad_to_multiple(x, self.multiple)
            return crop_to(self._forward3d(padded).logits, spatial)
        if any(n % self.multiple for n in x.shape[2:]):
            raise ValueError(
                f"MipFused: training patch {tuple(x.shape[2:])} must be a multiple of "
                f"{self.multiple} in every axis ({self.levels} levels; PATCH or levels=)"
            )
        f3 = self._forward3d(x)
        mip, depth = mip_index(x, self.axis)
        fused = self._forward2d(mip.to(x.dtype), depth, f3)
        return FusedOutput(f3.logits, fused, depth)
