"""Building blocks for toy data whose bytes are identical on every machine.

The toy archives are checked against an md5 in ``lineage/*.lineage`` exactly like the
real downloads, so the generator must give the same bytes on any CPU, OS and library
version. Everything here therefore avoids the usual sources of drift:

* random numbers come from :class:`CounterRNG`, a SplitMix64 counter generator written
  with numpy ``uint64`` wrap-around arithmetic (numpy's ``Generator`` streams are not
  promised to stay the same across numpy versions);
* smoothing (:func:`box_sum`, :func:`box_sum_nd`) is done on integers with cumulative
  sums, which are exact; the only float work callers should do on voxel values is
  element-wise ``+ - * /``, ``sqrt`` and comparisons, which IEEE 754 rounds exactly.
  Transcendental functions (sin, exp, log) and float reductions (``np.sum``, whose
  summation order depends on the numpy build) must stay out of anything that decides a
  voxel value;
* compression is avoided: :func:`gzip_stored` writes a gzip member of *stored* deflate
  blocks by hand, because zlib and zlib-ng (now shipped by some distributions) produce
  different compressed bytes for the same input;
* :func:`nifti_bytes` fills every field of the NIfTI-1 header explicitly (using
  nibabel's header layout) instead of relying on nibabel's writer, whose defaults
  (e.g. the scale slope it stores for unscaled data) have changed between versions;
* :func:`tar_bytes` and :func:`zip_bytes` write the containers field by field (USTAR
  and PKZIP "stored"), with zero times, ids and fixed permissions, so they do not
  depend on the ``tarfile`` / ``zipfile`` defaults of a Python release.

Example:
    >>> rng = CounterRNG(0, "demo")
    >>> rng.integers(0, 10, 5).tolist() == CounterRNG(0, "demo").integers(0, 10, 5).tolist()
    True
    >>> import gzip
    >>> gzip.decompress(gzip_stored(b"abc"))
    b'abc'
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import overload

import nibabel as nib
import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64 increment (odd; 2**64 / golden ratio)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

Shape = int | tuple[int, ...]

# ---------------------------------------------------------------------------
# Pseudo-random numbers
# ---------------------------------------------------------------------------


# A minimal AppleDouble file ("._name", the junk macOS adds to archives): magic,
# version 2, "Mac OS X" filler, 0 entries. Toy archives ship it so unpacking must drop it.
APPLEDOUBLE = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 0)


def derive_key(*parts: int | str) -> int:
    """A 64-bit stream key from a path of ints / strings (stable, collision-resistant).

    Uses BLAKE2b over a typed, length-prefixed encoding, so ``("a", 1)`` and
    ``("a1",)`` give different keys.
    """
    h = hashlib.blake2b(digest_size=8, person=b"segline-rng")
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int | str):
            raise TypeError(f"stream path parts must be int or str, got {part!r}")
        raw = str(part).encode("utf-8")
        h.update((b"i" if isinstance(part, int) else b"s") + struct.pack("<Q", len(raw)) + raw)
    return int.from_bytes(h.digest(), "little")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function: a bijective 64-bit mix, element-wise on ``uint64``."""
    z = np.asarray(x, dtype=np.uint64).copy()
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def _size(shape: Shape) -> tuple[tuple[int, ...], int]:
    shape_t = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if any(s < 0 for s in shape_t):
        raise ValueError(f"negative dimension in shape {shape_t}")
    return shape_t, math.prod(shape_t)


