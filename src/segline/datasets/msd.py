"""Adapter for the Medical Segmentation Decathlon (MSD) format (any task).

An unpacked MSD archive is one task folder::

    <raw>/Task09_Spleen/
      dataset.json   "labels" {"0": "background", "1": "spleen"}, "modality" {"0": "CT"},
                     "training" [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}],
                     "test" ["./imagesTs/y.nii.gz"], "numTraining", ...
      imagesTr/ labelsTr/ imagesTs/

The task folder is ``<raw>`` itself when it holds ``dataset.json``, otherwise its
single sub-folder that does. The case id is the file name without ``.nii.gz``.
Training cases are the ``training`` entries, cross-checked against the files on disk
(an image without its label, a label without its image, an entry whose file is
missing and a file that no entry lists are all errors: nothing is skipped silently).
Other string-valued keys of a ``training`` entry (``{"image": ..., "label": ...,
"modality": "MR"}``) are the case's attributes (:meth:`TaskFolderCases.case_attributes`),
which the split can stratify by (make ``STRATIFY=modality``).
``imagesTs`` cases are unlabelled (split ``infer``). Hidden files (``._x.nii.gz``
left by macOS) are ignored. Multi-modal tasks (e.g. BrainTumour, Prostate) store one
4D image (X, Y, Z, modality); each modality becomes one channel.

The nnU-Net v2 spelling (``"labels": {"background": 0, ...}``, ``"channel_names"``)
is accepted too. Label remapping (``--label-map``) is done by the driver, for every
adapter (see :func:`segline.preprocess.slicing.remap_classes`).

Example:
    >>> adapter = MSDAdapter("data/spleen/raw")            # doctest: +SKIP
    >>> adapter.labels, adapter.channels, adapter.labelled()[:2]  # doctest: +SKIP
    ({0: 'background', 1: 'spleen'}, ['CT'], ['spleen_2', 'spleen_3'])
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from segline.casestore import sorted_cases
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess.slicing import CaseRecord, register_adapter
from segline.userfile import read_json

SUFFIXES = (".nii.gz", ".nii")
INFO_KEYS = ("name", "description", "reference", "licence", "license", "release",
             "tensorImageSize")


def case_id_of(name: str) -> str | None:
    """Case id of a NIfTI file name (``spleen_2.nii.gz`` -> ``spleen_2``); None otherwise."""
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def find_task_dir(raw: Path) -> Path:
    """The folder holding ``dataset.json``: ``raw`` itself or its single task sub-folder."""
    if (raw / "dataset.json").is_file():
        return raw
    if not raw.is_dir():
        raise InputError(raw, "raw folder not found")
    found = sorted(d for d in raw.iterdir()
                   if d.is_dir() and not d.name.startswith((".", "__MACOSX"))
                   and (d / "dataset.json").is_file())
    if not found:
        raise InputError(raw, "no MSD task folder (no */dataset.json)")
    if len(found) > 1:
        raise InputError(raw, "several MSD task folders: " + ", ".join(d.name for d in found))
    return found[0]


def _nifti_files(folder: Path) -> dict[str, Path]:
    """Case id -> file for the NIfTI files of ``folder`` (hidden files ignored)."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for f in sorted(folder.iterdir()):
        cid = case_id_of(f.name)
        if cid is None or f.name.startswith(".") or not f.is_file():
            continue
        if cid in out:
            raise InputError(f, f"case {cid!r} present twice ({out[cid].name}, {f.name})")
        out[cid] = f
    return out


def _int_keyed(obj: Any, key: str, where: Path) -> dict[int, str]:
    """Parse ``{"0": "name", ...}`` (MSD) or ``{"name": 0, ...}`` (nnU-Net v2)."""
    if not isinstance(obj, dict) or not obj:
        raise InputError(where, f"{key!r} must be a non-empty object")
    out: dict[int, str] = {}
    try:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in obj.values()):
            items = [(int(v), str(k)) for k, v in obj.items()]
        else:
            items = [(int(k), str(v)) for k, v in obj.items()]
    except (TypeError, ValueError):
        raise InputError(where, f"{key!r}: keys must be integers, got {list(obj)}") from None
    for idx, name in items:
        if idx in out:
            raise InputError(where, f"{key!r}: index {idx} declared twice")
        out[idx] = name
    return dict(sorted(out.items()))


