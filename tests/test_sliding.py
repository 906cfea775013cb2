"""Tests for segline.train.sliding: tiling, Gaussian weights, whole-volume equality."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segline.nets.unet3d import UNet3D
from segline.train.device import Precision
from segline.train.sliding import (
    MIN_WEIGHT,
    gaussian_importance,
    sliding_window_predict,
    tile_positions,
    tile_starts,
)

# ---------------------------------------------------------------------------- tiling


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
def test_tile_starts_cover_flush_and_overlap(overlap: float) -> None:
    for size in range(1, 70, 3):
        for patch in (1, 4, 7, 16, 32):
            starts = tile_starts(size, patch, overlap)
            assert starts[0] == 0
            if size <= patch:
                assert starts == [0]
                continue
            assert starts[-1] == size - patch  # last tile flush with the border
            steps = np.diff(starts)
            assert (steps > 0).all()
            stride = max(patch * (1 - overlap), 1.0)
            assert (steps < stride + 1).all()  # the overlap, to rounding to whole voxels
            covered = np.zeros(size, bool)
            for s in starts:
                covered[s : s + patch] = True
            assert covered.all()
            # no more tiles than needed: nnU-Net's count
            assert len(starts) == math.ceil((size - patch) / stride - 1e-9) + 1


def test_tile_positions_cover_every_voxel() -> None:
    shape, patch = (40, 64, 50), (32, 48, 48)
    pos = tile_positions(shape, patch, 0.5)
    assert len(pos) == 2 * 2 * 2 and pos[0] == (0, 0, 0) and pos[-1] == (8, 16, 2)
    count = np.zeros(shape, int)
    for z, y, x in pos:
        count[z : z + 32, y : y + 48, x : x + 48] += 1
    assert count.min() >= 1 and count.max() == 8
    with pytest.raises(ValueError):
        tile_positions((4, 4), (2, 2, 2))
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(10, 4, 1.0)


def test_gaussian_symmetric_positive_peak_and_sigma() -> None:
    for size in [(8, 12, 12), (7, 9, 5), (1, 4, 3)]:
        w = gaussian_importance(size)
        assert w.shape == size and w.dtype == torch.float32
        assert float(w.min()) >= np.float32(MIN_WEIGHT) and float(w.max()) == pytest.approx(1.0)
        for axis in range(3):
            assert torch.equal(w, w.flip(axis))
    w = gaussian_importance((17, 1, 1))[:, 0, 0].double()
    sigma = 17 / 8
    for k in range(1, 6):  # w(c + k) / w(c) = exp(-k^2 / (2 sigma^2))
        assert float(w[8 + k] / w[8]) == pytest.approx(math.exp(-(k**2) / (2 * sigma**2)), rel=1e-5)
    corner = gaussian_importance((32, 48, 48))[0, 0, 0]
    assert float(corner) == np.float32(MIN_WEIGHT)  # exp(-3 * 8 * (31/32)^2) is below the floor


# --------------------------------------------------------------------- predictions


def small_unet() -> nn.Module:
    torch.manual_seed(0)
    return UNet3D(1, 3, base=2, depth=2).eval()


def pointwise_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Conv3d(2, 3, kernel_size=1).eval()


def test_patch_equal_to_volume_is_bit_identical_to_one_forward() -> None:
    net = small_unet()
    image = torch.randn(1, 12, 16, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = net(image[None]).softmax(1)[0]
    for gaussian in (True, False):
        probs = sliding_window_predict(net, image, (12, 16, 20), gaussian=gaussian)
        assert probs.dtype == torch.float32 and probs.shape == (3, 12, 16, 20)
        assert torch.equal(probs, whole)


@pytest.mark.parametrize("patch", [(4, 5, 6), (8, 8, 8), (3, 16, 2), (20, 20, 20)])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.7])
def test_pointwise_net_gives_whole_volume_result_for_any_tiling(
    patch: tuple[int, int, int], overlap: float
) -> None:
    net = pointwise_net()
    image = torch.randn(2, 9, 13, 11, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = net(image[None]).softmax(1)[0]
    for gaussian in (True, False):
        for bs in (1, 3):
            probs = sliding_window_predict(net, image, patch, overlap=overlap, gaussian=gaussian,
                                           batch_size=bs)
            torch.testing.assert_close(probs, whole, rtol=1e-5, atol=1e-6)


class TileMean(nn.Module):
    """A 'net' whose class-1 logit is the mean of its input tile (a tile-dependent
    constant), so overlapping tiles disagree and the weighting is visible."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3, 4), keepdim=True).expand(-1, 1, *x.shape[2:])
        return torch.cat([torch.zeros_like(m), m], dim=1)


