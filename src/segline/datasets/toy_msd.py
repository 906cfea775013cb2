"""The Medical Segmentation Decathlon layout shared by the MSD-format toy sets.

``toy_spleen`` and ``toy_vessels`` differ in what their volumes show; how a case is
named, what ``dataset.json`` holds and how the files sit in the archive are the same
(the layout of the real MSD tars), and live here::

    <TaskNN_Name>/dataset.json
    <TaskNN_Name>/imagesTr/<case>.nii.gz, labelsTr/<case>.nii.gz   (labelled)
    <TaskNN_Name>/imagesTs/<case>.nii.gz                            (unlabelled)
    ... plus a ``._<name>`` AppleDouble file next to each (macOS junk, like the real tars)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from segline.datasets.deterministic import APPLEDOUBLE, CounterRNG, Entry, nifti_gz_bytes


@dataclass(frozen=True)
class MsdToyCase:
    """One generated case of an MSD-format toy set, as its NIfTI files hold it.

    Subclasses (one per toy set) set :attr:`case_prefix` and :attr:`digits` and
    document what the arrays hold.

    Attributes:
        number: the case number N (file ``<prefix>N.nii.gz``).
        image: (X, Y, Z) int16, Hounsfield units.
        label: (X, Y, Z) uint8 class indices; kept for unlabelled cases too, whose
            label is not written to the archive.
        affine: 4×4 float64 voxel → world (mm) map, as stored in the header.
        labelled: whether the case goes to imagesTr/labelsTr (else imagesTs).
    """

    case_prefix: ClassVar[str] = "case_"
    digits: ClassVar[int] = 0  # zero-padding of the number in file names

    number: int
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    labelled: bool

    @property
    def case_id(self) -> str:
        """``<prefix><number>`` (the file name without ``.nii.gz``)."""
        return f"{self.case_prefix}{self.number:0{self.digits}d}"

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size (x, y, z) in mm, NIfTI order (the case store uses (z, y, x))."""
        d = np.abs(np.diag(self.affine)[:3])
        return float(d[0]), float(d[1]), float(d[2])


def msd_dataset_json(
    cases: Sequence[MsdToyCase],
    seed: int,
    *,
    name: str,
    description: str,
    reference: str,
    labels: dict[str, str],
    listing_key: str,
) -> dict[str, object]:
    """A ``dataset.json`` with the real file's keys, in the real file's order.

    The training list is in a shuffled order (drawn from ``seed`` and ``listing_key``),
    as in the real files, so readers must sort it themselves; the real files spell
    "release" as "relase".
    """
    train = [c for c in cases if c.labelled]
    test = [c for c in cases if not c.labelled]
    order = CounterRNG(seed, listing_key, "listing").permutation(len(train)).tolist()
    return {
        "name": name,
        "description": description,
        "reference": reference,
        "licence": "CC0 1.0 (synthetic data)",
        "relase": "toy 1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": labels,
        "numTraining": len(train),
        "numTest": len(test),
        "training": [
            {
                "image": f"./imagesTr/{train[n].case_id}.nii.gz",
                "label": f"./labelsTr/{train[n].case_id}.nii.gz",
            }
            for n in order
        ],
        "test": [f"./imagesTs/{c.case_id}.nii.gz" for c in test],
    }


def msd_entries(
    task_dir: str, cases: Sequence[MsdToyCase], meta: dict[str, object], junk: bool = True
) -> list[Entry]:
    """The archive's files as ``(path, bytes)``, sorted by path (no folder entries).

    Args:
        task_dir: the top folder, e.g. ``Task09_Spleen``.
        cases: the cases (labelled ones go to imagesTr/labelsTr, others to imagesTs).
        meta: the ``dataset.json`` content.
        junk: add a ``._*`` AppleDouble file next to every file (the unpack stage must
            drop them).
    """
    files: dict[str, bytes] = {
        f"{task_dir}/dataset.json": (json.dumps(meta, indent=4) + "\n").encode("ascii")
    }
    for case in cases:
        name = f"{case.case_id}.nii.gz"
        if case.labelled:
            files[f"{task_dir}/imagesTr/{name}"] = nifti_gz_bytes(case.image, case.affine)
            files[f"{task_dir}/labelsTr/{name}"] = nifti_gz_bytes(case.label, case.affine)
        else:
            files[f"{task_dir}/imagesTs/{name}"] = nifti_gz_bytes(case.image, case.affine)
    if junk:
        for path in list(files):
            folder, _, base = path.rpartition("/")
            files[f"{folder}/._{base}"] = APPLEDOUBLE
    return sorted(files.items())
