"""Adapter for spine CT with per-vertebra labels in the VerSe layout: ``--adapter verse``.

VerSe (Sekuboyina et al., MedIA 2021; github.com/anjany/verse) ships each part as a
folder (``dataset-verse19training/``, ``dataset-verse20validation/``, ...) in BIDS
naming. The raw folder holds one or more such *top folders* (the raw folder itself
when it holds ``rawdata/``, else every sub-folder that does)::

    <top>/rawdata/sub-<id>/[ses-<s>/]sub-<id>[_<entity>...]_ct.nii.gz          CT, HU
    <top>/derivatives/sub-<id>/[ses-<s>/]<same stem>_seg-vert_msk.nii.gz       mask

The case id is the CT file's stem (the name before ``_ct.nii.gz``, e.g.
``sub-verse004`` or ``sub-gl003_ses-20110101``), unique over all top folders. A CT
whose mask is missing is unlabelled (split ``infer``). Mask values are VerSe vertebra
indices (:data:`VERTEBRAE`): 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 sacrum,
27 coccyx, 28 T13; 0 is background. Everything else in ``derivatives/`` (the
``_seg-subreg_ctd.json`` centroids, ``_snp.png`` previews) is ignored, as are hidden
files (``._*``) and non-NIfTI files in ``rawdata/``.

**Classes.** The classes are the union of the vertebra values present in the masks
(every mask is read once when the adapter is built), in label order, named by the
VerSe convention: class 0 background, class k the k-th smallest value present. The
adapter hands the driver class indices (the mask mapped through that table), and
``info["label_values"]`` (``dataset.json`` ``source_info``) records class index ->
VerSe value, so predictions can be written back in VerSe values
(:func:`to_verse_values`).

Errors (one :class:`InputError` line naming the file): no top folder, a NIfTI in
``rawdata/`` that is not ``*_ct.nii.gz``, a file not named after its subject folder,
a case id found twice, a mask without its CT, an unreadable CT or mask, a mask whose
grid (shape, affine) differs from its CT's, and mask values outside 0-28.

The arrays are used as stored: the cranio-caudal axis is whatever the file's third
axis is (VerSe files come in several orientations; no reorientation is done).

Example:
    >>> adapter = VerseAdapter("data/vertebrae-toy/raw")                 # doctest: +SKIP
    >>> adapter.labels[1], adapter.info["label_values"]["1"]            # doctest: +SKIP
    ('T1', 8)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import nibabel as nib
import numpy as np

from segline.casestore import sorted_cases
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess.slicing import CaseRecord, register_adapter

#: VerSe vertebra index -> name (the VerSe README's convention).
VERTEBRAE: dict[int, str] = {
    **{k: f"C{k}" for k in range(1, 8)},
    **{k: f"T{k - 7}" for k in range(8, 20)},
    **{k: f"L{k - 19}" for k in range(20, 26)},
    26: "sacrum",
    27: "coccyx",
    28: "T13",
}
MAX_VALUE = 28
CT_SUFFIX = "_ct"
MASK_SUFFIX = "_seg-vert_msk"
NIFTI = (".nii.gz", ".nii")
GRID_ATOL_MM = 1e-3  # a mask's affine must equal its CT's within this (mm)

_SUBJECT = re.compile(r"^sub-[A-Za-z0-9]+$")
_SESSION = re.compile(r"^ses-[A-Za-z0-9]+$")


def _strip_nifti(name: str) -> str | None:
    for suffix in NIFTI:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def find_top_folders(raw: Path) -> list[Path]:
    """The folders holding ``rawdata/``: ``raw`` itself, else its sub-folders that do.

    Raises:
        InputError: ``raw`` is missing or no folder holds ``rawdata/``.
    """
    if not raw.is_dir():
        raise InputError(raw, "raw folder not found")
    if (raw / "rawdata").is_dir():
        return [raw]
    tops = sorted(
        d
        for d in raw.iterdir()
        if d.is_dir() and not d.name.startswith((".", "__MACOSX")) and (d / "rawdata").is_dir()
    )
    if not tops:
        raise InputError(
            raw,
            "no VerSe folder (expected rawdata/sub-<id>/...ct.nii.gz, "
            "possibly below top folders such as dataset-verse19training/)",
        )
    return tops


def _scan(folder: Path, suffix: str, strict: bool) -> dict[str, Path]:
    """Case stem -> file for ``sub-*/[ses-*/]<stem><suffix>.nii[.gz]`` below ``folder``.

    ``strict``: a NIfTI file with another suffix is an error (rawdata); otherwise every
    other file is ignored (derivatives: centroids, previews, other masks).
    """
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for subject in sorted(folder.iterdir()):
        if subject.name.startswith(".") or not subject.is_dir():
            continue
        if not _SUBJECT.match(subject.name):
            raise InputError(subject, "unexpected folder (expected sub-<id> subject folders)")
        places = [subject] + sorted(
            d for d in subject.iterdir() if d.is_dir() and _SESSION.match(d.name)
        )
        for place in places:
            for f in sorted(place.iterdir()):
                if f.name.startswith(".") or not f.is_file():
                    continue
                stem = _strip_nifti(f.name)
                if stem is None:
                    continue
                if not stem.endswith(suffix):
                    if strict:
                        raise InputError(
                            f, f"unexpected NIfTI file (expected <stem>{suffix}.nii.gz)"
                        )
                    continue
                case_id = stem[: -len(suffix)]
                if case_id != subject.name and not case_id.startswith(subject.name + "_"):
                    raise InputError(
                        f, f"file name does not start with its subject folder's name {subject.name}"
                    )
                if place is not subject and place.name not in case_id.split("_"):
                    raise InputError(f, f"file name does not carry its session {place.name}")
                if case_id in found:
                    raise InputError(f, f"case {case_id} present twice ({found[case_id]})")
                found[case_id] = f
    return found


@dataclass(frozen=True)
class VerseCase:
    """Files of one case (paths only, so the adapter stays picklable for ``--jobs``)."""

    case_id: str
    ct: Path
    mask: Path | None


def _grid(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine from a NIfTI header (no voxel data read)."""
    try:
        img = nib.load(path)
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"cannot read NIfTI: {err}") from err
    return tuple(int(n) for n in img.shape), np.asarray(img.affine, dtype=np.float64)


