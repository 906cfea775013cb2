"""Signed distance maps in millimetres, for the boundary loss (Kervadec et al.).

Convention (the one every stage relies on; float32, mm, spacing given per axis):

* a voxel **outside** the mask gets ``+d``, the Euclidean distance (mm) from its
  centre to the centre of the nearest **foreground** voxel;
* a voxel **inside** the mask gets ``-d``, minus the distance (mm) from its centre to
  the centre of the nearest **background** voxel.

So the zero level set lies between voxel centres and a boundary voxel is one step
away from it on either side: with spacing (z, y, x) = (5, 0.8, 0.8) mm, a background
voxel next to the mask along x reads +0.8, an inside voxel whose nearest background
voxel is its x neighbour reads -0.8 (and -5.0 if that neighbour is along z and no
in-plane one is closer). The map is antisymmetric: ``signed_distance(~m) ==
-signed_distance(m)`` exactly, which :func:`one_hot_signed_distance` uses for K = 2.

Kervadec et al.'s reference code (``one_hot2dist``) uses the same outside values but
subtracts one (in the units of its ``resolution``, i.e. 1 mm, not one voxel) from the
inside distance: inside it reads ``-(d - 1)``, exactly 1 mm above ours, which adds
1 mm x the mean inside probability to the loss. At 1 mm spacing its inside boundary
voxels read 0; at 0.8 mm they read ``-(0.8 - 1) = +0.2``, the wrong sign, which ours
avoids at any spacing. It also leaves an absent class at 0 everywhere (no gradient;
``absent="zero"`` here, below) and allocates the result with the label's dtype unless
told otherwise: with an integer label the maps become integers, distances truncated
to whole millimetres, so at sub-millimetre spacing the voxels near a boundary all
read 0 and the loss loses its signal there. Ours are always float32
(``tests/test_distmaps.py`` checks dtype and values against scipy).

**Absent or full masks.** A distance to a region that does not exist is undefined
(``edt`` returns inf, scipy distances to a phantom point off the array). We use a
finite constant instead: ``+D`` everywhere when the mask is empty (the class is
absent from the slice or volume) and ``-D`` when it fills everything, where
``D = sqrt(sum((n_i * s_i)**2))`` is the diagonal of the field of view in mm (n_i
voxels of s_i mm per axis). No real distance between voxel centres can reach D (the
largest is the diagonal between corner centres, ``sqrt(sum(((n_i - 1) * s_i)**2)) <
D``), so an absent class is "farther than anything": the boundary loss, the mean of
``p_k * phi_k``, then penalises every bit of probability put on an absent class (and
rewards it on a class filling the image) instead of ignoring it, and never sees inf
or NaN. This is ``absent="diagonal"``, this module's default (make ``ABSENT=diagonal``).

``absent="zero"`` (make's default, ``ABSENT=zero``) is the reference code's convention: an
absent class reads 0 everywhere, so the boundary loss gets no gradient from it on
that slice (one-hot: another class's map supervises those pixels), and neither do the
Hausdorff-DT losses (``|0|``; :mod:`segline.losses.hausdorff` applies the same rule to
an empty prediction). A class filling the slice or volume keeps ``-D`` under both (the
reference's value there is an artefact of scipy's transform of an array with no
background). The choice is recorded in ``distmaps.json`` (``absent``). On sparse
lesions the diagonal's penalty on every lesion-free slice can collapse a network to
empty predictions, which the zero convention does not (bench/RESULTS.md,
"Absent-class conventions"); make therefore defaults to ``zero``.

Backends: ``"edt"`` (the ``edt`` package, multi-threaded with ``parallel``) and
``"scipy"`` (``scipy.ndimage.distance_transform_edt``, single-threaded). They agree
to float32 rounding (< 1e-3 mm at the sizes of CT volumes). If ``edt`` cannot be
imported, ``"edt"`` falls back to scipy with a warning. edt with ``parallel=1`` does
both signs in one multi-label pass; otherwise two transforms run, the inside one on
the object's bounding box only (timings: ``bench/RESULTS.md``).

Example:
    >>> import numpy as np
    >>> m = np.zeros((1, 5), bool); m[0, 1:3] = True
    >>> signed_distance(m, (1.0, 0.5)).tolist()
    [[0.5, -0.5, -0.5, 0.5, 1.0]]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from segline import atomic
from segline.casestore import DIST2D, DIST3D, CaseStore
from segline.cli import HelpFormatter, cli_of, positive_int, prog
from segline.errors import InputError
from segline.parallel import map_cases

Backend = Literal["edt", "scipy"]
BACKENDS: tuple[str, ...] = ("edt", "scipy")
Absent = Literal["diagonal", "zero"]
ABSENTS: tuple[str, ...] = ("diagonal", "zero")
"""The value of an absent class's map: ``+D`` (the default) or 0 (the reference code's)."""

#: Written to ``distmaps.json`` so that readers of a distance store know what it holds.
CONVENTION = {
    "units": "mm",
    "dtype": "float32",
    "layout": "(K, Z, Y, X): one map per class (class index = label value), Z first",
    "sign": "negative inside the class, positive outside",
    "outside": "+ distance from the voxel centre to the nearest voxel centre of the class",
    "inside": "- distance from the voxel centre to the nearest voxel centre not in the class",
    "boundary": "boundary voxels are one step (their spacing in mm) from zero, not 0; "
    "Kervadec et al.'s reference subtracts 1 inside instead",
    "empty_class": "+D everywhere, D = diagonal of the slice (2d) or volume (3d) field of "
    "view in mm, sqrt(sum((n_i * spacing_i)**2)): larger than any real distance, finite",
    "full_class": "-D everywhere (the class fills the slice or volume)",
    "dist2d": "each axial slice on its own, in-plane spacing (y, x); z neighbours ignored",
    "dist3d": "the whole volume with spacing (z, y, x)",
}
EMPTY_CLASS_ZERO = (
    "0 everywhere (absent=zero, as Kervadec et al.'s reference code): no gradient from "
    "an absent class"
)


def convention(absent: str = "diagonal") -> dict[str, str]:
    """:data:`CONVENTION` with the ``empty_class`` entry of ``absent``."""
    _check_absent(absent)
    return CONVENTION if absent == "diagonal" else {**CONVENTION, "empty_class": EMPTY_CLASS_ZERO}


def _check_absent(absent: str) -> None:
    """ValueError unless ``absent`` is one of :data:`ABSENTS`."""
    if absent not in ABSENTS:
        raise ValueError(f"absent must be one of {ABSENTS}, got {absent!r}")


def store_absent(dist_root: str | Path | None) -> Absent:
    """The ``absent`` convention of a distance-map store (``distmaps.json``).

    A store written before the choice existed, or without ``distmaps.json``, holds
    ``+D`` maps: ``"diagonal"``.

    Raises:
        InputError: ``distmaps.json`` unreadable or its ``absent`` unknown.
    """
    if dist_root is None:
        return "diagonal"
    path = Path(dist_root) / STORE_JSON
    if not path.is_file():
        return "diagonal"
    try:
        value = json.loads(path.read_text()).get("absent", "diagonal")
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(path, f"unreadable: {err}") from None
    if value not in ABSENTS:
        raise InputError(path, f"absent must be one of {', '.join(ABSENTS)}, got {value!r}")
    return "zero" if value == "zero" else "diagonal"


def diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Diagonal of the field of view in mm: the constant used for absent/full classes.

    Args:
        shape: voxels per axis.
        spacing: mm per voxel along the same axes.

    Returns:
        ``sqrt(sum((n_i * s_i)**2))`` in mm.

    Example:
        >>> diagonal_mm((3, 4), (1.0, 1.0))
        5.0
    """
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """Spacing as a tuple of ``ndim`` positive finite floats (mm), else ValueError."""
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim:
        raise ValueError(f"spacing {sp} has {len(sp)} values for a {ndim}-D array")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be positive and finite (mm), got {sp}")
    return sp


