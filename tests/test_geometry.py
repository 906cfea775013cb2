"""Tests for segline.preprocess.geometry and segline.preprocess.resample."""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from msd_builder import save, source_affine
from segline.errors import InputError
from segline.preprocess import geometry as g
from segline.preprocess import resample as rs


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _world(affine, index) -> np.ndarray:
    return (np.asarray(affine) @ np.array([*index, 1.0]))[:3]


def _case(shape_xyz=(20, 18, 7), spacing=(0.8, 0.8, 5.0), seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, size=shape_xyz).astype(np.uint8)
    image = rng.normal(size=shape_xyz).astype(np.float32)
    return g.from_source([image], label, source_affine(spacing), spacing,
                         case_id="c1", channels=["CT"],
                         sources={"image": ["T/imagesTr/c1.nii.gz"], "label": None})


# ------------------------------------------------------------------------ reading


def test_read_nifti_image_and_label(tmp_path) -> None:
    data = np.arange(16 * 16 * 6, dtype=np.int16).reshape(16, 16, 6)
    vol = g.read_nifti(save(tmp_path / "i.nii.gz", data), "image")
    assert vol.data.dtype == np.float32 and vol.data.shape == (16, 16, 6)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing_xyz == (0.8, 0.8, 5.0)
    np.testing.assert_allclose(vol.affine, source_affine(), atol=1e-6)
    lab = g.read_nifti(save(tmp_path / "l.nii.gz", (data % 3).astype(np.float32)), "label")
    assert lab.data.dtype.kind == "i" and lab.data.max() == 2


@pytest.mark.parametrize("pixdim", [(0.8, 0.8, 0.0), (0.8, -0.8, 5.0)])
def test_read_nifti_rejects_zero_or_negative_pixdim(tmp_path, pixdim) -> None:
    path = save(tmp_path / "i.nii.gz", np.zeros((4, 4, 3), np.int16), pixdim=pixdim)
    with pytest.raises(InputError, match=r"spacing \(pixdim\) must be strictly positive") as err:
        g.read_nifti(path)
    assert err.value.where == str(path)


def test_read_nifti_dimensionality(tmp_path) -> None:
    p2 = save(tmp_path / "2d.nii.gz", np.zeros((4, 4), np.int16))
    with pytest.raises(InputError, match="expected a 3D image, got 2D"):
        g.read_nifti(p2)
    p4 = save(tmp_path / "4d.nii.gz", np.zeros((4, 4, 3, 2), np.int16))
    with pytest.raises(InputError, match="expected a 3D image, got 4D"):
        g.read_nifti(p4)
    assert g.read_nifti(p4, channels=2).data.shape == (4, 4, 3, 2)
    with pytest.raises(InputError, match=r"4D image \(X, Y, Z, 3\)"):
        g.read_nifti(p4, channels=3)
    with pytest.raises(InputError, match="expected a 3D label"):
        g.read_nifti(p4, "label", channels=2)


def test_read_nifti_nan_noninteger_label_and_garbage(tmp_path) -> None:
    data = np.zeros((4, 4, 3), np.float32)
    data[1, 2, 0] = np.nan
    data[0, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"2 NaN/inf voxel\(s\)"):
        g.read_nifti(save(tmp_path / "n.nii.gz", data))
    half = np.full((4, 4, 3), 0.5, np.float32)
    with pytest.raises(InputError, match="non-integer"):
        g.read_nifti(save(tmp_path / "h.nii.gz", half), "label")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti at all" * 30))
    with pytest.raises(InputError, match="not a NIfTI"):
        g.read_nifti(bad)


def test_check_same_grid(tmp_path) -> None:
    a = g.read_nifti(save(tmp_path / "a.nii.gz", np.zeros((4, 4, 3), np.int16)))
    b = g.read_nifti(save(tmp_path / "b.nii.gz", np.zeros((4, 4, 2), np.uint8)))
    with pytest.raises(InputError, match=r"shape \(4, 4, 2\) does not match"):
        g.check_same_grid(a, b)
    moved = source_affine()
    moved[0, 3] += 0.01
    c = g.read_nifti(save(tmp_path / "c.nii.gz", np.zeros((4, 4, 3), np.uint8), affine=moved))
    with pytest.raises(InputError, match="affine differs") as err:
        g.check_same_grid(a, c)
    assert err.value.where.endswith("c.nii.gz")
    tiny = source_affine()
    tiny[0, 3] += 5e-5  # within 1e-4 mm
    d = g.read_nifti(save(tmp_path / "d.nii.gz", np.zeros((4, 4, 3), np.uint8), affine=tiny))
    g.check_same_grid(a, d)