class CounterRNG:
    """Counter-based generator: draw ``i`` of a stream is ``splitmix64(key + (i+1)·γ)``.

    The stream key comes from the seed and an optional path (``CounterRNG(seed,
    "spleen", 3)``), so every case, structure or noise field can have its own stream
    and adding a new one never shifts the numbers of the others. Draws advance an
    internal counter; the same sequence of calls gives the same numbers everywhere.

    Args:
        seed: the user's seed (any int; reduced modulo 2**64 for the key).
        *path: names / indices that select an independent sub-stream.

    Example:
        >>> a = CounterRNG(1, "case", 2)
        >>> float(a.uniform()) == float(CounterRNG(1, "case", 2).uniform())
        True
    """

    def __init__(self, seed: int, *path: int | str) -> None:
        self.seed = int(seed)
        self.path = tuple(path)
        self.key = derive_key(self.seed & MASK64, *path)
        self.counter = 0

    def child(self, *path: int | str) -> CounterRNG:
        """An independent stream below this one (does not consume draws from it)."""
        return CounterRNG(self.seed, *self.path, *path)

    def bits(self, shape: Shape) -> np.ndarray:
        """Uniform 64-bit words (``uint64`` array of ``shape``)."""
        shape_t, n = _size(shape)
        counters = np.arange(self.counter + 1, self.counter + 1 + n, dtype=np.uint64)
        self.counter += n
        state = counters * np.uint64(GOLDEN_GAMMA) + np.uint64(self.key)
        return splitmix64(state).reshape(shape_t)

    @overload
    def integers(self, low: int, high: int, shape: None = None) -> int: ...
    @overload
    def integers(self, low: int, high: int, shape: Shape) -> np.ndarray: ...
    def integers(self, low: int, high: int, shape: Shape | None = None) -> np.ndarray | int:
        """Uniform integers in ``[low, high)`` (``int64`` array, or an int if no shape).

        Uses the word modulo the range; the bias is below ``range / 2**64``.
        """
        span = int(high) - int(low)
        if span <= 0 or span > 1 << 62:
            raise ValueError(f"need low < high with a range below 2**62, got [{low}, {high})")
        words = self.bits(1 if shape is None else shape)
        out = (words % np.uint64(span)).astype(np.int64) + np.int64(low)
        return int(out[0]) if shape is None else out

    @overload
    def uniform(self, low: float = 0.0, high: float = 1.0, shape: None = None) -> float: ...
    @overload
    def uniform(self, low: float, high: float, shape: Shape) -> np.ndarray: ...
    def uniform(
        self, low: float = 0.0, high: float = 1.0, shape: Shape | None = None
    ) -> np.ndarray | float:
        """Uniform floats in ``[low, high)`` (``float64``; a float if no shape).

        The unit draw is ``(word >> 11) * 2**-53``, exact in float64; the affine map to
        ``[low, high)`` is one multiply and one add, IEEE-rounded.
        """
        words = self.bits(1 if shape is None else shape)
        unit = (words >> np.uint64(11)).astype(np.float64) * (2.0**-53)
        out = unit * (float(high) - float(low)) + float(low)
        return float(out[0]) if shape is None else out

    def normal(self, shape: Shape, terms: int = 12) -> np.ndarray:
        """Approximately standard-normal floats (Irwin–Hall: a sum of uniforms).

        Each 64-bit word gives four 16-bit uniforms; ``terms`` of them (a multiple of 4)
        are summed in integers, centred and scaled to unit variance. Tails are bounded
        at about ``±sqrt(3·terms)``.

        Args:
            shape: output shape.
            terms: uniforms per value (4, 8, 12, ...): more is closer to Gaussian.
        """
        if terms <= 0 or terms % 4:
            raise ValueError(f"terms must be a positive multiple of 4, got {terms}")
        shape_t, n = _size(shape)
        words = self.bits((n, terms // 4))
        total = np.zeros(n, dtype=np.int64)
        for lane in range(4):
            chunk = ((words >> np.uint64(16 * lane)) & np.uint64(0xFFFF)).astype(np.int64)
            for col in range(terms // 4):
                total += chunk[:, col]
        centred = 2 * total - terms * 0xFFFF  # integer, exact: 2·(sum - mean)
        scale = 1.0 / (2.0 * math.sqrt(terms * (65536.0**2 - 1.0) / 12.0))
        return (centred.astype(np.float64) * scale).reshape(shape_t)

    def normal_int(self, shape: Shape, sigma: float, terms: int = 4) -> np.ndarray:
        """Integer noise ≈ N(0, sigma²), rounded half-to-even (``int64``)."""
        return np.rint(self.normal(shape, terms) * float(sigma)).astype(np.int64)

    def permutation(self, n: int) -> np.ndarray:
        """A random permutation of ``range(n)`` (sorting distinct random keys)."""
        keys = self.bits(n)
        # Ties are astronomically unlikely; the stable sort keeps even those deterministic.
        return np.argsort(keys, kind="stable").astype(np.int64)


# ---------------------------------------------------------------------------
# Integer smoothing
# ---------------------------------------------------------------------------

_PAD_MODES = {"edge": "edge", "wrap": "wrap", "reflect": "symmetric"}


def box_sum(field: np.ndarray, radius: int, axis: int, mode: str = "edge") -> np.ndarray:
    """Sum over a window of ``2·radius + 1`` samples along ``axis`` (exact, ``int64``).

    Args:
        field: integer array.
        radius: half-width in samples (0 returns the field as int64).
        axis: the axis to filter.
        mode: how the border is extended: "edge" (repeat the last sample), "wrap"
            (periodic) or "reflect" (mirror, edge sample included).

    Example:
        >>> box_sum(np.array([1, 2, 3]), 1, 0).tolist()
        [4, 6, 8]
    """
    arr = np.asarray(field)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"box_sum needs an integer array, got {arr.dtype}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    arr = arr.astype(np.int64, copy=False)
    if radius == 0:
        return arr.copy()
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    axis = axis % arr.ndim
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (radius + 1, radius)
    padded = np.pad(arr, pad, mode=_PAD_MODES[mode])
    csum = np.cumsum(padded, axis=axis)
    width = 2 * radius + 1
    n = arr.shape[axis]
    before = (slice(None),) * axis
    return csum[(*before, slice(width, width + n))] - csum[(*before, slice(0, n))]


def box_sum_nd(
    field: np.ndarray, radii: Sequence[int], passes: int = 1, mode: str = "edge"
) -> np.ndarray:
    """Separable box sums along every axis, repeated ``passes`` times (exact, ``int64``).

    Two or three passes approximate a Gaussian blur. The result is a *sum*; divide by
    :func:`box_gain` (one float division, exactly rounded) to get a mean.
    """
    arr = np.asarray(field)
    if len(radii) != arr.ndim:
        raise ValueError(f"need one radius per axis ({arr.ndim}), got {list(radii)}")
    out = arr.astype(np.int64)
    for _ in range(passes):
        for axis, radius in enumerate(radii):
            out = box_sum(out, int(radius), axis, mode)
    return out


def _axis_kernel(radius: int, passes: int) -> np.ndarray:
    kernel = np.ones(1, dtype=np.int64)
    box = np.ones(2 * radius + 1, dtype=np.int64)
    for _ in range(passes):
        kernel = np.convolve(kernel, box)
    return kernel


def box_gain(radii: Sequence[int], passes: int = 1) -> int:
    """Sum of the weights of :func:`box_sum_nd`'s kernel (its output for a field of 1s)."""
    return math.prod(int(_axis_kernel(int(r), passes).sum()) for r in radii)


def box_noise_gain(radii: Sequence[int], passes: int = 1) -> int:
    """Sum of squared kernel weights: white noise of variance v leaves with variance v·this."""
    return math.prod(int((_axis_kernel(int(r), passes) ** 2).sum()) for r in radii)


def smooth_noise(
    rng: CounterRNG,
    shape: Sequence[int],
    radii: Sequence[int],
    passes: int = 2,
    std: float = 1.0,
) -> np.ndarray:
    """Spatially correlated noise with (approximately) the requested standard deviation.

    Uniform integer white noise is box-smoothed in integers, then scaled once by a
    factor computed from the kernel (``sqrt`` is correctly rounded in IEEE 754, so the
    scale is the same everywhere). The white noise is drawn on a margin of
    ``radius·passes`` samples around ``shape`` and cropped after smoothing, so the
    field is statistically the same up to the borders (no edge-extension artefacts).

    Args:
        rng: the stream to draw from.
        shape: output shape.
        radii: box half-widths per axis, in samples (correlation length ≈ radius·passes).
        passes: box passes (2–3 look Gaussian).
        std: target standard deviation (units of the caller, e.g. HU).

    Returns:
        float64 array of ``shape``.
    """
    if len(radii) != len(shape):
        raise ValueError(f"need one radius per axis ({len(shape)}), got {list(radii)}")
    margins = [int(r) * passes for r in radii]
    padded = tuple(int(n) + 2 * m for n, m in zip(shape, margins, strict=True))
    white = rng.integers(-32768, 32768, padded)
    summed = box_sum_nd(white, radii, passes, "edge")
    summed = summed[tuple(slice(m, m + int(n)) for m, n in zip(margins, shape, strict=True))]
    white_var = (65536.0**2 - 1.0) / 12.0
    scale = float(std) / math.sqrt(white_var * box_noise_gain(radii, passes))
    return summed.astype(np.float64) * scale


# ---------------------------------------------------------------------------
# gzip without zlib
# ---------------------------------------------------------------------------

_STORED_MAX = 0xFFFF
# ID1 ID2, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255 (unknown)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def gzip_stored(data: bytes) -> bytes:
    """A gzip member holding ``data`` in stored (uncompressed) deflate blocks.

    No file name, mtime 0, OS byte 255: the output depends only on ``data`` (size is
    ``len(data) + 18 + 5·ceil(len/65535)`` bytes). CRC-32 is the standard polynomial,
    the same from any implementation.

    Example:
        >>> len(gzip_stored(b""))
        23
    """
    view = memoryview(bytes(data))
    n = len(view)
    parts = [_GZIP_HEADER]
    if n == 0:
        parts.append(struct.pack("<BHH", 1, 0, 0xFFFF))
    for start in range(0, n, _STORED_MAX):
        chunk = view[start : start + _STORED_MAX]
        final = 1 if start + _STORED_MAX >= n else 0
        size = len(chunk)
        parts.append(struct.pack("<BHH", final, size, size ^ 0xFFFF))
        parts.append(chunk)
    parts.append(struct.pack("<II", zlib.crc32(view) & 0xFFFFFFFF, n & 0xFFFFFFFF))
    return b"".join(parts)


# ---------------------------------------------------------------------------
# NIfTI-1
# ---------------------------------------------------------------------------

# (numpy kind, item size) -> (NIfTI datatype code, bitpix); byte order is always little
NIFTI_DTYPES: dict[tuple[str, int], tuple[int, int]] = {
    ("u", 1): (2, 8),
    ("i", 2): (4, 16),
    ("i", 4): (8, 32),
    ("f", 4): (16, 32),
    ("f", 8): (64, 64),
    ("i", 1): (256, 8),
    ("u", 2): (512, 16),
}
NIFTI_UNITS_MM = 2  # xyzt_units: spatial unit millimetre, time unit unknown
# Rotation part of an axis-aligned affine (diagonal signs, det +1) -> quaternion (b, c, d)
_QUATERNIONS = {
    (1, 1, 1): (0.0, 0.0, 0.0),
    (1, -1, -1): (1.0, 0.0, 0.0),
    (-1, 1, -1): (0.0, 1.0, 0.0),
    (-1, -1, 1): (0.0, 0.0, 1.0),
}


def nifti_header_bytes(
    shape: Sequence[int], dtype: np.dtype, affine: np.ndarray, descrip: str = ""
) -> bytes:
    """The 348-byte little-endian NIfTI-1 header, every field set explicitly.

    Both qform and sform are written with code 1 (scanner) from ``affine``; the
    quaternion of an axis-aligned affine is written exactly (no eigen-solver).

    Args:
        shape: array shape (3 or 4 dimensions, NIfTI order: x, y, z[, t]).
        dtype: a dtype listed in :data:`NIFTI_DTYPES` (any byte order).
        affine: 4×4 voxel → world (mm) map whose 3×3 part is diagonal (axis-aligned,
            signs allowed), e.g. ``diag(-0.8, -0.8, 5, 1)`` plus an origin.
        descrip: the header's free-text description (at most 79 ASCII characters).

    Raises:
        ValueError: on an unsupported dtype, shape or a rotated/sheared affine.
    """
    dt = np.dtype(dtype)
    if (dt.kind, dt.itemsize) not in NIFTI_DTYPES:
        raise ValueError(f"unsupported NIfTI dtype {dt}")
    if not 3 <= len(shape) <= 4 or any(not 0 < int(s) < 32768 for s in shape):
        raise ValueError(f"shape must be 3-D or 4-D with sizes in 1..32767, got {tuple(shape)}")
    aff = np.asarray(affine, dtype=np.float64)
    lin = aff[:3, :3]
    if aff.shape != (4, 4) or np.any(lin != np.diag(np.diag(lin))):
        raise ValueError("affine must be 4x4 with a diagonal (axis-aligned) 3x3 part")
    if np.any(aff[3] != (0.0, 0.0, 0.0, 1.0)) or np.any(np.diag(lin) == 0.0):
        raise ValueError("affine must have last row (0, 0, 0, 1) and non-zero spacings")
    desc = descrip.encode("ascii")
    if len(desc) > 79:
        raise ValueError("descrip must be at most 79 ASCII characters")

    diag = np.diag(lin)
    signs = [1 if v > 0 else -1 for v in diag]
    qfac = 1.0
    if signs[0] * signs[1] * signs[2] < 0:
        qfac = -1.0
        signs[2] = -signs[2]
    quat = _QUATERNIONS[tuple(signs)]
    code, bitpix = NIFTI_DTYPES[(dt.kind, dt.itemsize)]
    dims = [len(shape), *[int(s) for s in shape]] + [1] * (7 - len(shape))
    pixdim = [qfac, *np.abs(diag).tolist()] + [1.0] * 4

    hdr = nib.Nifti1Header(binaryblock=bytes(348), endianness="<", check=False)
    fields = {
        "sizeof_hdr": 348,
        "data_type": b"",
        "db_name": b"",
        "extents": 0,
        "session_error": 0,
        "regular": b"",
        "dim_info": 0,
        "dim": dims,
        "intent_p1": 0.0,
        "intent_p2": 0.0,
        "intent_p3": 0.0,
        "intent_code": 0,
        "datatype": code,
        "bitpix": bitpix,
        "slice_start": 0,
        "pixdim": pixdim,
        "vox_offset": 352.0,
        "scl_slope": 1.0,
        "scl_inter": 0.0,
        "slice_end": 0,
        "slice_code": 0,
        "xyzt_units": NIFTI_UNITS_MM,
        "cal_max": 0.0,
        "cal_min": 0.0,
        "slice_duration": 0.0,
        "toffset": 0.0,
        "glmax": 0,
        "glmin": 0,
        "descrip": desc,
        "aux_file": b"",
        "qform_code": 1,
        "sform_code": 1,
        "quatern_b": quat[0],
        "quatern_c": quat[1],
        "quatern_d": quat[2],
        "qoffset_x": aff[0, 3],
        "qoffset_y": aff[1, 3],
        "qoffset_z": aff[2, 3],
        "srow_x": aff[0],
        "srow_y": aff[1],
        "srow_z": aff[2],
        "intent_name": b"",
        "magic": b"n+1",
    }
    missing = set(hdr.keys()) - set(fields)
    if missing:  # a future nibabel with extra fields must not leave them to its defaults
        raise RuntimeError(f"NIfTI header fields not pinned: {sorted(missing)}")
    for name, value in fields.items():
        hdr[name] = value
    block = hdr.binaryblock
    if len(block) != 348:
        raise RuntimeError(f"NIfTI-1 header is {len(block)} bytes, expected 348")
    return block


def nifti_bytes(array: np.ndarray, affine: np.ndarray, descrip: str = "") -> bytes:
    """An uncompressed single-file NIfTI-1 (``.nii``): header, no extensions, data.

    Data are written little-endian in Fortran (x fastest) order, as the format
    requires; see :func:`nifti_header_bytes` for the header and the affine rules.
    """
    arr = np.asarray(array)
    header = nifti_header_bytes(arr.shape, arr.dtype, affine, descrip)
    data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="F")
    return header + b"\x00\x00\x00\x00" + data


def nifti_gz_bytes(array: np.ndarray, affine: np.ndarray, descrip: str = "") -> bytes:
    """A ``.nii.gz`` file's bytes: :func:`nifti_bytes` wrapped by :func:`gzip_stored`.

    Example:
        >>> import gzip, io
        >>> raw = nifti_gz_bytes(np.zeros((2, 2, 2), np.uint8), np.eye(4))
        >>> nib.Nifti1Image.from_bytes(gzip.decompress(raw)).shape
        (2, 2, 2)
    """
    return gzip_stored(nifti_bytes(array, affine, descrip))


# ---------------------------------------------------------------------------
# Containers: tar (USTAR) and zip (stored)
# ---------------------------------------------------------------------------

Entry = tuple[str, bytes]  # (archive path, content); a path ending in "/" is a folder
FILE_MODE = 0o644
DIR_MODE = 0o755
TAR_RECORD = 10240  # 20 blocks of 512 bytes, the traditional tar blocking factor


def with_parent_dirs(entries: Iterable[Entry]) -> list[Entry]:
    """Insert a folder entry (``"a/"``, ``"a/b/"``) before the first member below it.

    The order of the given entries is kept; folders already present are not repeated.

    Example:
        >>> [n for n, _ in with_parent_dirs([("a/b/c.txt", b""), ("a/d.txt", b"")])]
        ['a/', 'a/b/', 'a/b/c.txt', 'a/d.txt']
    """
    seen: set[str] = set()
    out: list[Entry] = []
    for name, data in entries:
        parts = name.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth]) + "/"
            if folder not in seen:
                seen.add(folder)
                out.append((folder, b""))
        if name.endswith("/"):
            if name in seen:
                continue
            seen.add(name)
        out.append((name, data))
    return out


