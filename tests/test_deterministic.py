"""Tests for segline.datasets.deterministic: stable PRNG, integer smoothing, gzip, NIfTI,
tar and zip writers whose bytes must not depend on the machine or library versions."""

from __future__ import annotations

import gzip
import io
import itertools
import struct
import tarfile
import zipfile

import nibabel as nib
import numpy as np
import pytest

from segline.datasets.deterministic import (
    GOLDEN_GAMMA,
    CounterRNG,
    box_gain,
    box_noise_gain,
    box_sum,
    box_sum_nd,
    derive_key,
    gzip_stored,
    nifti_bytes,
    nifti_gz_bytes,
    smooth_noise,
    splitmix64,
    tar_bytes,
    with_parent_dirs,
    zip_bytes,
)

# ---------------------------------------------------------------------------
# PRNG
# ---------------------------------------------------------------------------


def test_splitmix64_known_answer() -> None:
    # Reference SplitMix64 seeded with 0: the first two outputs (published test vector).
    states = np.array([GOLDEN_GAMMA, (2 * GOLDEN_GAMMA) % 2**64], dtype=np.uint64)
    assert splitmix64(states).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_counter_rng_pinned_values() -> None:
    # Known answers: if these change, every toy archive's md5 changes with them.
    assert derive_key(0, "pin") == 0x562BACBB6A1A10C4
    rng = CounterRNG(0, "pin")
    assert rng.bits(3).tolist() == [0x6A6943132260EF3E, 0x11A5AF7B1CD37CFB, 0xCBABD8B5015EADAD]
    assert rng.integers(0, 1000, 4).tolist() == [125, 971, 733, 813]
    assert rng.uniform(0.0, 1.0, 2).tolist() == [0.30907577899050476, 0.9262508514867126]
    assert rng.normal(3).tolist() == [-0.7321472168821082, -2.451019287394711, -0.8397827149415136]


def test_derive_key_separates_paths() -> None:
    keys = {derive_key(0, "a", 1), derive_key(0, "a1"), derive_key(0, "a", "1"), derive_key(1)}
    assert len(keys) == 4
    with pytest.raises(TypeError):
        derive_key(0, 1.5)  # type: ignore[arg-type]


def test_counter_rng_reproducible_and_sequential() -> None:
    a, b = CounterRNG(7, "x"), CounterRNG(7, "x")
    assert np.array_equal(a.bits(10), b.bits(10))
    # The counter advances: two draws of 3 + 5 equal one draw of 8.
    c, d = CounterRNG(7, "y"), CounterRNG(7, "y")
    assert np.array_equal(np.concatenate([c.bits(3), c.bits(5)]), d.bits(8))
    # Other seed / path / child: other numbers; child() does not consume draws.
    parent = CounterRNG(7, "x")
    child = parent.child("sub")
    assert parent.counter == 0
    assert not np.array_equal(child.bits(10), CounterRNG(7, "x").bits(10))
    assert np.array_equal(child.path, ("x", "sub"))
    assert not np.array_equal(CounterRNG(8, "x").bits(10), CounterRNG(7, "x").bits(10))


def test_integers_uniform_and_in_range() -> None:
    draws = CounterRNG(1, "int").integers(-3, 7, 100_000)
    assert draws.dtype == np.int64
    assert draws.min() == -3 and draws.max() == 6
    counts = np.bincount(draws + 3, minlength=10)
    assert np.all(np.abs(counts - 10_000) < 500)  # ~5 sigma
    scalar = CounterRNG(1, "int").integers(5, 6)
    assert scalar == 5 and isinstance(scalar, int)
    with pytest.raises(ValueError):
        CounterRNG(1).integers(3, 3)


def test_uniform_floats() -> None:
    u = CounterRNG(2, "u").uniform(2.0, 4.0, (200, 500))
    assert u.shape == (200, 500)
    assert u.min() >= 2.0 and u.max() < 4.0
    assert abs(u.mean() - 3.0) < 0.01
    assert abs(u.var() - 4.0 / 12.0) < 0.01
    assert isinstance(CounterRNG(2).uniform(), float)


def test_normal_moments_and_bounds() -> None:
    for terms in (4, 12):
        z = CounterRNG(3, "n", terms).normal(200_000, terms=terms)
        assert abs(z.mean()) < 0.01
        assert abs(z.std() - 1.0) < 0.01
        assert np.abs(z).max() <= np.sqrt(3.0 * terms) + 1e-9
        # Roughly Gaussian: ~68 % within one sigma.
        assert abs(np.mean(np.abs(z) < 1.0) - 0.683) < 0.02
    noise = CounterRNG(3).normal_int((100, 100), sigma=10.0)
    assert noise.dtype == np.int64 and 9.5 < noise.std() < 10.5
    with pytest.raises(ValueError):
        CounterRNG(3).normal(10, terms=6)