# ------------------------------------------------------------------ forward ops


def test_from_source_transposes_and_tracks_affine() -> None:
    img, lab, meta = _case()
    assert img.shape == (1, 7, 18, 20) and img.dtype == np.float32
    assert lab.shape == (7, 18, 20) and lab.dtype == np.uint8
    assert meta["shape"] == [7, 18, 20] and meta["spacing"] == [5.0, 0.8, 0.8]
    assert meta["source_shape_xyz"] == [20, 18, 7]
    assert meta["transforms"] == [{"op": "to_zyx"}]
    # stored voxel (z, y, x) is the same world point as source voxel (x, y, z)
    np.testing.assert_allclose(_world(meta["affine"], (3, 5, 11)),
                               _world(meta["source_affine"], (11, 5, 3)))
    json.dumps(meta)  # JSON-serialisable as is


def test_crop_pad_affine_and_bbox() -> None:
    img, lab, meta = _case()
    mask = np.zeros_like(lab)
    mask[2:4, 5:9, 6:10] = 1
    assert g.bounding_box(mask, margin=(1, 2, 0)) == [(1, 5), (3, 11), (6, 10)]
    assert g.bounding_box(np.zeros_like(mask)) is None
    img2, lab2, m2 = g.crop_to_bbox(img, lab, meta, mask, margin=(1, 2, 0))
    assert img2.shape == (1, 4, 8, 4) and m2["shape"] == [4, 8, 4]
    np.testing.assert_array_equal(lab2, lab[1:5, 3:11, 6:10])
    assert m2["transforms"][-1] == {"op": "crop", "shape_before": [7, 18, 20],
                                    "start": [1, 3, 6], "stop": [5, 11, 10]}
    np.testing.assert_allclose(_world(m2["affine"], (0, 0, 0)), _world(meta["affine"], (1, 3, 6)))
    img3, lab3, m3 = g.pad(img2, lab2, m2, (1, 0, 2), (0, 3, 1), image_fill=-1.0)
    assert lab3.shape == (5, 11, 7) and img3[0, 0, 0, 0] == -1.0 and lab3[0].max() == 0
    np.testing.assert_allclose(_world(m3["affine"], (1, 0, 2)), _world(m2["affine"], (0, 0, 0)))
    assert meta["transforms"] == [{"op": "to_zyx"}]  # inputs untouched
    assert g.margin_voxels(meta, 4.0) == [1, 5, 5]
    with pytest.raises(ValueError):
        g.crop(img, lab, meta, [(0, 8), (0, 1), (0, 1)])


def test_target_shape_and_resample_spacing() -> None:
    assert rs.target_shape((7, 18, 20), (5.0, 0.8, 0.8), (1.0, None, None)) == (35, 18, 20)
    assert rs.target_shape((7, 18, 20), (5.0, 0.8, 0.8), (1.0, 1.0, 1.0)) == (35, 14, 16)
    assert rs.target_shape((7, 18, 20), (5.0, 0.8, 0.8), None, inplane=32) == (7, 32, 32)
    img, lab, meta = _case()
    img2, lab2, m2 = g.resample(img, lab, meta, (7, 9, 10))
    assert img2.shape == (1, 7, 9, 10) and lab2.dtype == np.uint8
    assert m2["spacing"] == pytest.approx([5.0, 1.6, 1.6])
    op = m2["transforms"][-1]
    assert op["op"] == "resample" and op["shape_before"] == [7, 18, 20]
    assert op["label"] == "onehot-linear-argmax"
    # the stored voxel centre (0, 0, 0) lies between source voxels 0 and 1 in y and x
    np.testing.assert_allclose(_world(m2["affine"], (0, 0, 0)),
                               _world(meta["affine"], (0, 0.5, 0.5)))
    assert set(np.unique(lab2)) <= set(np.unique(lab))
    same = g.resample(img, lab, meta, (7, 18, 20))
    assert same[2] is meta


def test_resample_image_linear_values_and_antialias() -> None:
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32), (1, 4, 8)).copy()
    up = rs.resample_image(ramp, (1, 4, 16))
    # output voxel o samples input at (o + 0.5) / 2 - 0.5
    np.testing.assert_allclose(up[0, 0, 1:-1], (np.arange(1, 15) + 0.5) / 2 - 0.5, atol=1e-5)
    checker = (np.indices((1, 12, 12)).sum(0) % 2).astype(np.float32)
    down = rs.resample_image(checker, (1, 4, 4))
    assert np.ptp(down) < 0.2  # smoothed to ~0.5, not aliased to 0/1
    assert np.ptp(rs.resample_image(checker, (1, 4, 4), antialias=False)) > 0.5