def _check_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise ValueError(f"bad archive member name {name!r}")
    if any(part in ("", ".", "..") for part in name.rstrip("/").split("/")):
        raise ValueError(f"bad archive member name {name!r}")
    if name.endswith("/") and len(raw) == 1:
        raise ValueError(f"bad archive member name {name!r}")
    return raw


def _octal(value: int, width: int) -> bytes:
    """Tar numeric field: zero-padded octal digits and a NUL, ``width`` bytes in all."""
    digits = format(value, "o").encode("ascii")
    if len(digits) > width - 1:
        raise ValueError(f"value {value} does not fit a {width}-byte tar field")
    return digits.rjust(width - 1, b"0") + b"\x00"


def _tar_split_name(raw: bytes) -> tuple[bytes, bytes]:
    """(prefix, name) for USTAR: a name over 100 bytes is split at the last '/' that
    leaves a prefix of at most 155 bytes and a non-empty name of at most 100."""
    if len(raw) <= 100:
        return b"", raw
    for cut in range(min(len(raw) - 2, 155), 0, -1):
        if raw[cut : cut + 1] == b"/" and len(raw) - cut - 1 <= 100:
            return raw[:cut], raw[cut + 1 :]
    raise ValueError(f"archive member name too long for USTAR: {raw.decode()!r}")


