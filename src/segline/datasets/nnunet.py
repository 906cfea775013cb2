"""Adapter for nnU-Net v2 raw datasets (``nnUNet_raw/DatasetXXX_Name``).

An nnU-Net v2 raw dataset is one folder::

    <raw>/Dataset042_Kidney/
      dataset.json   "channel_names" {"0": "CT", "1": "T2"},
                     "labels" {"background": 0, "kidney": 1, "tumour": 2},
                     "numTraining" 8, "file_ending" ".nii.gz"
      imagesTr/<case>_0000.nii.gz, <case>_0001.nii.gz, ...   one file per channel
      labelsTr/<case>.nii.gz
      imagesTs/<case>_0000.nii.gz, ...                        (optional, unlabelled)

Unlike MSD (:mod:`segline.datasets.msd`) there is no file list in ``dataset.json``:
cases are the files on disk, a case's channels are its files ``<case>_XXXX`` (four
digits, the index into ``channel_names``, whose keys are "0", "1", ...). Everything
is cross-checked, nothing is skipped silently: every ``imagesTr`` case must have every
channel and a label, every label an image, ``numTraining`` must equal the number of
cases, and a file in ``imagesTr``/``labelsTr``/``imagesTs`` that is not named
``<case>_XXXX<file_ending>`` (``<case><file_ending>`` for labels) is an error naming
it. Hidden files (``._x.nii.gz``, ``.DS_Store``) are ignored.

Refused with one line (:class:`~segline.errors.InputError`): a ``file_ending`` other
than ``.nii.gz``/``.nii`` (segline reads NIfTI only), region-based labels (a label
whose value is a list of ints, or ``regions_class_order``: overlapping regions are not
classes) and an explicit ``dataset`` file list. Labels map name -> int with
background 0 (nnU-Net requires consecutive integers, as segline does).

Modalities come from ``channel_names``: "CT" channels get the CT window (make's
WINDOW knob), any other name robust per-channel percentile scaling, exactly as for
MSD non-CT channels (:func:`segline.preprocess.slicing.normalise_channel`); make's
NORM (``--norm``) chooses instead where ``channel_names`` is wrong.

Example:
    >>> adapter = NNUNetAdapter("data/kidney/raw")          # doctest: +SKIP
    >>> adapter.channels, adapter.labels                    # doctest: +SKIP
    (['CT', 'T2'], {0: 'background', 1: 'kidney', 2: 'tumour'})
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

from segline.casestore import sorted_cases
from segline.datasets.msd import INFO_KEYS, TaskFolderCases, find_task_dir
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess.slicing import CaseRecord, register_adapter
from segline.userfile import read_json

#: File endings segline can read (nibabel NIfTI).
READABLE_ENDINGS = (".nii.gz", ".nii")
REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def read_dataset_json(path: Path) -> dict[str, Any]:
    """``dataset.json`` as a dict; any problem (missing, not JSON, not an object) is an
    :class:`InputError` naming the file."""
    meta = read_json(path, "not found (an nnU-Net raw dataset needs dataset.json)")
    if not isinstance(meta, dict):
        raise InputError(path, "must hold a JSON object")
    return meta


def parse_labels(obj: Any, where: Path) -> dict[int, str]:
    """nnU-Net v2 ``labels`` (name -> int) as index -> name, sorted.

    Raises:
        InputError: region-based labels (a list of ints as value), a non-integer
            value, an index given twice, no background 0, or indices not 0..K-1.
    """
    if not isinstance(obj, dict) or not obj:
        raise InputError(where, "'labels' must be a non-empty object {name: int}")
    out: dict[int, str] = {}
    for name, value in obj.items():
        if isinstance(value, list | tuple):
            raise InputError(
                where,
                f"region-based label {name!r}: {value} (regions are not "
                "supported; give each class one integer)",
            )
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(where, f"label {name!r}: value must be an integer, got {value!r}")
        if value in out:
            raise InputError(where, f"labels {out[value]!r} and {name!r} share the value {value}")
        out[value] = str(name)
    if 0 not in out:
        raise InputError(where, "'labels' must map the background to 0")
    if sorted(out) != list(range(len(out))):
        raise InputError(where, f"label values {sorted(out)} are not consecutive 0..{len(out) - 1}")
    return dict(sorted(out.items()))


def parse_channels(obj: Any, where: Path) -> list[str]:
    """``channel_names`` ({"0": "CT", "1": "T2"}) as the list of names in channel order."""
    if not isinstance(obj, dict) or not obj:
        raise InputError(where, "'channel_names' must be a non-empty object {\"0\": name}")
    keys = sorted(obj, key=lambda k: (len(str(k)), str(k)))
    if keys != [str(i) for i in range(len(obj))]:
        raise InputError(where, f'\'channel_names\' keys {list(obj)} are not "0".."{len(obj) - 1}"')
    return [str(obj[str(i)]) for i in range(len(obj))]


@register_adapter("nnunet")
class NNUNetAdapter(TaskFolderCases):
    """Cases of one nnU-Net v2 raw dataset folder (see the module docstring).

    Args:
        raw: the raw folder (``data/<ds>/raw``): the dataset folder itself or a folder
            holding it as its single sub-folder with a ``dataset.json``.

    Raises:
        InputError: a bad ``dataset.json`` or an inconsistent folder, naming the file.
    """

    source: ClassVar[str] = "nnunet"

    def __init__(self, raw: str | os.PathLike[str]) -> None:
        self.raw = Path(raw)
        self.task_dir = find_task_dir(self.raw)
        self.dataset_json = self.task_dir / "dataset.json"
        meta = read_dataset_json(self.dataset_json)
        for key in REQUIRED_KEYS:
            if key not in meta:
                msd = "training" in meta
                hint = " (an MSD task? use DATASET_DIR=<folder> or ADAPTER=msd)" if msd else ""
                raise InputError(self.dataset_json, f"missing key {key!r}{hint}")
        if meta.get("regions_class_order") is not None:
            raise InputError(
                self.dataset_json,
                "region-based labels (regions_class_order) "
                "are not supported; give each class one integer",
            )
        if "dataset" in meta:
            raise InputError(
                self.dataset_json,
                "an explicit 'dataset' file list is not "
                "supported; use the imagesTr/labelsTr/imagesTs folders",
            )
        self.labels: dict[int, str] = parse_labels(meta["labels"], self.dataset_json)
        self.channels: list[str] = parse_channels(meta["channel_names"], self.dataset_json)
        ending = meta["file_ending"]
        if ending not in READABLE_ENDINGS:
            raise InputError(
                self.dataset_json,
                f"file_ending {ending!r} cannot be read "
                f"(segline reads {' or '.join(READABLE_ENDINGS)}); convert to NIfTI",
            )
        self.file_ending: str = ending
        self.name: str = str(meta.get("name") or self.task_dir.name)
        self.info: dict[str, Any] = {"task": self.task_dir.name, "file_ending": ending}
        self.info.update({k: meta[k] for k in INFO_KEYS if isinstance(meta.get(k), str)})
        self._train = self._images(self.task_dir / "imagesTr")
        labels = self._labels(self.task_dir / "labelsTr")
        for cid, files in self._train.items():
            if cid not in labels:
                raise InputError(files[0], f"image has no label (labelsTr/{cid}{ending} missing)")
        for cid, path in labels.items():
            if cid not in self._train:
                raise InputError(path, f"label has no image (imagesTr/{cid}_0000{ending} missing)")
        self._label_files = labels
        num = meta["numTraining"]
        if num != len(self._train):
            raise InputError(
                self.dataset_json,
                f"numTraining is {num!r} but imagesTr holds {len(self._train)} cases",
            )
        test_dir = self.task_dir / "imagesTs"
        self._test = self._images(test_dir) if test_dir.is_dir() else {}
        both = sorted_cases(set(self._train) & set(self._test))
        if both:
            raise InputError(test_dir, f"case ids also in imagesTr: {', '.join(both[:5])}")

    # ------------------------------------------------------------------ listing

    def _files(self, folder: Path) -> list[Path]:
        """The visible files of ``folder``, sorted; each must end in ``file_ending``."""
        if not folder.is_dir():
            raise InputError(folder, "folder missing")
        out = []
        for f in sorted(folder.iterdir()):
            if f.name.startswith("."):
                continue
            if (
                not f.is_file()
                or not f.name.endswith(self.file_ending)
                or len(f.name) == len(self.file_ending)
            ):
                raise InputError(
                    f,
                    f"not a <case>{self.file_ending} file (dataset.json "
                    f"file_ending is {self.file_ending!r})",
                )
            out.append(f)
        return out

    def _images(self, folder: Path) -> dict[str, list[Path]]:
        """Case id -> its channel files in channel order; every channel present."""
        n = len(self.channels)
        found: dict[str, dict[int, Path]] = {}
        for f in self._files(folder):
            match = _CHANNEL.match(f.name[: -len(self.file_ending)])
            if match is None:
                raise InputError(
                    f,
                    "not named <case>_XXXX"
                    + self.file_ending
                    + " (XXXX: the 4-digit channel index)",
                )
            channel = int(match["channel"])
            if channel >= n:
                raise InputError(
                    f,
                    f"channel {channel} but dataset.json declares {n} channel(s) in channel_names",
                )
            found.setdefault(match["case"], {})[channel] = f
        out: dict[str, list[Path]] = {}
        for cid in sorted_cases(found):
            chans = found[cid]
            missing = [c for c in range(n) if c not in chans]
            if missing:
                name = f"{cid}_{missing[0]:04d}{self.file_ending}"
                raise InputError(
                    folder / name,
                    f"missing: case {cid!r} lacks channel "
                    f"{missing[0]} ({self.channels[missing[0]]})",
                )
            out[cid] = [chans[c] for c in range(n)]
        return out

    def _labels(self, folder: Path) -> dict[str, Path]:
        return {f.name[: -len(self.file_ending)]: f for f in self._files(folder)}

    # --------------------------------------------------------------- protocol

    def load(self, case_id: str) -> CaseRecord:
        """Read one case: one 3D volume per channel (same grid) and the label.

        Raises:
            InputError: naming the file: unreadable, not 3D, bad spacing, NaN/inf, or a
                grid (shape, affine) different from the first channel's.
        """
        if case_id in self._train:
            files, label_path = self._train[case_id], self._label_files[case_id]
        elif case_id in self._test:
            files, label_path = self._test[case_id], None
        else:
            raise KeyError(case_id)
        volumes = [geometry.read_nifti(f, "image") for f in files]
        for other in volumes[1:]:
            geometry.check_same_grid(volumes[0], other)
        label = None
        if label_path is not None:
            label = geometry.read_nifti(label_path, "label")
            geometry.check_same_grid(volumes[0], label)
        return CaseRecord(
            case_id=case_id,
            channels=[v.data for v in volumes],
            label=None if label is None else label.data,
            affine=volumes[0].affine,
            spacing_xyz=volumes[0].spacing_xyz,
            image_files=[self._rel(f) for f in files],
            label_file=None if label_path is None else self._rel(label_path),
            label_path=label_path,
        )