@functools.cache
def _edt_module():
    """The ``edt`` module, or None (with one warning) when it cannot be imported."""
    try:
        import edt
    except ImportError as err:  # pragma: no cover - edt is a declared dependency
        warnings.warn(f"edt unavailable ({err}); using scipy distance transforms", stacklevel=3)
        return None
    return edt


@functools.cache
def _edt_reverses_axes(ndim: int) -> bool:
    """Whether ``edt`` wants ``anisotropy`` in reversed (x, y, z) order for C arrays.

    edt's docstring says (x, y, z) while edt 3.x takes numpy axis order for C-ordered
    input; rather than trust either, probe once: one background voxel at the origin,
    a distinct spacing per axis, and read which spacing the voxel one step along
    axis 0 reports.
    """
    edt = _edt_module()
    probe = np.ones((2,) * ndim, dtype=np.uint8)
    probe[(0,) * ndim] = 0
    aniso = (2.0, 3.0, 5.0)[:ndim]
    step0 = (1,) + (0,) * (ndim - 1)
    got = float(edt.edt(probe, anisotropy=aniso, black_border=False)[step0])
    if got == aniso[0]:
        return False
    if got == aniso[-1]:
        return True
    raise RuntimeError(f"cannot tell edt's anisotropy axis order (probe gave {got})")


