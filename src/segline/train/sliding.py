"""Sliding-window inference of a 3D network over a whole volume (nnU-Net style).

The volume (C, Z, Y, X) is covered by tiles of ``patch_size`` voxels. Along each axis
of size ``n`` and patch ``p`` the tile origins are ``round(linspace(0, n - p, m))``
with ``m = ceil((n - p) / max(p (1 - overlap), 1)) + 1``: evenly spread, the first flush
with the low border, the last flush with the high border, and neighbouring tiles
overlapping by at least ``overlap`` of the patch (nnU-Net's rule). Along an axis
where the volume is smaller than the patch there is one tile, zero-padded
(``pad_value``) at the high end; the padding is cropped from the output.

Each tile's softmax probabilities (computed in float32, also under autocast) are
multiplied by an importance map and summed into the output, which is finally divided
by the summed weights. With ``gaussian=True`` the map is a separable Gaussian centred
on the tile, ``sigma = sigma_scale * patch_size`` per axis (nnU-Net: 1/8), scaled to a
maximum of 1 and floored at ``1e-6`` so voxels seen only by tile corners stay well
defined: predictions near a tile's centre, which saw the most context, dominate the
tile borders. With ``gaussian=False`` every tile voxel weighs 1 (plain average).
When a single tile covers the whole volume its probabilities are returned as they are
(bit-identical to one forward pass of the whole volume).

The model's mode (``train``/``eval``) is left as it is: call ``model.eval()`` first.

Example:
    >>> import torch
    >>> net = torch.nn.Conv3d(1, 2, 1)
    >>> probs = sliding_window_predict(net, torch.randn(1, 9, 10, 11), (4, 6, 6))
    >>> tuple(probs.shape), bool(torch.allclose(probs.sum(0), torch.ones(9, 10, 11)))
    ((2, 9, 10, 11), True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from segline.train.device import Precision

__all__ = [
    "MIN_WEIGHT",
    "gaussian_importance",
    "sliding_window_predict",
    "tile_positions",
    "tile_starts",
]

MIN_WEIGHT = 1e-6
"""Floor of the Gaussian importance map (its maximum is 1)."""


def tile_starts(size: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Tile origins along one axis.

    Args:
        size: the volume's extent along the axis (voxels, >= 1).
        patch: the tile's extent (voxels, >= 1).
        overlap: requested overlap of neighbouring tiles, a fraction of ``patch`` in
            [0, 1).

    Returns:
        Increasing origins; ``[0]`` when ``size <= patch``; otherwise the last one is
        ``size - patch``.

    Example:
        >>> tile_starts(64, 48, 0.5), tile_starts(100, 32, 0.5), tile_starts(20, 32)
        ([0, 16], [0, 14, 27, 41, 54, 68], [0])
    """
    if size < 1 or patch < 1:
        raise ValueError(f"size and patch must be >= 1, got {size}, {patch}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= patch:
        return [0]
    stride = max(patch * (1.0 - overlap), 1.0)  # whole voxels: no repeated origins
    n = math.ceil((size - patch) / stride - 1e-9) + 1
    return [int(round(s)) for s in np.linspace(0, size - patch, n)]


def tile_positions(
    shape: Sequence[int], patch_size: Sequence[int], overlap: float = 0.5
) -> list[tuple[int, ...]]:
    """All tile origins of a volume, in C order (last axis fastest).

    Args:
        shape: spatial shape (Z, Y, X) (any number of axes).
        patch_size: tile size, one per axis.
        overlap: see :func:`tile_starts`.

    Returns:
        The origins, each a tuple of ints.

    Example:
        >>> tile_positions((40, 64, 64), (32, 48, 48))[:3]
        [(0, 0, 0), (0, 0, 16), (0, 16, 0)]
        >>> len(tile_positions((40, 64, 64), (32, 48, 48)))
        8
    """
    if len(shape) != len(patch_size):
        raise ValueError(f"shape {tuple(shape)} and patch_size {tuple(patch_size)} differ")
    per_axis = [
        tile_starts(int(n), int(p), overlap) for n, p in zip(shape, patch_size, strict=True)
    ]
    return list(itertools.product(*per_axis))


def gaussian_importance(
    patch_size: Sequence[int], sigma_scale: float = 0.125, min_weight: float = MIN_WEIGHT
) -> torch.Tensor:
    """Separable Gaussian weights of a tile, maximum 1, symmetric about the centre.

    ``w(x) = prod_a exp(-(x_a - c_a)^2 / (2 sigma_a^2))`` with ``c_a = (p_a - 1) / 2``
    (the exact centre, so even sizes stay symmetric) and ``sigma_a = sigma_scale *
    p_a``, divided by its maximum, then floored at ``min_weight``.

    Args:
        patch_size: tile size per axis (voxels).
        sigma_scale: sigma as a fraction of the patch size (nnU-Net: 1/8).
        min_weight: floor (> 0).

    Returns:
        float32 tensor of shape ``patch_size``.

    Example:
        >>> w = gaussian_importance((4, 5))
        >>> round(float(w.max()), 6), bool(torch.equal(w, w.flip(0).flip(1)))
        (1.0, True)
    """
    if sigma_scale <= 0 or min_weight <= 0:
        raise ValueError("sigma_scale and min_weight must be > 0")
    w = np.ones((), np.float64)
    for p in patch_size:
        x = np.arange(int(p), dtype=np.float64) - (int(p) - 1) / 2.0
        g = np.exp(-0.5 * (x / (sigma_scale * int(p))) ** 2)
        w = np.multiply.outer(w, g)
    w = w / w.max()
    return torch.from_numpy(np.maximum(w, min_weight).astype(np.float32))


def _batches(positions: list[tuple[int, ...]], n: int) -> Iterator[list[tuple[int, ...]]]:
    for i in range(0, len(positions), n):
        yield positions[i : i + n]


def sliding_window_predict(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    gaussian: bool = True,
    batch_size: int = 2,
    precision: Precision | None = None,
    device: torch.device | str | None = None,
    sigma_scale: float = 0.125,
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Softmax probabilities of ``model`` over a whole 3D volume, tile by tile.

    Args:
        model: maps (B, C, *patch_size) to logits (B, K, *patch_size).
        image: (C, Z, Y, X) float tensor or array; a memory-mapped array is read tile
            by tile.
        patch_size: (D, H, W) tile size in voxels (what the net was trained on).
        overlap: fraction of a tile shared with its neighbour, in [0, 1).
        gaussian: Gaussian importance weights (else uniform).
        batch_size: tiles per forward pass.
        precision: device, autocast dtype and channels_last (``channels_last_3d``)
            of the trainer; None = float32 on ``device``.
        device: where to compute when ``precision`` is None (default: the model's
            parameters' device, else CPU).
        sigma_scale: Gaussian sigma as a fraction of the patch size.
        pad_value: image value used to pad volumes smaller than the patch.

    Returns:
        float32 CPU tensor (K, Z, Y, X) of probabilities (each voxel sums to 1 over K).

    Example:
        >>> net = torch.nn.Conv3d(2, 3, 1)
        >>> tuple(sliding_window_predict(net, torch.zeros(2, 5, 5, 5), (8, 8, 8)).shape)
        (3, 5, 5, 5)
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {tuple(image.shape)}")
    size = tuple(int(p) for p in patch_size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"patch_size must be 3 positive integers, got {tuple(patch_size)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if precision is not None:
        dev = precision.device
    elif device is not None:
        dev = torch.device(device)
    else:
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
    amp_dtype = precision.amp_dtype if precision is not None else None
    channels_last = precision.channels_last if precision is not None else False

    shape = tuple(int(n) for n in image.shape[1:])
    positions = tile_positions(shape, size, overlap)
    single = len(positions) == 1
    weight = (gaussian_importance(size, sigma_scale) if gaussian else torch.ones(size)).to(dev)
    out: torch.Tensor | None = None
    norm = torch.zeros(shape, dtype=torch.float32, device=dev)

    def read(start: tuple[int, ...]) -> torch.Tensor:
        win = tuple(slice(s, s + p) for s, p in zip(start, size, strict=True))
        if isinstance(image, torch.Tensor):
            tile = image[(slice(None), *win)].float()
        else:
            tile = torch.from_numpy(np.array(image[(slice(None), *win)], dtype=np.float32))
        pads: list[int] = []
        for n, p in zip(reversed(tile.shape[1:]), reversed(size), strict=True):
            pads += [0, p - n]
        if any(pads):
            tile = torch.nn.functional.pad(tile, pads, value=pad_value)
        return tile

    with torch.no_grad():
        for group in _batches(positions, batch_size):
            x = torch.stack([read(s) for s in group]).to(dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast(
                dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits = model(x)
            probs = logits.float().softmax(dim=1)
            if out is None:
                out = torch.zeros((probs.shape[1], *shape), dtype=torch.float32, device=dev)
            for b, start in enumerate(group):
                win = tuple(
                    slice(s, min(s + p, n)) for s, p, n in zip(start, size, shape, strict=True)
                )
                crop = tuple(slice(0, w.stop - w.start) for w in win)
                if single:
                    out[(slice(None), *win)] = probs[b][(slice(None), *crop)]
                    continue
                w = weight[crop]
                out[(slice(None), *win)] += probs[b][(slice(None), *crop)] * w
                norm[win] += w
    assert out is not None
    if not single:
        out /= norm
    return out.cpu()
