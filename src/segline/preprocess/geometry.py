"""Geometry bookkeeping: from a source NIfTI to the stored (Z, Y, X) grid and back.

A stored case remembers, in its ``meta.json``, where it came from and every
transform applied, so that a prediction made on the stored grid can be written
back as a NIfTI file that overlays the source image exactly.

``meta.json`` keys (all lengths in mm, shapes in voxels):

* ``case_id``, ``channels`` (names), ``source`` (``{"image": [files], "label": file
  or null}``, paths relative to the raw folder);
* ``source_affine`` (4x4, voxel index (i, j, k) -> world mm, as in the NIfTI file),
  ``source_shape_xyz`` (X, Y, Z) and ``source_spacing_xyz`` (x, y, z) from the
  header (pixdim);
* ``shape`` (Z, Y, X) and ``spacing`` (z, y, x) of the stored arrays, and ``affine``
  (4x4, stored index (z, y, x) -> world mm): the project-wide convention;
* ``transforms``: the ordered list of operations, each a dict with an ``op``:

  - ``{"op": "to_zyx"}``: NIfTI (X, Y, Z) transposed to (Z, Y, X); always first;
  - ``{"op": "resample", "shape_before", "shape_after", "spacing_before",
    "spacing_after", "image": "linear", "label": "onehot-linear-argmax"}``
    (see :mod:`segline.preprocess.resample` for the grid convention);
  - ``{"op": "crop", "shape_before", "start", "stop"}`` (voxel ranges, zyx);
  - ``{"op": "pad", "shape_before", "before", "after"}`` (voxels added, zyx).

The forward functions (:func:`from_source`, :func:`resample`, :func:`crop`,
:func:`pad`, :func:`crop_to_bbox`) are pure: they return new arrays and a new meta.
:func:`to_source` undoes the list in reverse order and :func:`write_nifti_like` saves
the result with the source affine.

Example:
    >>> import numpy as np
    >>> lab = np.zeros((6, 5, 4), np.uint8); lab[2:4, 1:3, 1] = 1
    >>> img, zyx, meta = from_source([lab.astype(np.float32)], lab, np.eye(4),
    ...                              (1.0, 1.0, 2.0), case_id="c", channels=["CT"])
    >>> zyx.shape, meta["spacing"]
    ((4, 5, 6), [2.0, 1.0, 1.0])
    >>> img, zyx, meta = crop_to_bbox(img, zyx, meta, zyx > 0, margin=1)
    >>> zyx.shape
    (3, 4, 4)
    >>> bool((to_source(zyx, meta) == lab).all())
    True
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from segline import atomic
from segline.errors import InputError
from segline.preprocess import resample as rs

Meta = dict[str, Any]
AFFINE_ATOL_MM = 1e-4

# --------------------------------------------------------------------------- reading


@dataclass
class NiftiVolume:
    """One NIfTI file as read by :func:`read_nifti`.

    Attributes:
        data: voxel array (X, Y, Z) or, for a multi-channel image, (X, Y, Z, C).
        affine: 4x4 voxel-to-world matrix (mm).
        spacing_xyz: voxel size (x, y, z) in mm from the header's pixdim.
        path: the file.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing_xyz: tuple[float, float, float]
    path: Path


def _sig7(value: float) -> float:
    """A float32 header value as the decimal it was written from (7 significant digits)."""
    return float(f"{float(value):.7g}")


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Silence nibabel's header-fixing log lines (our own checks report problems)."""
    log = logging.getLogger("nibabel.global")
    before = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = before