# ------------------------------------------------------------------- to_source


def test_to_source_exact_for_transpose_and_crop() -> None:
    rng = np.random.default_rng(3)
    src = np.zeros((20, 18, 7), np.uint8)
    src[4:15, 3:12, 1:6] = rng.integers(0, 4, size=(11, 9, 5))
    img, lab, meta = g.from_source([src.astype(np.float32)], src, source_affine(),
                                   (0.8, 0.8, 5.0), case_id="c", channels=["CT"])
    img, lab, meta = g.crop_to_bbox(img, lab, meta, lab > 0, margin=2)
    img, lab, meta = g.pad(img, lab, meta, (1, 1, 1), (2, 0, 3))
    back = g.to_source(lab, meta)
    assert back.dtype == np.uint8 and back.shape == src.shape
    np.testing.assert_array_equal(back, src)
    # one-hot probabilities give the same answer
    probs = np.stack([(lab == k).astype(np.float32) for k in range(4)])
    np.testing.assert_array_equal(g.to_source(probs, meta), src)
    with pytest.raises(ValueError, match="stored shape"):
        g.to_source(lab[:-1], meta)


def test_to_source_resample_round_trip_of_smooth_blob() -> None:
    shape = (40, 36, 9)
    x, y, z = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    r2 = ((x - 21) / 11) ** 2 + ((y - 17) / 9) ** 2 + ((z - 4) / 3.2) ** 2
    blob = (r2 < 1).astype(np.uint8) + (r2 < 0.3)  # classes 0, 1, 2 (nested)
    img, lab, meta = g.from_source([blob.astype(np.float32)], blob, source_affine(),
                                   (0.8, 0.8, 5.0), case_id="c", channels=["CT"])
    img, lab, meta = g.crop_to_bbox(img, lab, meta, lab > 0, margin=3)
    img, lab, meta = g.resample(img, lab, meta, (lab.shape[0], 24, 27))
    assert lab.shape[1:] == (24, 27)
    back = g.to_source(lab, meta)
    assert back.shape == shape
    for k in (1, 2):
        assert _dice(back >= k, blob >= k) >= 0.95
    assert not back[:, :, 0].any()  # outside the crop: background
    probs = np.stack([(lab == k).astype(np.float32) for k in range(3)])
    assert _dice(g.to_source(probs, meta) >= 1, blob >= 1) >= 0.95


def test_write_nifti_like_source_affine_shape_and_stable_bytes(tmp_path) -> None:
    img, lab, meta = _case()
    back = g.to_source(lab, meta)
    out = g.write_nifti_like(back, meta, tmp_path / "preds" / "c1.nii.gz")
    assert not list((tmp_path / "preds").glob("*.tmp"))
    nii = nib.load(out)
    assert nii.shape == (20, 18, 7)
    np.testing.assert_allclose(nii.affine, meta["source_affine"], atol=1e-5)
    assert nii.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(nii.dataobj), back)
    first = out.read_bytes()
    g.write_nifti_like(back, meta, out)
    assert out.read_bytes() == first
    with pytest.raises(ValueError, match="source shape"):
        g.write_nifti_like(back[:-1], meta, tmp_path / "x.nii.gz")


def test_read_nifti_singleton_fourth_axis_is_3d(tmp_path) -> None:
    data = np.arange(4 * 4 * 3, dtype=np.int16).reshape(4, 4, 3)
    p = save(tmp_path / "i1.nii.gz", data[..., None])
    assert nib.load(p).shape == (4, 4, 3, 1)  # really stored as 4D
    vol = g.read_nifti(p)
    assert vol.data.shape == (4, 4, 3)
    np.testing.assert_array_equal(vol.data, data)
    lab = g.read_nifti(save(tmp_path / "l1.nii.gz", (data % 2).astype(np.uint8)[..., None]),
                       "label")
    assert lab.data.shape == (4, 4, 3) and lab.data.dtype.kind in "iu"
    np.testing.assert_array_equal(lab.data, data % 2)
    # a singleton 4th axis is not two modalities, and a real 4D is still not 3D
    with pytest.raises(InputError, match=r"4D image \(X, Y, Z, 2\)"):
        g.read_nifti(p, channels=2)
    p2 = save(tmp_path / "i2.nii.gz", np.zeros((4, 4, 3, 2), np.int16))
    with pytest.raises(InputError, match="expected a 3D label, got 4D"):
        g.read_nifti(p2, "label")