def test_permutation() -> None:
    p = CounterRNG(4, "perm").permutation(50)
    assert sorted(p.tolist()) == list(range(50))
    assert p.tolist() != list(range(50))
    assert p.tolist() == CounterRNG(4, "perm").permutation(50).tolist()


# ---------------------------------------------------------------------------
# Smoothing
# ---------------------------------------------------------------------------


def _naive_box(x: np.ndarray, r: int, mode: str) -> np.ndarray:
    padded = np.pad(x, r, mode={"edge": "edge", "wrap": "wrap", "reflect": "symmetric"}[mode])
    return np.array([padded[i : i + 2 * r + 1].sum() for i in range(len(x))])


@pytest.mark.parametrize("mode", ["edge", "wrap", "reflect"])
@pytest.mark.parametrize("radius", [0, 1, 3, 12])
def test_box_sum_matches_naive(mode: str, radius: int) -> None:
    x = CounterRNG(5, mode, radius).integers(-1000, 1000, 10)
    assert box_sum(x, radius, 0, mode).tolist() == _naive_box(x, radius, mode).tolist()


def test_box_sum_along_axis_and_errors() -> None:
    x = np.arange(12).reshape(3, 4)
    assert box_sum(x, 1, axis=1).tolist() == [[1, 3, 6, 8], [13, 15, 18, 20], [25, 27, 30, 32]]
    assert box_sum(x, 1, axis=-2).tolist() == [[4, 7, 10, 13], [12, 15, 18, 21], [20, 23, 26, 29]]
    with pytest.raises(TypeError):
        box_sum(np.ones(3), 1, 0)
    with pytest.raises(ValueError):
        box_sum(x, 1, 0, mode="nearest")


def test_box_sum_nd_gains() -> None:
    ones = np.ones((6, 7, 5), dtype=np.int64)
    out = box_sum_nd(ones, (1, 2, 0), passes=2)
    assert np.all(out == box_gain((1, 2, 0), 2)) and box_gain((1, 2, 0), 2) == 9 * 25
    assert box_noise_gain((1,), 1) == 3
    assert box_noise_gain((1,), 2) == 1 + 4 + 9 + 4 + 1  # kernel 1 2 3 2 1
    assert box_noise_gain((1, 0), 2) == 19
    with pytest.raises(ValueError):
        box_sum_nd(ones, (1, 1))


def test_smooth_noise_std_correlation_reproducible() -> None:
    a = smooth_noise(CounterRNG(6, "s"), (64, 64, 20), (3, 3, 1), passes=2, std=10.0)
    b = smooth_noise(CounterRNG(6, "s"), (64, 64, 20), (3, 3, 1), passes=2, std=10.0)
    assert a.shape == (64, 64, 20) and a.dtype == np.float64
    assert np.array_equal(a, b)
    assert 9.0 < a.std() < 11.0
    assert abs(a.mean()) < 2.0
    # Neighbours are strongly correlated (smooth), far voxels are not.
    near = np.corrcoef(a[:-1].ravel(), a[1:].ravel())[0, 1]
    far = np.corrcoef(a[:-20].ravel(), a[20:].ravel())[0, 1]
    assert near > 0.8 and abs(far) < 0.1
    # No border artefacts: the edge slices have the same spread as the middle.
    assert 0.8 < a[:, :, 0].std() / a[:, :, 10].std() < 1.25