@pytest.mark.parametrize("gaussian", [True, False])
def test_weighted_average_of_overlapping_tiles(gaussian: bool) -> None:
    shape, patch = (10, 12, 9), (6, 8, 5)
    image = torch.rand(1, *shape, generator=torch.Generator().manual_seed(4)) * 4 - 2
    probs = sliding_window_predict(TileMean(), image, patch, overlap=0.5, gaussian=gaussian)
    w = gaussian_importance(patch).double() if gaussian else torch.ones(patch, dtype=torch.float64)
    num = torch.zeros(shape, dtype=torch.float64)
    den = torch.zeros(shape, dtype=torch.float64)
    for z, y, x in tile_positions(shape, patch, 0.5):
        tile = image[:, z : z + 6, y : y + 8, x : x + 5].double()
        p1 = torch.sigmoid(tile.mean())  # softmax of (0, m) for class 1
        num[z : z + 6, y : y + 8, x : x + 5] += p1 * w
        den[z : z + 6, y : y + 8, x : x + 5] += w
    torch.testing.assert_close(probs[1].double(), num / den, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(0), torch.ones(shape), rtol=0, atol=1e-6)


def test_small_volume_is_padded_with_pad_value_and_cropped() -> None:
    image = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(5))
    probs = sliding_window_predict(TileMean(), image, (4, 8, 5), pad_value=-1.0)
    padded = torch.full((1, 4, 8, 5), -1.0)
    padded[:, :3, :4, :5] = image
    assert probs.shape == (2, 3, 4, 5)
    torch.testing.assert_close(probs[1], torch.sigmoid(padded.mean()).expand(3, 4, 5))


def test_memmap_array_input_equals_tensor_input(tmp_path: Path) -> None:
    image = np.random.default_rng(6).normal(size=(1, 10, 14, 12)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    mm = np.load(tmp_path / "image.npy", mmap_mode="r")
    net = small_unet()
    a = sliding_window_predict(net, mm, (8, 8, 8), overlap=0.5, batch_size=3)
    b = sliding_window_predict(net, torch.from_numpy(image), (8, 8, 8), overlap=0.5, batch_size=2)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert a.shape == (3, 10, 14, 12)
    a.add_(0)  # an ordinary tensor (not an inference tensor): in-place ops work


def test_bf16_autocast_channels_last_close_to_fp32() -> None:
    net = small_unet()
    image = torch.randn(1, 10, 12, 14, generator=torch.Generator().manual_seed(7))
    fp32 = sliding_window_predict(net, image, (8, 8, 8))
    prec = Precision(torch.device("cpu"), torch.bfloat16, channels_last=True)
    bf16 = sliding_window_predict(net, image, (8, 8, 8), precision=prec)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16.sum(0), torch.ones(10, 12, 14), rtol=0, atol=1e-5)
    assert float((bf16 - fp32).abs().max()) < 0.05
    assert float((bf16.argmax(0) == fp32.argmax(0)).float().mean()) > 0.95


def test_bad_arguments() -> None:
    net = pointwise_net()
    with pytest.raises(ValueError, match="C, Z, Y, X"):
        sliding_window_predict(net, torch.zeros(2, 4, 4), (2, 2, 2))
    with pytest.raises(ValueError, match="patch_size"):
        sliding_window_predict(net, torch.zeros(2, 4, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="batch_size"):
        sliding_window_predict(net, torch.zeros(2, 4, 4, 4), (2, 2, 2), batch_size=0)