def check_grid(ct: Path, mask: Path, case_id: str) -> None:
    """Raise :class:`InputError` on ``mask`` unless its shape and affine are its CT's."""
    ct_shape, ct_affine = _grid(ct)
    shape, affine = _grid(mask)
    if shape[:3] != ct_shape[:3]:
        raise InputError(
            mask, f"case {case_id}: mask shape {shape} differs from the CT's {ct_shape}"
        )
    diff = float(np.max(np.abs(affine - ct_affine)))
    if diff > GRID_ATOL_MM:
        raise InputError(
            mask,
            f"case {case_id}: mask affine differs from the CT's (max difference {diff:.4g} mm)",
        )


def mask_values(mask: Path) -> list[int]:
    """The vertebra values (1-28) in a mask file.

    Raises:
        InputError: unreadable, not an integer 3D volume, or values outside 0-28.
    """
    data = np.asarray(geometry.read_nifti(mask, "label").data)
    if data.dtype.kind in "bu" and data.size and int(data.max()) <= np.iinfo(np.uint16).max:
        # a count per value, O(voxels): np.unique sorts the whole mask (4.4 s for a
        # 320x320x600 mask, 0.45 s this way), and the adapter scans every mask when it is
        # built. ravel(order="K") keeps nibabel's Fortran order (a C-order ravel copies:
        # 7 s); chunks bound bincount's int64 copy to 64 MiB
        flat = data.ravel(order="K")
        size = int(data.max()) + 1
        counts = np.zeros(size, dtype=np.int64)
        for start in range(0, flat.size, 1 << 23):
            counts += np.bincount(flat[start : start + (1 << 23)], minlength=size)
        values = [int(v) for v in np.flatnonzero(counts)]
    else:
        values = [int(v) for v in np.unique(data)]
    bad = [v for v in values if not 0 <= v <= MAX_VALUE]
    if bad:
        shown = ", ".join(str(v) for v in bad[:10])
        raise InputError(
            mask,
            f"label values [{shown}] outside the VerSe vertebra values "
            f"1-{MAX_VALUE} (0 background)",
        )
    return [v for v in values if v]


def to_verse_values(classes: np.ndarray, label_values: dict[str, int]) -> np.ndarray:
    """Class indices -> VerSe values through ``label_values`` (``dataset.json`` info).

    Example:
        >>> to_verse_values(np.array([0, 1, 2]), {"0": 0, "1": 20, "2": 21}).tolist()
        [0, 20, 21]
    """
    lut = np.zeros(max(int(k) for k in label_values) + 1, dtype=np.uint8)
    for k, v in label_values.items():
        lut[int(k)] = int(v)
    return lut[classes]