# ---------------------------------------------------------------------------
# gzip
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 2 * 65535, 200_003])
def test_gzip_stored_round_trip(size: int) -> None:
    data = CounterRNG(7, size).integers(0, 256, size).astype(np.uint8).tobytes()
    packed = gzip_stored(data)
    assert gzip.decompress(packed) == data
    assert packed == gzip_stored(data)
    blocks = max(1, -(-size // 65535))
    assert len(packed) == size + 18 + 5 * blocks
    assert packed[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # mtime 0, OS 255


def test_gzip_stored_empty_exact_bytes() -> None:
    assert gzip_stored(b"") == (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x01\x00\x00\xff\xff" + bytes(8)
    )


# ---------------------------------------------------------------------------
# NIfTI
# ---------------------------------------------------------------------------


def _affine(signs: tuple[int, int, int]) -> np.ndarray:
    aff = np.diag([signs[0] * 0.8125, signs[1] * 0.78125, signs[2] * 5.0, 1.0])
    aff[:3, 3] = [39.0, -12.5, -300.0]
    return aff


def test_nifti_round_trip_header_pinned(tmp_path) -> None:
    arr = CounterRNG(8).integers(-1024, 3000, (5, 4, 3)).astype(np.int16)
    aff = _affine((-1, -1, 1))
    raw = nifti_gz_bytes(arr, aff)
    path = tmp_path / "x.nii.gz"
    path.write_bytes(raw)
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    assert data.dtype == np.int16 and np.array_equal(data, arr)
    assert np.array_equal(img.affine, aff)
    hdr = img.header
    assert np.array_equal(hdr.get_qform(), aff) and np.array_equal(hdr.get_sform(), aff)
    assert int(hdr["qform_code"]) == 1 and int(hdr["sform_code"]) == 1
    assert hdr.get_xyzt_units() == ("mm", "unknown")
    assert hdr["descrip"].item() == b""
    assert hdr.get_zooms() == (0.8125, 0.78125, 5.0)
    header = gzip.decompress(raw)[:352]
    # scl_slope, scl_inter at byte 112 (nibabel resets them to NaN when loading)
    assert struct.unpack_from("<ff", header, 112) == (1.0, 0.0)
    assert struct.unpack_from("<if", header, 0)[0] == 348
    assert struct.unpack_from("<f", header, 108) == (352.0,)  # vox_offset
    assert header[344:348] == b"n+1\x00" and header[348:] == bytes(4)  # no extensions
    assert raw == nifti_gz_bytes(arr, aff)
    assert len(nifti_bytes(arr, aff)) == 352 + arr.size * 2


@pytest.mark.parametrize("signs", list(itertools.product((1, -1), repeat=3)))
def test_nifti_qform_exact_for_every_flip(signs: tuple[int, int, int]) -> None:
    aff = _affine(signs)
    img = nib.Nifti1Image.from_bytes(nifti_bytes(np.zeros((2, 3, 4), np.uint8), aff))
    assert np.array_equal(img.header.get_qform(), aff)
    assert float(img.header["pixdim"][0]) == float(np.sign(np.prod(signs)))


def test_nifti_dtypes_and_byte_order() -> None:
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    little = nifti_bytes(arr, np.eye(4))
    big = nifti_bytes(arr.astype(">f4"), np.eye(4))
    assert little == big  # always written little-endian
    img = nib.Nifti1Image.from_bytes(little)
    assert img.get_data_dtype() == np.dtype("<f4")
    assert np.array_equal(img.get_fdata(), arr)
    lab = nib.Nifti1Image.from_bytes(nifti_bytes(np.ones((2, 2, 2), np.uint8), np.eye(4)))
    assert lab.get_data_dtype() == np.uint8


def test_nifti_rejects_bad_input() -> None:
    rotated = np.eye(4)
    rotated[:2, :2] = [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="diagonal"):
        nifti_bytes(np.zeros((2, 2, 2), np.int16), rotated)
    with pytest.raises(ValueError, match="dtype"):
        nifti_bytes(np.zeros((2, 2, 2), bool), np.eye(4))
    with pytest.raises(ValueError, match="shape"):
        nifti_bytes(np.zeros((2, 2), np.int16), np.eye(4))
    with pytest.raises(ValueError, match="descrip"):
        nifti_bytes(np.zeros((2, 2, 2), np.int16), np.eye(4), descrip="x" * 80)


# ---------------------------------------------------------------------------
# tar / zip
# ---------------------------------------------------------------------------

ENTRIES = [
    ("Top/a.txt", b"hello"),
    ("Top/sub/b.bin", bytes(range(256)) * 5),
    ("Top/" + "d" * 90 + "/" + "e" * 60 + ".txt", b"long name"),
    ("Top/empty/", b""),
]


def test_with_parent_dirs() -> None:
    names = [n for n, _ in with_parent_dirs(ENTRIES)]
    assert names[:4] == ["Top/", "Top/a.txt", "Top/sub/", "Top/sub/b.bin"]
    assert names.count("Top/empty/") == 1 and names.count("Top/") == 1


def test_tar_bytes_deterministic_and_readable() -> None:
    raw = tar_bytes(ENTRIES)
    assert raw == tar_bytes(list(ENTRIES))
    assert len(raw) % 10240 == 0
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == [
            "Top",
            "Top/a.txt",
            "Top/sub",
            "Top/sub/b.bin",
            "Top/" + "d" * 90,
            "Top/" + "d" * 90 + "/" + "e" * 60 + ".txt",
            "Top/empty",
        ]
        for m in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o644)
        assert tf.extractfile("Top/sub/b.bin").read() == ENTRIES[1][1]
        assert tf.extractfile(members[5]).read() == b"long name"


def test_tar_rejects_bad_names() -> None:
    for bad in ["/abs.txt", "a/../b.txt", "a\\b.txt", "x" * 101 + ".txt"]:
        with pytest.raises(ValueError):
            tar_bytes([(bad, b"x")])
    with pytest.raises(ValueError):
        tar_bytes([("dir/", b"content")])


def test_zip_bytes_deterministic_and_readable() -> None:
    raw = zip_bytes(ENTRIES)
    assert raw == zip_bytes(list(ENTRIES))
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [i.filename for i in infos][:4] == ["Top/", "Top/a.txt", "Top/sub/", "Top/sub/b.bin"]
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.external_attr >> 16 == (0o40755 if info.is_dir() else 0o100644)
        assert zf.read("Top/sub/b.bin") == ENTRIES[1][1]
        assert zf.read("Top/a.txt") == b"hello"
    with pytest.raises(ValueError):
        zip_bytes([("../evil.txt", b"x")])