class TaskFolderCases:
    """The case lists of a task folder adapter (MSD, nnU-Net v2): ``_train`` (labelled,
    ``imagesTr``) and ``_test`` (``imagesTs``) in natural order, per-case attributes
    (``_attributes``: what the dataset file says of a case, none unless set), and paths
    relative to the raw folder, as the ``Adapter`` protocol asks."""

    raw: Path
    _train: list[str]
    _test: list[str]
    _attributes: dict[str, dict[str, str]]

    def case_attributes(self) -> dict[str, dict[str, str]]:
        """Case id -> attribute -> value, for the split's strata
        (:func:`segline.preprocess.slicing.choose_split`): an MSD ``dataset.json``
        ``training`` entry's extra string keys; empty when the dataset file gives none
        (nnU-Net v2 lists no cases), so only the built-in ``prefix`` and ``modality``
        exist (:func:`segline.preprocess.split.builtin_attributes`)."""
        given = getattr(self, "_attributes", {})
        return {case: dict(attrs) for case, attrs in given.items()}

    def labelled(self) -> list[str]:
        """Training case ids (with labels), natural order."""
        return list(self._train)

    def unlabelled(self) -> list[str]:
        """``imagesTs`` case ids, natural order."""
        return list(self._test)

    def _rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.raw)).as_posix()