def _tar_header(raw_name: bytes, size: int, is_dir: bool) -> bytes:
    prefix, name = _tar_split_name(raw_name)
    header = b"".join(
        [
            name.ljust(100, b"\x00"),
            _octal(DIR_MODE if is_dir else FILE_MODE, 8),
            _octal(0, 8),  # uid
            _octal(0, 8),  # gid
            _octal(size, 12),
            _octal(0, 12),  # mtime
            b" " * 8,  # checksum placeholder
            b"5" if is_dir else b"0",
            b"\x00" * 100,  # linkname
            b"ustar\x0000",
            b"\x00" * 32,  # uname
            b"\x00" * 32,  # gname
            _octal(0, 8),  # devmajor
            _octal(0, 8),  # devminor
            prefix.ljust(155, b"\x00"),
            b"\x00" * 12,
        ]
    )
    checksum = sum(header)
    return header[:148] + format(checksum, "06o").encode("ascii") + b"\x00 " + header[156:]


def tar_bytes(entries: Iterable[Entry], add_dirs: bool = True) -> bytes:
    """An uncompressed USTAR archive of ``entries``, in the order given.

    Every member has mtime 0, uid/gid 0, empty user/group names and mode 0644 (files)
    or 0755 (folders); the archive ends with two zero blocks and is padded to a
    10240-byte record, like GNU tar.

    Args:
        entries: ``(path, content)`` pairs; a path ending in "/" is a folder (content
            must be empty). Sort them first if the order should not matter.
        add_dirs: insert explicit parent-folder entries (:func:`with_parent_dirs`).
    """
    items = with_parent_dirs(entries) if add_dirs else list(entries)
    body = b"".join(tar_member(name, data) for name, data in items)
    return body + tar_end(len(body))