def _raw_header(path: Path) -> Any:
    """The header exactly as stored (nibabel's loader silently fixes bad pixdim)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        size = int.from_bytes(head, "little") if len(head) == 4 else 0
        if size not in (348, 540):
            size = int.from_bytes(head, "big") if len(head) == 4 else 0
        if size == 348:
            return nib.Nifti1Header.from_fileobj(fh, check=False)
        if size == 540:
            return nib.Nifti2Header.from_fileobj(fh, check=False)
    raise InputError(path, "not a NIfTI file (bad header size)")


def read_nifti(path: str | os.PathLike[str], kind: str = "image", channels: int = 1) -> NiftiVolume:
    """Read and check one NIfTI volume; every problem is an :class:`InputError` on ``path``.

    Checks: the file is readable NIfTI; pixdim (x, y, z) strictly positive and the
    affine finite and invertible; the array is 3D, or 4D with a last axis of length
    ``channels`` when ``channels > 1``; no NaN/inf voxel; for labels, integer values.
    A 3D volume stored as (X, Y, Z, 1) is read as 3D (X, Y, Z) when one channel is
    expected; a 4D array with more than one volume stays an error then.

    Args:
        path: the ``.nii`` / ``.nii.gz`` file.
        kind: ``"image"`` (read as float32, scaling applied) or ``"label"`` (class
            indices, read as stored, always 3D).
        channels: number of modalities the image must carry.

    Returns:
        a :class:`NiftiVolume`; label data are an integer array.
    """
    path = Path(path)
    try:
        header = _raw_header(path)
    except (OSError, EOFError, ValueError) as err:
        raise InputError(path, f"cannot read NIfTI header: {err}") from err
    pixdim = [float(v) for v in header["pixdim"][1:4]]
    if not all(math.isfinite(v) and v > 0 for v in pixdim):
        shown = ", ".join(f"{v:g}" for v in pixdim)
        raise InputError(path, f"spacing (pixdim) must be strictly positive, got ({shown}) mm")
    try:
        with _quiet_nibabel():
            img = nib.load(path)
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"cannot read NIfTI: {err}") from err
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, "affine is not finite or not invertible")
    shape = tuple(int(n) for n in img.shape)
    want_4d = kind == "image" and channels > 1
    # (X, Y, Z, 1): a 3D volume stored with a singleton 4th axis (some converters
    # write every volume as 4D); read it as 3D, the voxels are the same.
    squeeze = not want_4d and len(shape) == 4 and shape[3] == 1
    if squeeze:
        shape = shape[:3]
    if want_4d:
        if len(shape) != 4 or shape[3] != channels:
            raise InputError(
                path, f"expected a 4D image (X, Y, Z, {channels}) for {channels} modalities, "
                f"got shape {shape}")
    elif len(shape) != 3:
        raise InputError(path, f"expected a 3D {kind}, got {len(shape)}D shape {shape}")
    try:
        if kind == "label":
            data = np.asanyarray(img.dataobj)
        else:
            data = img.get_fdata(dtype=np.float32)
    except (OSError, EOFError, ValueError, MemoryError) as err:
        raise InputError(path, f"cannot read voxel data: {err}") from err
    if squeeze:
        data = data.reshape(shape)
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputError(path, f"{bad} NaN/inf voxel(s)")
        if kind == "label":
            if not np.array_equal(data, np.round(data)):
                raise InputError(path, "label has non-integer values")
            data = data.astype(np.int64)
    elif kind == "label" and data.dtype.kind not in "iub":
        raise InputError(path, f"label has unsupported data type {data.dtype}")
    spacing = (_sig7(pixdim[0]), _sig7(pixdim[1]), _sig7(pixdim[2]))
    return NiftiVolume(data=data, affine=affine, spacing_xyz=spacing, path=path)


def check_same_grid(ref: NiftiVolume, other: NiftiVolume) -> None:
    """Raise :class:`InputError` on ``other`` unless its grid equals ``ref``'s.

    Spatial shapes must be equal and affines equal within 1e-4 mm.
    """
    if ref.data.shape[:3] != other.data.shape[:3]:
        raise InputError(
            other.path, f"shape {tuple(other.data.shape[:3])} does not match "
            f"{ref.path.name} shape {tuple(ref.data.shape[:3])}")
    if not np.allclose(ref.affine, other.affine, rtol=0.0, atol=AFFINE_ATOL_MM):
        diff = float(np.max(np.abs(ref.affine - other.affine)))
        raise InputError(
            other.path, f"affine differs from {ref.path.name} (max difference {diff:.4g} mm)")


# ----------------------------------------------------------------------- forward ops


def _perm_xyz_zyx() -> np.ndarray:
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0
    return perm


def _list(a: Any) -> list[Any]:
    return np.asarray(a).tolist()


def from_source(
    channels_xyz: Sequence[np.ndarray],
    label_xyz: np.ndarray | None,
    affine: np.ndarray,
    spacing_xyz: Sequence[float],
    *,
    case_id: str,
    channels: Sequence[str],
    sources: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, Meta]:
    """Stack channels and transpose NIfTI (X, Y, Z) to the stored (Z, Y, X) layout.

    Args:
        channels_xyz: one (X, Y, Z) array per channel (already normalised).
        label_xyz: class indices (X, Y, Z), or None for an unlabelled case.
        affine: the source voxel-to-world matrix (4x4, mm).
        spacing_xyz: the source voxel size (x, y, z) in mm.
        case_id: the case id.
        channels: channel names, one per array.
        sources: source file paths for the record (relative to the raw folder).

    Returns:
        image (C, Z, Y, X) float32, label (Z, Y, X) uint8 or None, and the meta.
    """
    shape_xyz = tuple(int(n) for n in channels_xyz[0].shape)
    zyx = shape_xyz[::-1]
    image = np.empty((len(channels_xyz), *zyx), dtype=np.float32)
    for c, chan in enumerate(channels_xyz):
        if chan.shape != shape_xyz:
            raise ValueError(f"channel {c} shape {chan.shape} != {shape_xyz}")
        image[c] = chan.T
    label = None if label_xyz is None else np.ascontiguousarray(label_xyz.T).astype(np.uint8)
    affine = np.asarray(affine, dtype=np.float64)
    meta: Meta = {
        "case_id": case_id,
        "channels": list(channels),
        "source": sources or {},
        "source_affine": _list(affine),
        "source_shape_xyz": list(shape_xyz),
        "source_spacing_xyz": [float(s) for s in spacing_xyz],
        "shape": list(zyx),
        "spacing": [float(s) for s in spacing_xyz][::-1],
        "affine": _list(affine @ _perm_xyz_zyx()),
        "transforms": [{"op": "to_zyx"}],
    }
    return image, label, meta


def _advance(meta: Meta, op: dict[str, Any], shape: Sequence[int], step: np.ndarray,
             spacing: Sequence[float] | None = None) -> Meta:
    """New meta with ``op`` appended, new shape/spacing, and affine composed with ``step``."""
    out = copy.deepcopy(meta)
    out["transforms"].append(op)
    out["shape"] = [int(n) for n in shape]
    if spacing is not None:
        out["spacing"] = [float(s) for s in spacing]
    out["affine"] = _list(np.asarray(meta["affine"], dtype=np.float64) @ step)
    return out


def _shift(offset: Sequence[float]) -> np.ndarray:
    step = np.eye(4)
    step[:3, 3] = offset
    return step


def resample(
    image: np.ndarray | None,
    label: np.ndarray | None,
    meta: Meta,
    shape_out: Sequence[int],
    antialias: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, Meta]:
    """Resample image (C, Z, Y, X) linearly and label (Z, Y, X) one-hot-linear to ``shape_out``.

    The physical extent is kept, so the spacing becomes ``spacing * before / after``.
    A no-op (same shape) returns the inputs and the meta unchanged.
    """
    before = [int(n) for n in meta["shape"]]
    after = [int(n) for n in shape_out]
    if before == after:
        return image, label, meta
    spacing = rs.spacing_after(before, after, meta["spacing"])
    new_image = None
    if image is not None:
        new_image = np.empty((image.shape[0], *after), dtype=np.float32)
        for c in range(image.shape[0]):
            new_image[c] = rs.resample_image(image[c], after, antialias=antialias)
    new_label = None if label is None else rs.resample_label(label, after)
    scales = np.array([b / a for b, a in zip(before, after, strict=True)])
    step = np.diag([*scales, 1.0])
    step[:3, 3] = 0.5 * scales - 0.5
    op = {
        "op": "resample", "shape_before": before, "shape_after": after,
        "spacing_before": [float(s) for s in meta["spacing"]], "spacing_after": list(spacing),
        "image": "linear", "label": "onehot-linear-argmax",
    }
    return new_image, new_label, _advance(meta, op, after, step, spacing)


def bounding_box(
    mask: np.ndarray, margin: int | Sequence[int] = 0
) -> list[tuple[int, int]] | None:
    """Voxel ranges ``[(start, stop), ...]`` (stop exclusive) of the non-zero part of ``mask``.

    Args:
        mask: (Z, Y, X) array, non-zero inside the region of interest.
        margin: voxels added on both sides (one int, or one per axis), clipped to
            the volume.

    Returns:
        one (start, stop) per axis, or None when ``mask`` is empty.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((4, 10, 10)); m[1, 2:5, 3] = 1
        >>> bounding_box(m, margin=(0, 1, 2))
        [(1, 2), (1, 6), (1, 6)]
    """
    margins = [int(margin)] * mask.ndim if np.isscalar(margin) else [int(m) for m in margin]
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(np.any(mask, axis=others))
        if hit.size == 0:
            return None
        start = max(0, int(hit[0]) - margins[axis])
        stop = min(mask.shape[axis], int(hit[-1]) + 1 + margins[axis])
        box.append((start, stop))
    return box


def margin_voxels(meta: Meta, margin_mm: float) -> list[int]:
    """A margin in mm as whole voxels per axis (rounded up) on the stored grid."""
    return [int(math.ceil(margin_mm / s - 1e-9)) for s in meta["spacing"]]


def crop(
    image: np.ndarray | None,
    label: np.ndarray | None,
    meta: Meta,
    box: Sequence[tuple[int, int]],
) -> tuple[np.ndarray | None, np.ndarray | None, Meta]:
    """Keep the voxel ranges ``box`` ((start, stop) per axis, Z, Y, X) of image and label."""
    before = [int(n) for n in meta["shape"]]
    start = [int(b[0]) for b in box]
    stop = [int(b[1]) for b in box]
    if any(not 0 <= a < b <= n for a, b, n in zip(start, stop, before, strict=True)):
        raise ValueError(f"crop box {list(box)} outside shape {before}")
    sl = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    new_image = None if image is None else np.ascontiguousarray(image[(slice(None), *sl)])
    new_label = None if label is None else np.ascontiguousarray(label[sl])
    after = [b - a for a, b in zip(start, stop, strict=True)]
    op = {"op": "crop", "shape_before": before, "start": start, "stop": stop}
    return new_image, new_label, _advance(meta, op, after, _shift(start))


def crop_to_bbox(
    image: np.ndarray | None,
    label: np.ndarray | None,
    meta: Meta,
    mask: np.ndarray,
    margin: int | Sequence[int] = 0,
) -> tuple[np.ndarray | None, np.ndarray | None, Meta]:
    """Crop to the bounding box of ``mask`` (e.g. the body or the labelled region) plus a margin.

    ``margin`` is in voxels (use :func:`margin_voxels` for mm). An empty mask keeps
    the whole volume (the crop is still recorded, covering everything).
    """
    box = bounding_box(mask, margin)
    if box is None:
        box = [(0, int(n)) for n in meta["shape"]]
    return crop(image, label, meta, box)


def pad(
    image: np.ndarray | None,
    label: np.ndarray | None,
    meta: Meta,
    before: Sequence[int],
    after: Sequence[int],
    image_fill: float = 0.0,
) -> tuple[np.ndarray | None, np.ndarray | None, Meta]:
    """Add ``before``/``after`` voxels per axis (Z, Y, X); the label is padded with 0.

    The image is padded with ``image_fill`` (0.0: the bottom of the CT window).
    """
    shape = [int(n) for n in meta["shape"]]
    widths = [(int(b), int(a)) for b, a in zip(before, after, strict=True)]
    if any(b < 0 or a < 0 for b, a in widths):
        raise ValueError(f"pad widths must be >= 0, got {widths}")
    new_image = None
    if image is not None:
        new_image = np.pad(image, [(0, 0), *widths], constant_values=image_fill)
    new_label = None if label is None else np.pad(label, widths, constant_values=0)
    new_shape = [n + b + a for n, (b, a) in zip(shape, widths, strict=True)]
    op = {"op": "pad", "shape_before": shape, "before": [b for b, _ in widths],
          "after": [a for _, a in widths]}
    return new_image, new_label, _advance(meta, op, new_shape, _shift([-b for b, _ in widths]))


# ----------------------------------------------------------------------- inverse ops


def replay(volume: np.ndarray, op: dict[str, Any], fill: float) -> np.ndarray:
    """Apply one recorded op to a single volume on its way from the source grid to the
    stored one (the inverse of :func:`_undo`): e.g. a source image's intensities that
    the stored image no longer holds (the window clipped them), brought onto the
    stored grid. A pad adds ``fill``; a resample is the image resampling of slicing."""
    kind = op["op"]
    if kind == "to_zyx":
        return np.ascontiguousarray(volume.T)
    if kind == "crop":
        sl = tuple(slice(a, b) for a, b in zip(op["start"], op["stop"], strict=True))
        return np.ascontiguousarray(volume[sl])
    if kind == "pad":
        widths = list(zip(op["before"], op["after"], strict=True))
        return np.pad(volume, widths, constant_values=fill)
    if kind == "resample":
        return rs.resample_image(volume, op["shape_after"], antialias=True)
    raise ValueError(f"unknown transform {kind!r}")


def _undo(volume: np.ndarray, op: dict[str, Any], fill: float) -> np.ndarray:
    """Undo one op on a single volume (scores or, without resampling, labels)."""
    kind = op["op"]
    if kind == "to_zyx":
        return np.ascontiguousarray(volume.T)
    if kind == "resample":
        return rs.resample_scores(volume, op["shape_before"])
    if kind == "crop":
        out = np.full(op["shape_before"], fill, dtype=volume.dtype)
        out[tuple(slice(a, b) for a, b in zip(op["start"], op["stop"], strict=True))] = volume
        return out
    if kind == "pad":
        sl = tuple(slice(b, b + n) for b, n in zip(op["before"], op["shape_before"], strict=True))
        return np.ascontiguousarray(volume[sl])
    raise ValueError(f"unknown transform {kind!r}")


def to_source(prediction: np.ndarray, meta: Meta) -> np.ndarray:
    """Map a prediction on the stored grid back to the source NIfTI grid (X, Y, Z).

    Args:
        prediction: class indices (Z, Y, X), or per-class scores/probabilities
            (K, Z, Y, X) whose argmax is taken in source space.
        meta: the case's meta (its ``transforms`` are undone in reverse order).

    Returns:
        uint8 class indices (X, Y, Z) with the source shape. Without a resample op
        this is exact; with one, each class is resampled linearly and the argmax
        taken (as the forward label resampling). Regions removed by a crop come
        back as background (0).
    """
    shape = [int(n) for n in meta["shape"]]
    ops = list(reversed(meta["transforms"]))
    if prediction.ndim == 3:
        if list(prediction.shape) != shape:
            raise ValueError(f"prediction shape {prediction.shape} != stored shape {shape}")
        if not any(op["op"] == "resample" for op in ops):
            out = prediction.astype(np.uint8)
            for op in ops:
                out = _undo(out, op, 0)
            return out
        classes = sorted({0, *np.unique(prediction).tolist()})
        scores = ((prediction == k).astype(np.float32) for k in classes)
    elif prediction.ndim == 4:
        if list(prediction.shape[1:]) != shape:
            raise ValueError(f"prediction shape {prediction.shape[1:]} != stored shape {shape}")
        classes = list(range(prediction.shape[0]))
        scores = (prediction[k].astype(np.float32) for k in classes)
    else:
        raise ValueError(f"prediction must be (Z, Y, X) or (K, Z, Y, X), got {prediction.shape}")
    best: np.ndarray | None = None
    arg: np.ndarray | None = None
    for k, score in zip(classes, scores, strict=True):
        vol = score
        for op in ops:
            vol = _undo(vol, op, 1.0 if k == 0 else 0.0)
        if best is None or arg is None:
            best, arg = vol, np.full(vol.shape, k, dtype=np.uint8)
            continue
        win = vol > best
        best[win] = vol[win]
        arg[win] = k
    if arg is None:  # unreachable: class 0 is always scored
        raise ValueError("no class to map back")
    return arg


def scores_to_source(scores: np.ndarray, meta: Meta, fill: float = 0.0) -> np.ndarray:
    """Map one per-voxel score volume (Z, Y, X), e.g. a class probability, back to the
    source grid (X, Y, Z), float32: resampling undone linearly, cropped-away voxels set
    to ``fill`` (1.0 for the background's probability, 0.0 for the other classes)."""
    if list(scores.shape) != [int(n) for n in meta["shape"]]:
        raise ValueError(f"scores shape {scores.shape} != stored shape {meta['shape']}")
    vol = scores.astype(np.float32, copy=False)
    for op in reversed(meta["transforms"]):
        vol = _undo(vol, op, fill)
    return vol


#: gzip level of the NIfTI files segline writes (see :func:`write_nifti_like`)
NIFTI_GZIP_LEVEL = 1


def write_nifti_like(array_xyz: np.ndarray, meta: Meta, path: str | os.PathLike[str]) -> Path:
    """Write ``array_xyz`` (source shape) as NIfTI with the source affine, atomically.

    Integer arrays are stored as uint8 (labels), others as float32. A 4D array
    (X, Y, Z, K) (e.g. probabilities, classes last) is written as a 4D image on the
    same grid. A ``.gz`` name is gzip-compressed with a zero timestamp so equal
    content gives equal bytes, at level 1 (nibabel's own default): level 9, gzip's
    default, spends minutes on a speckled 512² label volume (an early epoch's
    prediction; measured by bench/bench_scale.py) for a file a third smaller.
    """
    path = Path(path)
    shape = [int(n) for n in meta["source_shape_xyz"]]
    if list(array_xyz.shape[:3]) != shape or array_xyz.ndim not in (3, 4):
        raise ValueError(f"array shape {array_xyz.shape} != source shape {shape}")
    dtype = np.uint8 if array_xyz.dtype.kind in "iub" else np.float32
    affine = np.asarray(meta["source_affine"], dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(array_xyz, dtype=dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    data = img.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=NIFTI_GZIP_LEVEL, mtime=0)
    atomic.write_bytes(path, data)
    return path