@register_adapter("msd")
class MSDAdapter(TaskFolderCases):
    """Cases of one MSD task folder (see the module docstring).

    Args:
        raw: the unpacked raw folder (``data/<ds>/raw``).

    Raises:
        InputError: missing or garbled ``dataset.json``, unpaired or unlisted files.
    """

    source: ClassVar[str] = "msd"

    def __init__(self, raw: str | os.PathLike[str]) -> None:
        self.raw = Path(raw)
        self.task_dir = find_task_dir(self.raw)
        self.dataset_json = self.task_dir / "dataset.json"
        meta = self._read_dataset_json()
        self.labels: dict[int, str] = _int_keyed(meta.get("labels"), "labels", self.dataset_json)
        if 0 not in self.labels:
            raise InputError(self.dataset_json, "'labels' must declare class 0 (background)")
        mods = meta.get("modality", meta.get("channel_names"))
        modalities = _int_keyed(mods, "modality", self.dataset_json)
        if sorted(modalities) != list(range(len(modalities))):
            raise InputError(self.dataset_json, f"'modality' indices {sorted(modalities)} "
                             f"are not 0..{len(modalities) - 1}")
        self.channels: list[str] = [modalities[i] for i in range(len(modalities))]
        self.name: str = str(meta.get("name") or self.task_dir.name)
        self.info: dict[str, Any] = {"task": self.task_dir.name}
        self.info.update({k: meta[k] for k in INFO_KEYS if isinstance(meta.get(k), str)})
        self._attributes: dict[str, dict[str, str]] = {}
        self._train = self._list_training(meta)
        self._test = self._list_test(meta)
        both = sorted(set(self._train) & set(self._test))
        if both:
            raise InputError(self.dataset_json, f"case ids in both imagesTr and imagesTs: "
                             f"{', '.join(both[:5])}")

    # ------------------------------------------------------------------ listing

    def _read_dataset_json(self) -> dict[str, Any]:
        meta = read_json(self.dataset_json, "not found (an MSD task folder needs dataset.json)")
        if not isinstance(meta, dict):
            raise InputError(self.dataset_json, "must hold a JSON object")
        for key in ("labels", "training"):
            if key not in meta:
                nnunet = key == "training" and ("file_ending" in meta or "channel_names" in meta)
                hint = (" (an nnU-Net v2 dataset: use ADAPTER=nnunet, or NNUNET_DATASET=<folder>)"
                        if nnunet else "")
                raise InputError(self.dataset_json, f"missing key {key!r}{hint}")
        if "modality" not in meta and "channel_names" not in meta:
            raise InputError(self.dataset_json, "missing key 'modality'")
        return meta

    def _entry(self, value: Any, folder: str, what: str) -> str:
        """Case id of a dataset.json file entry that must lie in ``folder``."""
        if not isinstance(value, str):
            raise InputError(self.dataset_json, f"{what}: expected a file path, got {value!r}")
        parts = [p for p in PurePosixPath(value).parts if p not in (".", "")]
        cid = case_id_of(parts[-1]) if parts else None
        if len(parts) != 2 or parts[0] != folder or cid is None:
            raise InputError(self.dataset_json,
                             f"{what}: {value!r} is not ./{folder}/<case>.nii.gz")
        return cid

    def _list_training(self, meta: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
        images_dir, labels_dir = self.task_dir / "imagesTr", self.task_dir / "labelsTr"
        for d in (images_dir, labels_dir):
            if not d.is_dir():
                raise InputError(d, "folder missing")
        images, labels = _nifti_files(images_dir), _nifti_files(labels_dir)
        lonely = sorted_cases(set(images) - set(labels))
        if lonely:
            cid = lonely[0]
            raise InputError(images[cid], f"image has no label (labelsTr/{cid}.nii.gz missing)")
        lonely = sorted_cases(set(labels) - set(images))
        if lonely:
            cid = lonely[0]
            raise InputError(labels[cid], f"label has no image (imagesTr/{cid}.nii.gz missing)")
        entries = meta["training"]
        if not isinstance(entries, list):
            raise InputError(self.dataset_json, "'training' must be a list")
        listed: list[str] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise InputError(self.dataset_json,
                                 f"training[{i}] must have 'image' and 'label'")
            cid = self._entry(entry["image"], "imagesTr", f"training[{i}].image")
            if self._entry(entry["label"], "labelsTr", f"training[{i}].label") != cid:
                raise InputError(self.dataset_json,
                                 f"training[{i}]: image and label name different cases")
            if cid not in images:
                raise InputError(self.dataset_json,
                                 f"training[{i}]: imagesTr/{cid}.nii.gz missing")
            listed.append(cid)
            extra = {k: v for k, v in entry.items()
                     if k not in ("image", "label") and isinstance(k, str) and isinstance(v, str)}
            if extra:
                self._attributes[cid] = dict(sorted(extra.items()))
        if len(set(listed)) != len(listed):
            raise InputError(self.dataset_json, "'training' lists a case twice")
        unlisted = sorted_cases(set(images) - set(listed))
        if unlisted:
            raise InputError(images[unlisted[0]], "not listed in dataset.json 'training'")
        num = meta.get("numTraining")
        if num is not None and num != len(listed):
            raise InputError(self.dataset_json,
                             f"numTraining is {num} but 'training' lists {len(listed)} cases")
        return {cid: (images[cid], labels[cid]) for cid in sorted_cases(listed)}

    def _list_test(self, meta: dict[str, Any]) -> dict[str, Path]:
        entries = meta.get("test", [])
        if not isinstance(entries, list):
            raise InputError(self.dataset_json, "'test' must be a list")
        images = _nifti_files(self.task_dir / "imagesTs")
        listed: list[str] = []
        for i, entry in enumerate(entries):
            value = entry.get("image") if isinstance(entry, dict) else entry
            cid = self._entry(value, "imagesTs", f"test[{i}]")
            if cid not in images:
                raise InputError(self.dataset_json, f"test[{i}]: imagesTs/{cid}.nii.gz missing")
            listed.append(cid)
        unlisted = sorted_cases(set(images) - set(listed))
        if unlisted:
            raise InputError(images[unlisted[0]], "not listed in dataset.json 'test'")
        return {cid: images[cid] for cid in sorted_cases(listed)}

    # --------------------------------------------------------------- protocol

    def load(self, case_id: str) -> CaseRecord:
        """Read one case: image (3D, or 4D with one volume per modality) and label.

        Raises:
            InputError: naming the file: unreadable, wrong dimensionality, bad
                spacing, NaN/inf, label grid (shape, affine) different from the image.
        """
        if case_id in self._train:
            image_path, label_path = self._train[case_id]
        elif case_id in self._test:
            image_path, label_path = self._test[case_id], None
        else:
            raise KeyError(case_id)
        n = len(self.channels)
        image = geometry.read_nifti(image_path, "image", channels=n)
        label = None
        if label_path is not None:
            label = geometry.read_nifti(label_path, "label")
            geometry.check_same_grid(image, label)
        chans = [image.data] if n == 1 else [image.data[..., c] for c in range(n)]
        return CaseRecord(
            case_id=case_id,
            channels=chans,
            label=None if label is None else label.data,
            affine=image.affine,
            spacing_xyz=image.spacing_xyz,
            image_files=[self._rel(image_path)],
            label_file=None if label_path is None else self._rel(label_path),
            label_path=label_path,
        )
