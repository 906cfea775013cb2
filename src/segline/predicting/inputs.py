"""The images of a folder, read and preprocessed exactly as the training data were.

A folder to predict holds NIfTI images (``.nii`` or ``.nii.gz``; other files and
sub-folders are ignored) in one of two layouts, never mixed:

* nnU-Net's naming: one file per channel, ``<case>_0000.nii.gz``,
  ``<case>_0001.nii.gz``, ... (four digits, channels numbered from 0 in the order of
  the case store's ``channels``); every channel of a case on one grid;
* one file per case, ``<case>.nii.gz``: 3D for a one-channel data set, 4D with the
  channels last (the MSD layout, ``(X, Y, Z, C)``) otherwise. A name ending in an
  underscore and four digits (``scan_0001.nii.gz``) reads as nnU-Net's naming, so
  such plain files must be renamed.

Each case is then preprocessed by the slicing stage's own function
(:func:`segline.preprocess.slicing.process_case`) with the parameters the case store
recorded in its ``dataset.json`` (``preprocessing``: CT window, percentiles or
z-scoring per channel, by modality or by the recorded ``norm`` override, crop
mode, margin (mm) and body threshold (HU), target spacing (mm) and in-plane size
(voxels)), never with the make knobs of the moment: a prediction is
made on the grid and intensity scale the network was trained on, whatever was changed
since. The meta of the result records every transform, so
:func:`segline.preprocess.geometry.to_source` maps predictions back to the image's
own grid.

Example:
    >>> case_and_channel("liver_7_0001.nii.gz")
    ('liver_7', 1)
    >>> case_and_channel("liver_7.nii.gz") is None
    True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from segline.casestore import CaseStore, case_sort_key
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess import window as win
from segline.preprocess.slicing import CaseRecord, SliceParams, process_case

NIFTI = re.compile(r"^(?P<case>.+?)\.nii(?:\.gz)?$")
NNUNET = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii(?:\.gz)?$")


def case_and_channel(name: str) -> tuple[str, int] | None:
    """``(case, channel)`` of a file named in nnU-Net's scheme, else None."""
    m = NNUNET.match(name)
    return (m.group("case"), int(m.group("channel"))) if m else None


@dataclass
class InputCase:
    """One case of an input folder.

    Attributes:
        case_id: the name the prediction takes (``<case_id>.nii.gz``).
        files: one file per channel (nnU-Net naming) or the case's one 3D/4D file.
    """

    case_id: str
    files: list[Path]