def _inner_distance(
    region: np.ndarray, spacing: tuple[float, ...], backend: str, parallel: int
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Distance (mm) from each voxel of ``region`` to the nearest voxel outside it.

    Only the bounding box of ``region`` grown by one voxel (clipped to the array) is
    transformed: for a voxel inside the box, clamping any outside voxel onto the box
    gives a voxel of the one-voxel ring, which is outside ``region`` and no farther,
    so the crop is exact and saves most of the work for small objects.

    Args:
        region: boolean array with at least one False voxel.
        spacing: mm per voxel, numpy axis order.
        backend: "edt" or "scipy".
        parallel: threads for edt.

    Returns:
        ``(box, dist)``: the crop as slices and float32 distances on it (0 outside
        ``region``).
    """
    box = []
    for axis in range(region.ndim):
        other = tuple(a for a in range(region.ndim) if a != axis)
        hits = np.flatnonzero(region.any(axis=other))
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, region.shape[axis])))
    box_t = tuple(box)
    crop = np.ascontiguousarray(region[box_t])
    edt = _edt_module() if backend == "edt" else None
    if edt is not None:
        aniso = spacing[::-1] if _edt_reverses_axes(region.ndim) else spacing
        dist = edt.edt(crop.view(np.uint8), anisotropy=aniso, black_border=False, parallel=parallel)
        return box_t, np.asarray(dist, dtype=np.float32)
    dist = ndimage.distance_transform_edt(crop, sampling=spacing)
    return box_t, dist.astype(np.float32)


def signed_distance(
    mask: np.ndarray,
    spacing: Sequence[float],
    backend: Backend = "edt",
    parallel: int = 1,
    absent: Absent = "diagonal",
) -> np.ndarray:
    """Signed distance map of a binary 2D or 3D mask, in mm (module docstring convention).

    Args:
        mask: 2D or 3D array; nonzero = inside.
        spacing: mm per voxel in the array's axis order, e.g. (z, y, x).
        backend: "edt" (default, threaded) or "scipy".
        parallel: threads for the edt backend (ignored by scipy).
        absent: an empty mask reads ``+D`` (``"diagonal"``) or 0 (``"zero"``).

    Returns:
        float32 array of ``mask.shape``: negative inside, positive outside, ``+D`` (or
        0, ``absent="zero"``) if the mask is empty and ``-D`` if it is full
        (D = :func:`diagonal_mm`).

    Example:
        >>> m = np.zeros((3, 1, 1), bool); m[0] = True
        >>> signed_distance(m, (5.0, 0.8, 0.8)).ravel().tolist()
        [-5.0, 5.0, 10.0]
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _check_absent(absent)
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be 2D or 3D, got shape {mask.shape}")
    sp = _check_spacing(spacing, mask.ndim)
    inside = mask.astype(bool, copy=False)
    n_in = int(np.count_nonzero(inside))
    if n_in == 0 and absent == "zero":
        return np.zeros(inside.shape, dtype=np.float32)
    if n_in == 0 or n_in == inside.size:
        value = diagonal_mm(inside.shape, sp) * (1.0 if n_in == 0 else -1.0)
        return np.full(inside.shape, value, dtype=np.float32)
    edt = _edt_module() if backend == "edt" else None
    if edt is not None and parallel <= 1:
        # One pass for both signs: edt's multi-label mode gives every voxel the distance
        # to the nearest voxel of the other label (labels 1 = outside, 2 = inside).
        # Measured ~10 % faster than two passes single-threaded, but it does not scale
        # with threads, so parallel > 1 takes the two-pass path below.
        two = np.ascontiguousarray(inside).view(np.uint8) + np.uint8(1)
        aniso = sp[::-1] if _edt_reverses_axes(inside.ndim) else sp
        out = np.asarray(edt.edt(two, anisotropy=aniso, black_border=False), dtype=np.float32)
        np.negative(out, out=out, where=inside)
        return out
    outside = ~inside
    box, dist = _inner_distance(outside, sp, backend, parallel)
    if dist.shape == inside.shape:
        out = dist
    else:
        out = np.zeros(inside.shape, dtype=np.float32)
        out[box] = dist
    box, dist = _inner_distance(inside, sp, backend, parallel)
    out[box] -= dist
    return out


def _check_label(label: np.ndarray, n_classes: int) -> None:
    """ValueError unless ``label`` holds integer class indices in ``[0, n_classes)``."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if label.dtype.kind not in "iub":
        raise ValueError(f"label must hold integer class indices, got dtype {label.dtype}")
    if label.size and (int(label.min()) < 0 or int(label.max()) >= n_classes):
        raise ValueError(
            f"label values span {int(label.min())}..{int(label.max())}, outside 0..{n_classes - 1}"
        )


def one_hot_signed_distance(
    label: np.ndarray,
    n_classes: int,
    spacing: Sequence[float],
    backend: Backend = "edt",
    parallel: int = 1,
    absent: Absent = "diagonal",
) -> np.ndarray:
    """Signed distance map of every class of a label map: shape (K, *label.shape).

    Class k's map is :func:`signed_distance` of ``label == k``. With K = 2 the
    background map is exactly minus the foreground map, so only one is computed
    (both, when ``absent="zero"`` and one class is absent: 0 and ``-D``).

    Args:
        label: 2D or 3D integer class indices in ``[0, n_classes)``.
        n_classes: K, including the background class 0.
        spacing: mm per voxel in the label's axis order.
        backend: "edt" or "scipy".
        parallel: threads for edt.
        absent: an absent class reads ``+D`` (``"diagonal"``) or 0 (``"zero"``).

    Returns:
        float32 (K, ...) in mm.

    Example:
        >>> one_hot_signed_distance(np.array([[0, 1, 1]]), 2, (1.0, 1.0)).tolist()
        [[[-1.0, 1.0, 2.0]], [[1.0, -1.0, -2.0]]]
    """
    label = np.asarray(label)
    _check_label(label, n_classes)
    _check_absent(absent)
    out = np.empty((n_classes, *label.shape), dtype=np.float32)
    if n_classes == 2:
        fg = label == 1
        out[1] = signed_distance(fg, spacing, backend, parallel, absent)
        if absent == "diagonal" or 0 < int(np.count_nonzero(fg)) < fg.size:
            np.negative(out[1], out=out[0])
            return out
    for k in range(n_classes):
        out[k] = signed_distance(label == k, spacing, backend, parallel, absent)
    return out


def slicewise_signed_distance(
    label_zyx: np.ndarray,
    n_classes: int,
    spacing_yx: Sequence[float],
    backend: Backend = "edt",
    parallel: int = 1,
    absent: Absent = "diagonal",
) -> np.ndarray:
    """Per-axial-slice signed distance maps (for 2D training): shape (K, Z, Y, X).

    Each slice is treated as its own image with in-plane spacing; neighbouring slices
    are ignored, and a class absent from (filling) a slice gets ``+D`` (``-D``) with
    D the slice diagonal ``sqrt((Y*sy)**2 + (X*sx)**2)`` mm; absent: 0 with
    ``absent="zero"``.

    Args:
        label_zyx: (Z, Y, X) integer class indices.
        n_classes: K.
        spacing_yx: in-plane spacing (y, x) in mm.
        backend: "edt" or "scipy".
        parallel: threads per slice for edt (no gain measured on 512x512 slices, see
            bench/RESULTS.md; parallelise over cases instead).
        absent: an absent class reads ``+D`` (``"diagonal"``) or 0 (``"zero"``).

    Returns:
        float32 (K, Z, Y, X) in mm.
    """
    label_zyx = np.asarray(label_zyx)
    if label_zyx.ndim != 3:
        raise ValueError(f"label must be (Z, Y, X), got shape {label_zyx.shape}")
    _check_label(label_zyx, n_classes)
    sp = _check_spacing(spacing_yx, 2)
    out = np.empty((n_classes, *label_zyx.shape), dtype=np.float32)
    for z in range(label_zyx.shape[0]):
        out[:, z] = one_hot_signed_distance(
            label_zyx[z], n_classes, sp, backend, parallel, absent
        )
    return out


def volume_signed_distance(
    label_zyx: np.ndarray,
    n_classes: int,
    spacing_zyx: Sequence[float],
    backend: Backend = "edt",
    parallel: int = 1,
    absent: Absent = "diagonal",
) -> np.ndarray:
    """Whole-volume signed distance maps (for 3D training): shape (K, Z, Y, X).

    Args:
        label_zyx: (Z, Y, X) integer class indices.
        n_classes: K.
        spacing_zyx: spacing (z, y, x) in mm.
        backend: "edt" or "scipy".
        parallel: threads for edt.
        absent: an absent class reads ``+D`` (``"diagonal"``) or 0 (``"zero"``).

    Returns:
        float32 (K, Z, Y, X) in mm; an absent (full) class is ``+D`` (``-D``) with D
        the volume diagonal (absent: 0 with ``absent="zero"``).
    """
    label_zyx = np.asarray(label_zyx)
    if label_zyx.ndim != 3:
        raise ValueError(f"label must be (Z, Y, X), got shape {label_zyx.shape}")
    return one_hot_signed_distance(label_zyx, n_classes, spacing_zyx, backend, parallel, absent)


KINDS: tuple[str, ...] = ("2d", "3d")
STORE_JSON = "distmaps.json"


def _case_spacing(store: CaseStore, case_id: str) -> tuple[float, ...]:
    """The case's (z, y, x) spacing in mm from meta.json, or InputError."""
    try:
        return _check_spacing(store.meta(case_id)["spacing"], 3)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(store.root / case_id / "meta.json", f"no usable spacing: {err}") from None


def _write_case(
    cases: str,
    case_id: str,
    out: str,
    kinds: tuple[str, ...],
    backend: Backend,
    parallel: int,
    merge_foreground: bool = False,
    absent: Absent = "diagonal",
) -> dict[str, Any]:
    """Compute and write one case's maps below ``out``; its entry for ``distmaps.json``.

    ``merge_foreground``: the maps of (background, union of every foreground class),
    K = 2, instead of one per class. ``absent``: an absent class's value (+D or 0).
    """
    store = CaseStore(cases)
    sp = _case_spacing(store, case_id)
    label_path = store.root / case_id / "label.npy"
    try:
        label = np.asarray(store.label(case_id, mmap=False))
    except (OSError, ValueError) as err:
        raise InputError(label_path, f"unreadable label: {err}") from None
    k = store.n_classes
    if label.ndim != 3:
        raise InputError(label_path, f"label must be (Z, Y, X), got shape {label.shape}")
    try:
        _check_label(label, k)
    except ValueError as err:
        raise InputError(label_path, f"{err} (dataset.json declares {k} classes)") from None
    if merge_foreground:
        label, k = (label > 0).astype(np.uint8), 2
    folder = Path(out) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    if "2d" in kinds:
        maps = slicewise_signed_distance(label, k, sp[1:], backend, parallel, absent)
        atomic.save_npy(folder / DIST2D, maps)
    if "3d" in kinds:
        maps = volume_signed_distance(label, k, sp, backend, parallel, absent)
        atomic.save_npy(folder / DIST3D, maps)
    return {
        "case_id": case_id,
        "shape_zyx": list(label.shape),
        "spacing_zyx_mm": list(sp),
        "D2d_mm": diagonal_mm(label.shape[1:], sp[1:]),
        "D3d_mm": diagonal_mm(label.shape, sp),
    }


def write_dist_store(
    cases: str | Path,
    out: str | Path,
    kinds: Sequence[str] = KINDS,
    jobs: int = 1,
    backend: Backend = "edt",
    parallel: int = 1,
    merge_foreground: bool = False,
    absent: Absent = "diagonal",
) -> dict[str, Any]:
    """Write the distance-map store ``out`` for every labelled case of ``cases``.

    Layout (see :mod:`segline.casestore`): ``out/<case_id>/dist2d.npy`` and/or
    ``dist3d.npy`` (float32 (K, Z, Y, X), mm) plus ``out/distmaps.json`` (the
    convention, parameters and per-case geometry; no timings, so reruns give the same
    bytes). The folder appears atomically; on any error the old one is untouched.

    Args:
        cases: the case store folder (``data/<ds>/cases``).
        out: the folder to produce (``data/<ds>/dist``).
        kinds: any of "2d" (per axial slice) and "3d" (whole volume).
        jobs: worker processes over cases (1 = in this process).
        backend: "edt" or "scipy".
        parallel: edt threads per transform.
        merge_foreground: K = 2 maps per case, background and the union of every
            foreground class (channel 1 = signed distance to all of them merged), for
            data sets with many classes (vertebrae: one class per vertebra would make
            K maps of the whole volume per case); ``distmaps.json`` then has
            ``merge_foreground: true``, ``n_classes`` 2 and ``source_n_classes``.
        absent: an absent class's map, ``"diagonal"`` (``+D``) or ``"zero"`` (0, the
            reference code's); ``distmaps.json`` records it (``absent``, and the
            convention's ``empty_class``).

    Returns:
        The contents written to ``distmaps.json``.

    Raises:
        InputError: no case store, a case without usable spacing or label, none labelled.
    """
    kinds_t = tuple(k for k in KINDS if k in kinds)
    if not kinds_t or set(kinds) - set(KINDS):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {tuple(kinds)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _check_absent(absent)
    store = CaseStore(cases)
    try:
        n_classes = store.n_classes
        class_names = {str(i): str(n) for i, n in store.dataset["labels"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(store.root / "dataset.json", f"no usable 'labels': {err}") from None
    all_ids = store.case_ids()
    for case_id in all_ids:
        if not (store.root / case_id).is_dir():
            raise InputError(store.root / case_id, "listed in split.json but missing")
    labelled = [c for c in all_ids if store.has_label(c)]
    if not labelled:
        raise InputError(store.root, "no labelled case to compute distance maps for")
    used: Backend = "edt" if backend == "edt" and _edt_module() is not None else "scipy"
    with atomic.atomic_dir(out) as tmp:
        args = [
            (str(store.root), c, str(tmp), kinds_t, used, parallel, merge_foreground, absent)
            for c in labelled
        ]
        entries = map_cases(_write_case, args, jobs)
        merged = {"0": class_names.get("0", "background"), "1": "foreground (all classes merged)"}
        info: dict[str, Any] = {
            "convention": convention(absent),
            "absent": absent,
            "kinds": list(kinds_t),
            "backend": used,
            "parallel": parallel,
            "n_classes": 2 if merge_foreground else n_classes,
            "classes": merged if merge_foreground else class_names,
            "cases": entries,  # a list: natural order survives
            "skipped_unlabelled": [c for c in all_ids if not store.has_label(c)],
        }
        if merge_foreground:
            info["merge_foreground"] = True
            info["source_n_classes"] = n_classes
        atomic.write_json(tmp / STORE_JSON, info)
    return info


# ------------------------------------------------------------------ command line
# ``preprocess/distmaps.py`` and the ``segline-distmaps`` console script.


def _kinds(text: str) -> tuple[str, ...]:
    """Parse ``--kinds`` ("2d", "3d" or "2d,3d")."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds or set(kinds) - set(KINDS):
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``preprocess/distmaps.py`` / ``segline-distmaps``."""
    p = argparse.ArgumentParser(
        prog=prog("distmaps.py"),
        description="Signed distance maps in mm (negative inside, positive outside; "
        "absent class = +diagonal, or 0 with --absent zero) for every labelled case of a "
        "case store.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--cases", required=True, help="case store folder (data/<ds>/cases)")
    p.add_argument("--out", required=True, help="distance-map folder to write (data/<ds>/dist)")
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes over cases")
    p.add_argument(
        "--kinds",
        type=_kinds,
        default=None,
        help="2d, 3d or 2d,3d (unset: 2d,3d; 3d with --merge-foreground)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="edt", help="distance transform")
    p.add_argument("--threads", type=positive_int, default=1, help="edt threads per transform")
    p.add_argument(
        "--absent",
        choices=ABSENTS,
        default="diagonal",
        help="an absent class's map: +diagonal of the field of view (mm), or zero "
        "everywhere (the reference code's; no gradient from it)",
    )
    p.add_argument(
        "--merge-foreground",
        action="store_true",
        help="K=2 maps: background and every foreground class merged (many-class data "
        "sets, e.g. vertebrae); whole-volume (3d) maps only",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Write the distance-map store and print one summary line."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    if args.kinds is None:
        args.kinds = ("3d",) if args.merge_foreground else KINDS
    if args.merge_foreground and "2d" in args.kinds:
        raise InputError(
            "--merge-foreground", "writes whole-volume (3d) maps only; drop 2d from --kinds"
        )
    info = write_dist_store(
        args.cases,
        args.out,
        args.kinds,
        args.jobs,
        args.backend,
        args.threads,
        merge_foreground=args.merge_foreground,
        absent=args.absent,
    )
    skipped = len(info["skipped_unlabelled"])
    print(
        f"distmaps: {len(info['cases'])} cases ({','.join(info['kinds'])}, "
        f"K={info['n_classes']}, {info['backend']}"
        + (f", absent class {args.absent}" if args.absent != "diagonal" else "")
        + (f", {skipped} unlabelled skipped" if skipped else "")
        + f") -> {args.out} in {time.perf_counter() - start:.1f} s",
        file=sys.stdout,
    )
    return 0


cli = cli_of(main)
