"""Maximum intensity projections (MIP), argmax depths and projected 2D labels.

The weak supervision of Guo et al. (IEEE TMI 2024) is a 2D annotation drawn on the
MIP of a 3D image: each pixel of the MIP is a *ray* through the volume, whose value is
its brightest voxel. This module computes, per case of a case store (image (C, Z, Y,
X) float32, label (Z, Y, X) uint8):

- ``mip.npy``: float32 2D, the maximum of channel 0 along ``axis``;
- ``depth.npy``: int16 2D, the index along ``axis`` of that maximum (the voxel the
  annotator effectively labels). **Tie rule: the first (lowest) index** among equal
  maxima (numpy's ``argmax``), so the depth is well defined on flat, clipped regions
  (a CT window clips bright vessels to 1.0);
- **occluders** (optional, :mod:`segline.experiments.vessels.occluders`): voxels
  brighter than a threshold in HU (bone), grown by a margin, are removed before the
  max (the reference sets them to the volume's minimum): ``mip`` and ``depth`` then
  show each ray's brightest *non-occluder* voxel. A ray made only of occluders gets
  the volume's minimum and depth 0 (what "set to the minimum" gives with the tie
  rule); ``mip.json`` counts them;
- ``mip_label.npy``: uint8 2D, the maximum of the 3D label along ``axis``. It stands
  for the 2D annotation a person would draw on the MIP (with occluder removal: on
  the *visible* MIP, the one without bone); only the ``full`` method and the
  evaluation ever see the 3D labels. (For a binary label this is "the ray meets a
  vessel"; with several classes the highest index wins, which is why the vessel
  pipeline slices with ``--label-map 2:0``.)

``axis`` indexes the stored (Z, Y, X) arrays: 0 = z (the default: axial MIP, a (Y, X)
image), 1 = y (coronal, (Z, X)), 2 = x (sagittal, (Z, Y)). The 2D arrays keep the two
other axes in their stored order, and their spacing (mm) is the volume's spacing
without ``axis``.

The store (``data/<ds>/mip``, written atomically)::

    <out>/mip.json              axis, its name, conventions, occluder threshold and
                                margin (null: none removed), per-case shapes/spacing
                                and occluder counts
    <out>/<case_id>/mip.npy     float32 (A, B)
    <out>/<case_id>/depth.npy   int16 (A, B)
    <out>/<case_id>/mip_label.npy  uint8 (A, B), labelled cases only

Example:
    >>> v = np.array([[[1.0, 5.0]], [[3.0, 5.0]]], np.float32)  # (Z, Y, X) = (2, 1, 2)
    >>> m, d = mip_and_depth(v, axis=0)
    >>> m.tolist(), d.tolist()          # ties -> first index
    ([[3.0, 5.0]], [[1, 0]])
    >>> values_at_depth(v, d, axis=0).tolist()
    [[3.0, 5.0]]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segline import atomic
from segline.casestore import CaseStore
from segline.cli import HelpFormatter, cli_of, prog
from segline.errors import InputError
from segline.experiments.vessels import occluders as occ

AXIS_NAMES = ("z", "y", "x")
MIP = "mip.npy"
DEPTH = "depth.npy"
MIP_LABEL = "mip_label.npy"
OCCLUDER = "occluder.npy"
"""The occluder mask (uint8 0/1, the store's (Z, Y, X) grid) of a case, when removal is on:
the pseudo-label stage calls these voxels background."""
STORE_JSON = "mip.json"
DEPTH_MAX = int(np.iinfo(np.int16).max)
CONVENTION = (
    "mip = max of image channel 0 along axis (float32); depth = index of that max along "
    "axis (int16), first index on ties; mip_label = max of the 3D label along axis "
    "(uint8), the simulated 2D annotation; 2D arrays keep the other two axes of the "
    "stored (Z, Y, X) volume in order; axis 0 = z, 1 = y, 2 = x"
)


def check_axis(axis: int, ndim: int = 3) -> int:
    """``axis`` as a non-negative int in ``[0, ndim)`` (negative values count from the end).

    Raises:
        ValueError: out of range or not an int.
    """
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim}), got {axis}")
    return int(axis) % ndim


def mip_and_depth(volume: np.ndarray, axis: int = 0,
                  exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Maximum intensity projection and argmax depth of a volume along ``axis``.

    Args:
        volume: array of any dimension >= 1 (e.g. (Z, Y, X)).
        axis: the projection axis.
        exclude: optional bool mask of the volume's shape (occluders): these voxels
            take no part in the max. A ray with every voxel excluded gets depth 0
            and the volume's minimum.

    Returns:
        ``(mip, depth)``: the maxima (float32) and the index of each maximum along
        ``axis`` (int16; the first index among equal maxima), both of the volume's
        shape without ``axis``. ``mip`` is read from the volume at ``depth``, so the
        two always agree exactly.

    Raises:
        ValueError: bad axis, an empty axis, or an axis longer than int16 can index.
    """
    vol = np.asarray(volume)
    ax = check_axis(axis, vol.ndim)
    if vol.shape[ax] == 0:
        raise ValueError("cannot project along an empty axis")
    if vol.shape[ax] - 1 > DEPTH_MAX:
        raise ValueError(f"axis {ax} has {vol.shape[ax]} samples; int16 depths hold at most "
                         f"{DEPTH_MAX + 1}")
    if exclude is None:
        depth = np.argmax(vol, axis=ax)
        mip = values_at_depth(vol, depth, ax)
        return mip.astype(np.float32, copy=False), depth.astype(np.int16)
    mask = np.asarray(exclude, dtype=bool)
    if mask.shape != vol.shape:
        raise ValueError(f"exclude mask shape {mask.shape} != volume shape {vol.shape}")
    depth = np.argmax(np.where(mask, -np.inf, vol.astype(np.float64)), axis=ax)
    mip = values_at_depth(vol, depth, ax).astype(np.float32)
    hidden = mask.all(axis=ax)
    if hidden.any():
        mip[hidden] = np.float32(vol.min())
    return mip, depth.astype(np.int16)


def values_at_depth(volume: np.ndarray, depth: np.ndarray, axis: int = 0) -> np.ndarray:
    """Gather one voxel per ray: ``out[r] = volume[..., depth[r], ...]`` along ``axis``.

    With ``depth`` the argmax depths this returns the MIP; with another volume of the
    same shape (e.g. a predicted probability map) it reads that volume where the
    *image* is brightest, which is what the MIP loss supervises.

    Args:
        volume: array with ``ndim = depth.ndim + 1``.
        depth: integer indices into ``axis``, of the volume's shape without ``axis``.
        axis: the projection axis of ``volume``.

    Returns:
        Array of ``depth``'s shape and ``volume``'s dtype.

    Raises:
        ValueError: shapes that do not match, non-integer or out-of-range depths.

    Example:
        >>> values_at_depth(np.arange(6).reshape(3, 2), np.array([2, 0]), axis=0).tolist()
        [4, 1]
    """
    vol = np.asarray(volume)
    dep = np.asarray(depth)
    ax = check_axis(axis, vol.ndim)
    expected = vol.shape[:ax] + vol.shape[ax + 1:]
    if dep.shape != expected:
        raise ValueError(f"depth shape {dep.shape} != volume shape without axis {ax} "
                         f"{expected}")
    if dep.dtype.kind not in "iu":
        raise ValueError(f"depth must hold integers, got dtype {dep.dtype}")
    if dep.size and (int(dep.min()) < 0 or int(dep.max()) >= vol.shape[ax]):
        raise ValueError(f"depth values {int(dep.min())}..{int(dep.max())} outside "
                         f"0..{vol.shape[ax] - 1}")
    idx = np.expand_dims(dep.astype(np.intp, copy=False), ax)
    return np.take_along_axis(vol, idx, axis=ax).squeeze(ax)


def project_labels(labels: np.ndarray, axis: int = 0) -> np.ndarray:
    """Project a 3D label (or prediction) to 2D: the maximum along ``axis``.

    A pixel is foreground when its ray meets at least one foreground voxel, which is
    how a 2D annotation of the MIP relates to the 3D vessels. Used to make the
    simulated 2D labels and to score a 3D prediction in 2D ("Dice of the predicted
    MIP against the 2D label"). Works for probabilities too (the MIP of a
    probability map).

    Args:
        labels: (Z, Y, X) class indices (any integer or bool dtype) or probabilities.
        axis: the projection axis.

    Returns:
        The 2D projection, same dtype.

    Example:
        >>> project_labels(np.array([[[0, 1]], [[0, 0]]], np.uint8), axis=0).tolist()
        [[0, 1]]
    """
    lab = np.asarray(labels)
    ax = check_axis(axis, lab.ndim)
    if lab.shape[ax] == 0:
        raise ValueError("cannot project along an empty axis")
    return lab.max(axis=ax)


def case_mip(
    image: np.ndarray, label: np.ndarray | None, axis: int = 0,
    exclude: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The MIP stage's arrays for one case.

    Args:
        image: (C, Z, Y, X) float32 (channel 0 is projected).
        label: (Z, Y, X) class indices, or None for an unlabelled case.
        axis: axis of the (Z, Y, X) volume.
        exclude: optional (Z, Y, X) bool occluder mask, removed before the max.

    Returns:
        ``{"mip": float32, "depth": int16[, "mip_label": uint8]}`` 2D arrays.
    """
    img = np.asarray(image)
    if img.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {img.shape}")
    ax = check_axis(axis, 3)
    mip, depth = mip_and_depth(img[0], ax, exclude)
    out = {"mip": mip, "depth": depth}
    if label is not None:
        lab = np.asarray(label)
        if lab.shape != img.shape[1:]:
            raise ValueError(f"label shape {lab.shape} != image shape {img.shape[1:]}")
        out["mip_label"] = project_labels(lab, ax).astype(np.uint8)
    return out


def write_mip_store(cases: str | Path, out: str | Path, axis: int = 0,
                    occluder: occ.OccluderParams | None = None,
                    raw: str | Path | None = None) -> dict[str, Any]:
    """Write the MIP store ``out`` for every case of the case store ``cases``.

    Every case gets ``mip.npy`` and ``depth.npy``; labelled ones also ``mip_label.npy``.
    The folder appears atomically (``<out>_tmp`` renamed at the end); on any error
    the previous one is untouched. ``mip.json`` holds no timings, so reruns give the
    same bytes.

    Args:
        cases: the case store (``data/<ds>/cases``).
        out: the folder to produce (``data/<ds>/mip``).
        axis: projection axis of the stored (Z, Y, X) volumes (0 = z).
        occluder: remove voxels above this HU threshold (and its margin) before the
            max; None removes nothing.
        raw: the unpacked dataset holding the source images (needed with
            ``occluder``: the HU are read there, see
            :mod:`segline.experiments.vessels.occluders`).

    Returns:
        The contents written to ``mip.json``.

    Raises:
        InputError: no case store, a case folder missing, an unreadable or misshapen
            image or label.
    """
    try:
        ax = check_axis(axis, 3)
    except ValueError as err:
        raise InputError("--axis", str(err)) from None
    if occluder is not None and raw is None:
        raise InputError("--raw", "occluder removal reads the source images: give the raw folder")
    if raw is not None and not Path(raw).is_dir():
        raise InputError(raw, "not a folder (the unpacked dataset)")
    store = CaseStore(cases)
    ids = store.case_ids()
    if not ids:
        raise InputError(store.root, "the case store lists no case")
    entries: list[dict[str, Any]] = []
    with atomic.atomic_dir(out) as tmp:
        for case_id in ids:
            folder = store.root / case_id
            if not folder.is_dir():
                raise InputError(folder, "listed in split.json but missing")
            try:
                image = np.asarray(store.image(case_id, mmap=False))
                label = np.asarray(store.label(case_id, mmap=False)) if store.has_label(
                    case_id) else None
                meta = store.meta(case_id)
                mask = None if occluder is None or raw is None else occ.occluder_mask(
                    occ.source_hu(raw, meta), occluder.hu, occluder.margin)
                arrays = case_mip(image, label, ax, mask)
                spacing = [float(s) for s in meta["spacing"]]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise InputError(folder, f"cannot project: {err}") from None
            dest = tmp / case_id
            dest.mkdir()
            atomic.save_npy(dest / MIP, arrays["mip"])
            atomic.save_npy(dest / DEPTH, arrays["depth"])
            if "mip_label" in arrays:
                atomic.save_npy(dest / MIP_LABEL, arrays["mip_label"])
            entry: dict[str, Any] = {
                "case_id": case_id,
                "shape": list(arrays["mip"].shape),
                "spacing_mm": [s for a, s in enumerate(spacing) if a != ax],
                "labelled": "mip_label" in arrays,
            }
            if mask is not None:
                atomic.save_npy(dest / OCCLUDER, mask.astype(np.uint8))
                plain = np.argmax(image[0], axis=ax)
                entry.update({
                    "occluder_voxels": int(np.count_nonzero(mask)),
                    "rays_moved": int(np.count_nonzero(plain != arrays["depth"])),
                    "rays_all_occluder": int(np.count_nonzero(mask.all(axis=ax))),
                })
            entries.append(entry)
        info: dict[str, Any] = {
            "axis": ax,
            "axis_name": AXIS_NAMES[ax],
            "plane_axes": [AXIS_NAMES[a] for a in range(3) if a != ax],
            "channel": 0,
            "convention": CONVENTION,
            "tie_rule": "first index",
            "occluder": None if occluder is None else {
                "hu": float(occluder.hu),
                "margin_voxels": int(occluder.margin),
                "convention": occ.CONVENTION,
            },
            "cases": entries,
        }
        atomic.write_json(tmp / STORE_JSON, info)
    return info


def read_mip_json(root: str | Path) -> dict[str, Any]:
    """``<root>/mip.json`` with a checked ``axis``, or InputError."""
    path = Path(root) / STORE_JSON
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "missing; run the MIP stage first") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"unreadable: {err}") from None
    axis = info.get("axis") if isinstance(info, dict) else None
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise InputError(path, f"'axis' must be 0, 1 or 2, got {axis!r}")
    return info


# ------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``preprocess/mip.py``."""
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("mip.py"),
        description="Maximum intensity projections, argmax depths (first index on ties) and "
        "projected 2D labels for every case of a case store.",
    )
    p.add_argument("--cases", required=True, type=Path, help="case store (data/<ds>/cases)")
    p.add_argument("--out", required=True, type=Path, help="MIP folder to write (data/<ds>/mip)")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=0,
                   help="projection axis of the stored (Z, Y, X) volume: 0 = z (axial MIP, "
                   "default), 1 = y, 2 = x")
    p.add_argument("--occluder-hu", type=_hu_or_none, default=None, metavar="HU|none",
                   help="remove voxels brighter than HU (bone; read from the source image "
                   "in --raw) before the max; none (default) removes nothing")
    p.add_argument("--occluder-margin", type=int, default=occ.OccluderParams.margin,
                   help="grow the occluder mask by this many voxels (26-neighbourhood) "
                   f"for the partial-volume rim (default {occ.OccluderParams.margin})")
    p.add_argument("--raw", type=Path, default=None,
                   help="the unpacked dataset (data/<ds>/raw), source of the HU for "
                   "--occluder-hu")
    return p


def _hu_or_none(text: str) -> float | None:
    """``--occluder-hu``: a finite number of HU, or ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HU or none, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite HU, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Write the MIP store and print one summary line."""
    args = build_parser().parse_args(argv)
    occluder = None
    if args.occluder_hu is not None:
        try:
            occluder = occ.OccluderParams(args.occluder_hu, args.occluder_margin)
        except ValueError as err:
            raise InputError("--occluder-margin", str(err)) from None
    start = time.perf_counter()
    info = write_mip_store(args.cases, args.out, args.axis, occluder, args.raw)
    n_lab = sum(1 for c in info["cases"] if c["labelled"])
    removed = "" if occluder is None else (
        f", occluders > {occluder.hu:g} HU (+{occluder.margin} voxels) removed, "
        f"{sum(c['rays_moved'] for c in info['cases'])} rays moved")
    print(f"mip: {len(info['cases'])} cases ({n_lab} with a 2D label), axis {info['axis']} "
          f"({info['axis_name']}){removed} -> {args.out} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


cli = cli_of(main)