def find_inputs(folder: str | Path, n_channels: int) -> list[InputCase]:
    """The cases of ``folder`` in natural order (empty list: no NIfTI file in it).

    Raises:
        InputError: the folder is missing; nnU-Net and plain names are mixed; a case
            lacks a channel file or has more than ``n_channels``; two files give the
            same case (``a.nii`` and ``a.nii.gz``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "input folder not found")
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and NIFTI.match(p.name)
    )
    if not names:
        return []
    split = [n for n in names if case_and_channel(n)]
    if split and len(split) != len(names):
        plain = next(n for n in names if not case_and_channel(n))
        raise InputError(
            folder,
            f"mixed naming: {split[0]} is an nnU-Net channel file "
            f"(<case>_0000.nii.gz), {plain} is not; use one scheme",
        )
    cases: dict[str, dict[int, Path]] = {}
    for name in names:
        if split:
            parsed = case_and_channel(name)
            assert parsed is not None
            case, channel = parsed
        else:
            m = NIFTI.match(name)
            assert m is not None
            case, channel = m.group("case"), 0
        chans = cases.setdefault(case, {})
        if channel in chans:
            raise InputError(folder / name, f"same case and channel as {chans[channel].name}")
        chans[channel] = folder / name
    out = []
    for case in sorted(cases, key=case_sort_key):
        chans = cases[case]
        if split and sorted(chans) != list(range(n_channels)):
            found = ", ".join(f"_{c:04d}" for c in sorted(chans))
            want = ", ".join(f"_{c:04d}" for c in range(n_channels))
            raise InputError(
                chans[min(chans)],
                f"case {case} has channel files {found}; "
                f"the training data has {n_channels} channel(s): {want}",
            )
        out.append(InputCase(case, [chans[c] for c in sorted(chans)]))
    return out


def _header_shape(path: Path) -> tuple[int, ...] | None:
    """The array shape from the header, or None when nibabel cannot open the file
    (:func:`geometry.read_nifti` then says why)."""
    try:
        with geometry._quiet_nibabel():
            return tuple(int(n) for n in nib.load(path).shape)
    except Exception:  # any unreadable file: read_nifti reports it as an InputError
        return None


def read_case(case: InputCase, channel_names: list[str]) -> CaseRecord:
    """Read and check one case's channels (one grid, finite values, positive spacing).

    Raises:
        InputError: naming the file: unreadable, not NIfTI, a channel count other than
            the training data's, channels on different grids.
    """
    n = len(channel_names)
    if len(case.files) == 1 and n > 1:
        path = case.files[0]
        shape = _header_shape(path)
        if shape is not None and (len(shape) != 4 or shape[3] != n):
            have = 1 if len(shape) == 3 else (shape[3] if len(shape) == 4 else "?")
            raise InputError(
                path,
                f"{have} channel(s) (shape {shape}); the training data has "
                f"{n} ({', '.join(channel_names)}): give a 4D file (X, Y, Z, {n}) "
                f"or one <case>_0000.nii.gz ... file per channel",
            )
        vol = geometry.read_nifti(path, "image", channels=n)
        chans = [np.ascontiguousarray(vol.data[..., c]) for c in range(n)]
        return CaseRecord(case.case_id, chans, None, vol.affine, vol.spacing_xyz, [path.name])
    if len(case.files) == 1:
        shape = _header_shape(case.files[0])
        if shape is not None and len(shape) == 4 and shape[3] > 1:
            raise InputError(
                case.files[0],
                f"{shape[3]} channels (shape {shape}); the "
                f"training data has 1 ({channel_names[0]})",
            )
    vols = [geometry.read_nifti(p, "image", channels=1) for p in case.files]
    for other in vols[1:]:
        geometry.check_same_grid(vols[0], other)
    return CaseRecord(
        case.case_id,
        [v.data for v in vols],
        None,
        vols[0].affine,
        vols[0].spacing_xyz,
        [p.name for p in case.files],
    )


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def params_from_store(store: CaseStore) -> SliceParams:
    """The slicing parameters recorded in the store's ``dataset.json`` ``preprocessing``.

    Raises:
        InputError: the store has no such record (written by hand or by an old
            version): re-slice it.
    """
    rec = store.dataset.get("preprocessing")
    if not isinstance(rec, dict):
        raise InputError(
            store.root / "dataset.json",
            "no 'preprocessing' record: the "
            "parameters the training data were made with are unknown; "
            "rebuild the case store with the slicing stage",
        )
    spacing = rec.get("spacing")
    norm = rec.get("norm")
    return SliceParams(
        window=_pair(rec.get("window")),
        percentiles=_pair(rec.get("percentiles")),
        spacing=None
        if spacing is None
        else tuple(  # type: ignore[arg-type]
            None if s is None else float(s) for s in spacing
        ),
        inplane=None if rec.get("inplane") is None else int(rec["inplane"]),
        crop=str(rec.get("crop", "none")),
        crop_margin=float(rec.get("crop_margin_mm", 10.0)),
        body_hu=float(rec.get("body_hu", -500.0)),
        norm=None if norm is None else win.norm_kinds(
            ",".join(str(k) for k in norm), str(store.root / "dataset.json")),
    )


def preprocess(
    record: CaseRecord, store: CaseStore, params: SliceParams | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Image (C, Z, Y, X) float32 on the training grid and its meta (transforms recorded).

    Every channel is normalised by its modality (``dataset.json`` ``channels``: CT
    windowed, others by percentiles) or by the recorded ``norm`` override,
    transposed to (Z, Y, X), cropped (``crop`` ``label`` falls back to the body, as
    for the store's unlabelled cases) and resampled to the store's spacing /
    in-plane size, by the slicing stage's code.
    """
    params = params or params_from_store(store)
    labels = {int(k): str(v) for k, v in store.dataset["labels"].items()}
    channels = [str(c) for c in store.dataset["channels"]]
    identity = np.arange(256, dtype=np.uint8)
    image, _, meta = process_case(record, labels, channels, params, identity)
    return image, meta


def describe(params: SliceParams, channels: list[str]) -> str:
    """One line of the preprocessing applied (printed once per prediction run)."""
    parts = []
    for c, kind in zip(channels, win.resolve_kinds(params.norm, channels), strict=True):
        if kind == "zscore":
            parts.append(f"{c}: z-score (non-zero voxels)")
        elif kind == "ct":
            parts.append(f"{c}: window {params.window}" if params.window else f"{c}: raw HU")
        else:
            parts.append(
                f"{c}: percentiles {params.percentiles}" if params.percentiles else f"{c}: raw"
            )
    if params.crop != "none":
        parts.append(f"crop {params.crop} + {params.crop_margin:g} mm")
    if params.spacing is not None:
        sp = ",".join(
            "-" if s is None or not math.isfinite(s) else f"{s:g}" for s in params.spacing
        )
        parts.append(f"spacing {sp} mm (z,y,x)")
    if params.inplane is not None:
        parts.append(f"in-plane {params.inplane}x{params.inplane}")
    return "; ".join(parts)
