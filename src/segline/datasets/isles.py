"""Adapter for ISLES 2018 (ischaemic stroke lesions on CT perfusion): ``--adapter isles``.

The challenge's two zips (``ISLES2018_Training.zip``, ``ISLES2018_Testing.zip``) are
unpacked into one raw folder (the ``CT_4DPWI`` series left out by ``isles.make``)::

    <raw>/[<top>/]TRAINING/case_N/SMIR.Brain.XX.O.<MOD>.<id>/SMIR.Brain.XX.O.<MOD>.<id>.nii
    <raw>/[<top>/]TESTING/case_N/...

``TRAINING`` and ``TESTING`` sit at the top of the raw folder or one folder below it
(e.g. ``ISLES2018_Training/TRAINING``), each found once. ``MOD`` is one of

* ``CT`` (int32, HU), ``CT_CBV``, ``CT_CBF`` (uint16), ``CT_MTT``, ``CT_Tmax`` (float64,
  seconds): the five input channels, stacked in the fixed order of :data:`CHANNELS`:
  **CT, CT_CBV, CT_CBF, CT_MTT, CT_Tmax** (the driver windows the ``CT`` channel and
  scales every other one by its own robust percentiles over the non-zero voxels, i.e.
  the brain, since the perfusion maps are zero outside it);
* ``OT``: the lesion mask (uint8, 0/1), TRAINING cases only -> classes
  {0: background, 1: lesion};
* ``CT_4DPWI``: the raw 4D perfusion series, not used (ignored when present).

Case ids are ``train_case_N`` (TRAINING, labelled) and ``test_case_N`` (TESTING,
unlabelled: the driver's ``infer`` split), in natural order (``train_case_2`` before
``train_case_10``). Everything else is an error naming the case: a missing
modality, two folders of one modality, a TRAINING case without ``OT`` (or a TESTING
case with one), a folder or file that is not part of the layout, a volume folder
without its ``<folder>.nii`` (``.nii.gz`` accepted), modalities of different shapes
or grids. Hidden files (``._*`` left by macOS) and ``*.json`` metadata sidecars in a
volume folder are ignored.

Predictions for the challenge are named by :func:`submission_name`.

Example:
    >>> adapter = IslesAdapter("data/isles/raw")                      # doctest: +SKIP
    >>> adapter.channels, adapter.labelled()[:2], adapter.unlabelled()[:1]  # doctest: +SKIP
    (['CT', 'CT_CBV', 'CT_CBF', 'CT_MTT', 'CT_Tmax'], ['train_case_1', 'train_case_2'],
     ['test_case_1'])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from segline.casestore import sorted_cases
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess.slicing import CaseRecord, register_adapter

PREFIX = "SMIR.Brain.XX.O."
CHANNELS: tuple[str, ...] = ("CT", "CT_CBV", "CT_CBF", "CT_MTT", "CT_Tmax")
LABEL = "OT"
UNUSED: tuple[str, ...] = ("CT_4DPWI",)
MODALITIES: tuple[str, ...] = CHANNELS + (LABEL,) + UNUSED
SPLIT_DIRS: dict[str, str] = {"TRAINING": "train", "TESTING": "test"}
SUBMISSION_MODALITY = "CT_MTT"
GRID_ATOL_MM = 1e-3  # affines of one case's volumes must agree within this (mm)
SIDECAR_SUFFIXES = (".json",)

_CASE = re.compile(r"^case_([1-9][0-9]*)$")
_VOLUME = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<mod>[A-Za-z0-9_]+)\.(?P<id>[0-9]+)$")
_NAME_PART = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_volume_name(name: str) -> tuple[str, str] | None:
    """``SMIR.Brain.XX.O.CT_MTT.345565`` (a folder, or a file with ``.nii``/``.nii.gz``)
    -> ``("CT_MTT", "345565")``; None for any other name."""
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = _VOLUME.match(name)
    return (match["mod"], match["id"]) if match else None


def submission_name(meta: dict[str, Any], method: str = "segline") -> str:
    """The file name ISLES 2018 expects for a test case's prediction.

    The challenge's results upload (SMIR) names each segmentation
    ``SMIR.<result name>.<id>.nii``, where ``<id>`` is the SMIR id of the case's
    ``CT_MTT`` volume (uncompressed NIfTI, same grid as the case's volumes); e.g. for a
    case with ``SMIR.Brain.XX.O.CT_MTT.346294`` and method ``gdl``:
    ``SMIR.gdl.346294.nii``. The id is read from the source files recorded in the case's
    ``meta.json`` (``meta["source"]["image"]``, written by :class:`IslesAdapter`).

    Args:
        meta: the case's meta (see :mod:`segline.preprocess.geometry`).
        method: the result name (letters, digits, ``_`` and ``-``; no dots, which
            separate the fields), e.g. the method's folder name.

    Returns:
        the file name, e.g. ``SMIR.gdl.346294.nii``.

    Raises:
        InputError: no ``CT_MTT`` source recorded, or a bad result name.

    Example:
        >>> submission_name({"source": {"image": [
        ...     "TESTING/case_1/SMIR.Brain.XX.O.CT_MTT.346294/SMIR.Brain.XX.O.CT_MTT.346294.nii"]}},
        ...     "gdl")
        'SMIR.gdl.346294.nii'
    """
    where = str(meta.get("case_id", "meta.json"))
    if not _NAME_PART.match(method):
        raise InputError(where, f"result name {method!r} must be letters, digits, '_' or '-'")
    source = meta.get("source")
    images = source.get("image") if isinstance(source, dict) else None
    for path in images or []:
        parsed = parse_volume_name(PurePosixPath(str(path)).name)
        if parsed is not None and parsed[0] == SUBMISSION_MODALITY:
            return f"SMIR.{method}.{parsed[1]}.nii"
    raise InputError(where, f"no {SUBMISSION_MODALITY} source file in the case's meta "
                     "(meta['source']['image']); cannot name the ISLES submission")


@dataclass(frozen=True)
class IslesCase:
    """Files of one case (paths only, so adapters stay picklable for ``--jobs``).

    Attributes:
        case_id: ``train_case_N`` / ``test_case_N``.
        folder: the ``case_N`` folder.
        volumes: modality -> its NIfTI file, for :data:`CHANNELS` and ``OT``.
        ids: modality -> SMIR id, for every volume folder found (unused ones too).
    """

    case_id: str
    folder: Path
    volumes: dict[str, Path]
    ids: dict[str, str]

    @property
    def labelled(self) -> bool:
        """Whether the case has its ground truth (``OT``)."""
        return LABEL in self.volumes


def find_split_dirs(raw: Path) -> dict[str, Path]:
    """``TRAINING`` (required) and ``TESTING`` (optional) in ``raw`` or one level below.

    Raises:
        InputError: no TRAINING folder, or one of them found twice.
    """
    if not raw.is_dir():
        raise InputError(raw, "raw folder not found")
    parents = [raw] + sorted(d for d in raw.iterdir()
                             if d.is_dir() and not d.name.startswith((".", "__MACOSX"))
                             and d.name not in SPLIT_DIRS)
    found: dict[str, Path] = {}
    for name in SPLIT_DIRS:
        hits = [p / name for p in parents if (p / name).is_dir()]
        if len(hits) > 1:
            raise InputError(raw, f"{name} found twice: " + ", ".join(str(h) for h in hits))
        if hits:
            found[name] = hits[0]
    if "TRAINING" not in found:
        raise InputError(raw, "no TRAINING folder (expected TRAINING/case_N/SMIR.Brain.XX.O.*, "
                         "possibly below one top folder such as ISLES2018_Training/)")
    return found


def _volume_file(folder: Path, case_id: str) -> Path | None:
    """The ``<folder>.nii`` (or ``.nii.gz``) in a volume folder; other files are errors."""
    wanted = {folder.name + ".nii", folder.name + ".nii.gz"}
    found: list[Path] = []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_file() and f.name in wanted:
            found.append(f)
        elif f.is_file() and f.name.endswith(SIDECAR_SUFFIXES):
            continue
        else:
            raise InputError(f, f"unexpected {'folder' if f.is_dir() else 'file'} in case "
                             f"{case_id} (a volume folder holds only {folder.name}.nii)")
    if len(found) > 1:
        raise InputError(folder, f"case {case_id}: both {found[0].name} and {found[1].name}")
    return found[0] if found else None


def scan_case(folder: Path, split: str) -> IslesCase:
    """Check one ``case_N`` folder of ``TRAINING`` (split "train") or ``TESTING`` ("test").

    Raises:
        InputError: naming the case (see the module docstring for what is checked).
    """
    number = _CASE.match(folder.name)
    if number is None:
        raise ValueError(f"not a case folder: {folder}")
    case_id = f"{split}_case_{int(number.group(1))}"
    volumes: dict[str, Path] = {}
    ids: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        parsed = parse_volume_name(entry.name) if entry.is_dir() else None
        if parsed is None:
            kind = "folder" if entry.is_dir() else "file"
            raise InputError(entry, f"unexpected {kind} in case {case_id} (expected only "
                             f"{PREFIX}<MOD>.<id>/ folders, MOD in {', '.join(MODALITIES)})")
        mod, smir_id = parsed
        if mod not in MODALITIES:
            raise InputError(entry, f"unknown modality {mod!r} in case {case_id} "
                             f"(known: {', '.join(MODALITIES)})")
        if mod in seen:
            raise InputError(folder, f"case {case_id} has two {mod} volumes: "
                             f"{seen[mod].name} and {entry.name}")
        seen[mod] = entry
        ids[mod] = smir_id
        if mod in UNUSED:
            continue
        nii = _volume_file(entry, case_id)
        if nii is None:
            raise InputError(entry, f"case {case_id}: {mod} folder holds no {entry.name}.nii")
        volumes[mod] = nii
    missing = [m for m in CHANNELS if m not in volumes]
    if missing:
        raise InputError(folder, f"case {case_id}: missing modality {', '.join(missing)} "
                         f"(each case needs {', '.join(CHANNELS)})")
    if split == "train" and LABEL not in volumes:
        raise InputError(folder, f"case {case_id}: no ground truth ({PREFIX}{LABEL}.<id>/ "
                         "folder) in a TRAINING case")
    if split == "test" and LABEL in volumes:
        raise InputError(seen[LABEL], f"case {case_id}: ground truth in a TESTING case "
                         "(the challenge's test cases have none; move the case to TRAINING)")
    return IslesCase(case_id, folder, volumes, ids)


@register_adapter("isles")
class IslesAdapter:
    """Cases of an unpacked ISLES 2018 raw folder (see the module docstring).

    Args:
        raw: the raw folder (``data/isles/raw``).

    Raises:
        InputError: a layout problem, naming the folder or case.
    """

    source: ClassVar[str] = "isles"

    def __init__(self, raw: str | os.PathLike[str]) -> None:
        self.raw = Path(raw)
        self.name = "ISLES2018"
        self.labels: dict[int, str] = {0: "background", 1: "lesion"}
        self.channels: list[str] = list(CHANNELS)
        dirs = find_split_dirs(self.raw)
        self.info: dict[str, Any] = {
            "challenge": "ISLES 2018 (Ischemic Stroke Lesion Segmentation, CT perfusion)",
            "url": "http://www.isles-challenge.org/ISLES2018/",
            "channel_order": list(CHANNELS),
            **{f"{name.lower()}_dir": self._rel(path) for name, path in dirs.items()},
        }
        self._cases: dict[str, IslesCase] = {}
        for name, path in dirs.items():
            split = SPLIT_DIRS[name]
            for entry in sorted(path.iterdir()):
                if entry.name.startswith("."):
                    continue
                if not (entry.is_dir() and _CASE.match(entry.name)):
                    kind = "folder" if entry.is_dir() else "file"
                    raise InputError(entry, f"unexpected {kind} in {name} (expected case_N "
                                     "folders)")
                case = scan_case(entry, split)
                self._cases[case.case_id] = case
        if not any(c.labelled for c in self._cases.values()):
            raise InputError(dirs["TRAINING"], "no case_N folder in TRAINING")

    def _rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.raw)).as_posix()

    # --------------------------------------------------------------- protocol

    def labelled(self) -> list[str]:
        """TRAINING case ids (``train_case_N``), natural order."""
        return sorted_cases([c for c, v in self._cases.items() if v.labelled])

    def unlabelled(self) -> list[str]:
        """TESTING case ids (``test_case_N``), natural order."""
        return sorted_cases([c for c, v in self._cases.items() if not v.labelled])

    def case(self, case_id: str) -> IslesCase:
        """The files of one case (``KeyError`` for an unknown id)."""
        return self._cases[case_id]

    def load(self, case_id: str) -> CaseRecord:
        """Read the five channels (order :data:`CHANNELS`) and, for training, ``OT``.

        The CT's affine and spacing are the case's geometry; every other volume must
        have the same shape and an affine within :data:`GRID_ATOL_MM` of it.

        Raises:
            InputError: naming the file and the case: unreadable, not 3D, NaN/inf,
                bad spacing, a shape or grid different from the CT's.
        """
        case = self._cases[case_id]
        vols = {m: geometry.read_nifti(case.volumes[m], "image") for m in CHANNELS}
        label = None
        if case.labelled:
            label = geometry.read_nifti(case.volumes[LABEL], "label")
        ref = vols["CT"]
        others = [(m, vols[m]) for m in CHANNELS[1:]] + ([(LABEL, label)] if label else [])
        for mod, vol in others:
            if vol.data.shape != ref.data.shape:
                raise InputError(vol.path, f"case {case_id}: {mod} shape {vol.data.shape} "
                                 f"differs from CT shape {ref.data.shape}")
            diff = float(np.max(np.abs(vol.affine - ref.affine)))
            if diff > GRID_ATOL_MM:
                raise InputError(vol.path, f"case {case_id}: {mod} affine differs from the "
                                 f"CT's (max difference {diff:.4g} mm)")
        return CaseRecord(
            case_id=case_id,
            channels=[vols[m].data for m in CHANNELS],
            label=None if label is None else label.data,
            affine=ref.affine,
            spacing_xyz=ref.spacing_xyz,
            image_files=[self._rel(case.volumes[m]) for m in CHANNELS],
            label_file=self._rel(case.volumes[LABEL]) if label is not None else None,
            label_path=case.volumes[LABEL] if label is not None else None,
        )