def tar_member(name: str, data: bytes) -> bytes:
    """One USTAR member of :func:`tar_bytes`: header, content, zero padding to 512.

    For archives too large to hold in memory (real-size benchmark data), write the
    members one by one, then :func:`tar_end` of the byte count written.
    """
    raw = _check_name(name)
    is_dir = name.endswith("/")
    if is_dir and data:
        raise ValueError(f"folder entry {name!r} must have empty content")
    return _tar_header(raw, len(data), is_dir) + bytes(data) + b"\x00" * (-len(data) % 512)


def tar_end(written: int) -> bytes:
    """The end of a tar of ``written`` member bytes: two zero blocks, then zero padding
    to a whole 10240-byte record."""
    return b"\x00" * 1024 + b"\x00" * (-(written + 1024) % TAR_RECORD)


_DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1  # year-1980, month, day
_DOS_TIME_MIDNIGHT = 0
_ZIP_VERSION = 20  # 2.0: folders; stored members
_ZIP_MADE_BY = (3 << 8) | _ZIP_VERSION  # host 3 = Unix, so external attributes carry modes
_ZIP_UTF8 = 0x0800


def zip_bytes(entries: Iterable[Entry], add_dirs: bool = True) -> bytes:
    """A zip archive of ``entries`` (order kept), every member *stored* (no compression).

    Fixed date 1980-01-01 00:00, Unix external attributes (0644 files, 0755 folders),
    no extra fields or comments; sizes must stay below 4 GiB (no ZIP64).

    Args:
        entries: ``(path, content)`` pairs; a path ending in "/" is a folder.
        add_dirs: insert explicit parent-folder entries (:func:`with_parent_dirs`).
    """
    items = with_parent_dirs(entries) if add_dirs else list(entries)
    if len(items) >= 0xFFFF:
        raise ValueError("too many members for a zip without ZIP64")
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in items:
        raw = _check_name(name)
        is_dir = name.endswith("/")
        if is_dir and data:
            raise ValueError(f"folder entry {name!r} must have empty content")
        data = bytes(data)
        if len(data) >= 0xFFFFFFFF or offset >= 0xFFFFFFFF:
            raise ValueError("zip member or archive too large without ZIP64")
        flags = 0 if raw.isascii() else _ZIP_UTF8
        crc = zlib.crc32(data) & 0xFFFFFFFF
        common = struct.pack(
            "<HHHHHIII",
            _ZIP_VERSION,
            flags,
            0,  # method: stored
            _DOS_TIME_MIDNIGHT,
            _DOS_DATE_1980_01_01,
            crc,
            len(data),
            len(data),
        )
        local_header = struct.pack("<I", 0x04034B50) + common + struct.pack("<HH", len(raw), 0)
        local.append(local_header + raw + data)
        attrs = ((0o040000 | DIR_MODE) << 16) | 0x10 if is_dir else (0o100000 | FILE_MODE) << 16
        central.append(
            struct.pack("<IH", 0x02014B50, _ZIP_MADE_BY)
            + common
            + struct.pack("<HHHHHII", len(raw), 0, 0, 0, 0, attrs, offset)
            + raw
        )
        offset += len(local_header) + len(raw) + len(data)
    cd = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(items), len(items), len(cd), offset, 0)
    return b"".join(local) + cd + end
