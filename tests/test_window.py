"""Tests for segline.preprocess.window (CT window, percentile scaling)."""

from __future__ import annotations

import numpy as np
import pytest

from segline.preprocess.window import ct_window, is_ct, percentile_normalise


def test_default_soft_tissue_window_maps_minus160_240_to_0_1() -> None:
    hu = np.array([-1024.0, -160.0, -60.0, 40.0, 140.0, 240.0, 1500.0])
    out = ct_window(hu)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-7)


def test_custom_window_and_input_untouched() -> None:
    hu = np.array([[-1000, -600], [0, 400]], dtype=np.int16)
    out = ct_window(hu, level=-600, width=1500)  # lung window: [-1350, 150]
    np.testing.assert_allclose(out, [[350 / 1500, 750 / 1500], [1350 / 1500, 1.0]], rtol=1e-6)
    assert hu.tolist() == [[-1000, -600], [0, 400]]


def test_window_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="width"):
        ct_window(np.zeros(3), 40, 0)


def test_percentiles_over_nonzero_voxels() -> None:
    img = np.zeros((10, 10), np.float32)
    img[0, :] = np.arange(1, 11)  # 1..10, the rest is zero background
    out = percentile_normalise(img, 0, 100)
    np.testing.assert_allclose(out[0], (np.arange(1, 11) - 1) / 9, rtol=1e-6)
    assert out[1:].max() == 0.0  # background below the lowest non-zero value -> 0
    out_all = percentile_normalise(img, 0, 100, nonzero=False)
    np.testing.assert_allclose(out_all[0], np.arange(1, 11) / 10, rtol=1e-6)


def test_percentiles_clip_outliers() -> None:
    img = np.concatenate([np.linspace(0, 1, 1001), [1000.0]]).astype(np.float32)
    out = percentile_normalise(img, 0.0, 99.0, nonzero=False)
    assert out.max() == 1.0 and out.min() == 0.0
    assert out[500] == pytest.approx(0.5 / np.percentile(img, 99.0), rel=1e-4)


def test_constant_image_gives_zeros_not_nan() -> None:
    out = percentile_normalise(np.full((3, 3), 7.0))
    assert out.dtype == np.float32 and not out.any()
    assert not percentile_normalise(np.zeros((2, 2))).any()


def test_is_ct() -> None:
    assert is_ct("CT") and is_ct(" ct ")
    assert not is_ct("MRI") and not is_ct("FLAIR")