@register_adapter("verse")
class VerseAdapter:
    """Cases of an unpacked VerSe-layout raw folder (see the module docstring).

    Args:
        raw: the raw folder (``data/vertebrae/raw``).

    Raises:
        InputError: a layout or mask problem, naming the file.
    """

    source: ClassVar[str] = "verse"

    def __init__(self, raw: str | os.PathLike[str]) -> None:
        self.raw = Path(raw)
        self.name = "VerSe"
        self.channels: list[str] = ["CT"]
        self.tops = find_top_folders(self.raw)
        self._cases: dict[str, VerseCase] = {}
        for top in self.tops:
            cts = _scan(top / "rawdata", CT_SUFFIX, strict=True)
            masks = _scan(top / "derivatives", MASK_SUFFIX, strict=False)
            for case_id, mask in masks.items():
                if case_id not in cts:
                    raise InputError(
                        mask,
                        f"mask without its CT (no rawdata/.../{case_id}"
                        f"{CT_SUFFIX}.nii.gz in {self._rel(top)})",
                    )
            for case_id, ct in cts.items():
                if case_id in self._cases:
                    raise InputError(
                        ct, f"case {case_id} present twice (also {self._cases[case_id].ct})"
                    )
                self._cases[case_id] = VerseCase(case_id, ct, masks.get(case_id))
        if not self._cases:
            raise InputError(self.raw, "no CT (rawdata/sub-<id>/...ct.nii.gz) found")
        present: set[int] = set()
        for case_id in sorted_cases(list(self._cases)):
            case = self._cases[case_id]
            if case.mask is not None:
                check_grid(case.ct, case.mask, case_id)
                present.update(mask_values(case.mask))
        values = sorted(present)
        self.values: list[int] = values
        self.labels: dict[int, str] = {0: "background"}
        self.labels.update({k: VERTEBRAE[v] for k, v in enumerate(values, start=1)})
        self.info: dict[str, Any] = {
            "layout": "VerSe (BIDS): rawdata/sub-*/[ses-*/]*_ct.nii.gz, "
            "derivatives/sub-*/[ses-*/]*_seg-vert_msk.nii.gz",
            "folders": [self._rel(t) for t in self.tops],
            "label_values": {"0": 0, **{str(k): v for k, v in enumerate(values, start=1)}},
        }
        self._lut = np.zeros(MAX_VALUE + 1, dtype=np.uint8)
        for k, v in enumerate(values, start=1):
            self._lut[v] = k

    def _rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.raw)).as_posix()

    # --------------------------------------------------------------- protocol

    def labelled(self) -> list[str]:
        """Ids of the cases with a mask, natural order."""
        return sorted_cases([c for c, v in self._cases.items() if v.mask is not None])

    def unlabelled(self) -> list[str]:
        """Ids of the CTs without a mask (inferred only), natural order."""
        return sorted_cases([c for c, v in self._cases.items() if v.mask is None])

    def case(self, case_id: str) -> VerseCase:
        """The files of one case (``KeyError`` for an unknown id)."""
        return self._cases[case_id]

    def load(self, case_id: str) -> CaseRecord:
        """Read the CT (HU) and, when labelled, its mask as class indices.

        Raises:
            InputError: unreadable files, a mask grid different from the CT's, mask
                values outside 0-28.
        """
        case = self._cases[case_id]
        ct = geometry.read_nifti(case.ct, "image")
        label = None
        if case.mask is not None:
            mask = geometry.read_nifti(case.mask, "label")
            check_grid(case.ct, case.mask, case_id)
            data = np.asarray(mask.data)
            if data.dtype.kind == "b":
                data = data.astype(np.uint8)
            if data.size and (int(data.min()) < 0 or int(data.max()) > MAX_VALUE):
                mask_values(case.mask)  # raises, naming the values
            label = self._lut[data]  # indexed in the file's integer type: no int64 copy
        return CaseRecord(
            case_id=case_id,
            channels=[ct.data],
            label=label,
            affine=ct.affine,
            spacing_xyz=ct.spacing_xyz,
            image_files=[self._rel(case.ct)],
            label_file=self._rel(case.mask) if case.mask is not None else None,
            label_path=case.mask,
        )
