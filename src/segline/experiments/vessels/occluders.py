"""Occluders: bright structures (bone) removed before the maximum intensity projection.

In a CT projection, bone is brighter than contrast-enhanced vessels, so on a ray that
crosses both the MIP shows bone and the argmax depth points at bone. A person
annotating the MIP would see bone there; Guo et al. (TMI 2024) therefore remove such
structures from the volume before projecting. segline's 2D label is the projection
of the 3D label (it stands for the annotation of the *visible* MIP, drawn after the
removal), so without the removal the MIP loss and the pseudo-label seeds would read
the bone voxel of every such ray as "vessel".

The occluder mask of a case is every voxel brighter than ``hu`` (Hounsfield units),
grown by ``margin`` voxels (26-neighbourhood, ``margin`` times): the partial-volume
rim of bone lies between soft tissue and bone, so a threshold alone leaves a bright
shell that still outshines the vessels. It is computed in HU, **from the source
image**, not from the case store: the store holds windowed intensities in [0, 1]
(``WINDOW=120,280``: [−20, 260] HU), where bone and the brightest vessels are both
clipped to 1.0 and no threshold above the window's top can be told apart. The source
image (the unpacked NIfTI named in the case's ``meta.json``) is brought onto the
store's grid by replaying the case's recorded transforms (transpose to (Z, Y, X),
crop, pad with −1024 HU, linear resampling with the slicing stage's anti-aliasing).

Example:
    >>> hu = np.zeros((1, 1, 5), np.float32); hu[0, 0, 2] = 900.0
    >>> occluder_mask(hu, 400.0, 0)[0, 0].tolist()
    [False, False, True, False, False]
    >>> occluder_mask(hu, 400.0, 1)[0, 0].tolist()
    [False, True, True, True, False]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segline.errors import InputError
from segline.preprocess.window import is_ct

# scipy, nibabel and the resampling are imported where used: the MIP module imports
# this one, and the vessels report and figures import the MIP module (no scipy at
# their start, tests/test_startup.py).

PAD_HU = -1024.0  # air: what a pad op adds (never an occluder)
CONVENTION = (
    "occluder = voxels of the source image (channel 0, HU, brought onto the stored grid "
    "by replaying meta.json's transforms) with HU > hu, dilated margin times with the "
    "26-neighbourhood; occluder voxels are excluded from the max and the argmax"
)


@dataclass(frozen=True)
class OccluderParams:
    """What the MIP stage removes before projecting.

    Attributes:
        hu: voxels brighter than this (Hounsfield units) are occluders.
        margin: dilation of the thresholded mask, voxels (26-neighbourhood), for the
            partial-volume rim of bone.
    """

    hu: float = 400.0
    margin: int = 1

    def __post_init__(self) -> None:
        if not math.isfinite(self.hu):
            raise ValueError(f"occluder HU must be finite, got {self.hu}")
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or self.margin < 0:
            raise ValueError(f"occluder margin must be an integer >= 0, got {self.margin!r}")


def occluder_mask(hu: np.ndarray, threshold: float, margin: int = 1) -> np.ndarray:
    """Bool mask of the voxels above ``threshold`` HU, dilated ``margin`` times (26-n.).

    Args:
        hu: (Z, Y, X) intensities in HU on the stored grid.
        threshold: HU; strictly brighter voxels are occluders.
        margin: dilation iterations (voxels), 0 for none.
    """
    from scipy import ndimage

    mask = np.asarray(hu) > threshold
    if margin > 0 and mask.any():
        structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
        mask = ndimage.binary_dilation(mask, structure, iterations=margin)
    return mask


def source_hu(raw: str | Path, meta: dict[str, Any]) -> np.ndarray:
    """Channel 0 of a case's source image, in HU, on the stored (Z, Y, X) grid.

    Args:
        raw: the unpacked dataset (``data/<ds>/raw``) the ``meta.json`` paths are
            relative to.
        meta: the case's ``meta.json`` (``source.image``, ``channels``, ``transforms``,
            ``shape``).

    Returns:
        float32 (Z, Y, X) of ``meta["shape"]``.

    Raises:
        InputError: channel 0 is not CT (no HU to threshold), the source file is
            missing or unreadable, or the replayed grid differs from the stored one.
    """
    from segline.preprocess import geometry

    channels = list(meta.get("channels") or [])
    case = meta.get("case_id", "?")
    if not channels or not is_ct(str(channels[0])):
        raise InputError(f"case {case}", f"occluder removal thresholds HU, but channel 0 is "
                         f"{channels[:1]!r}, not CT; set OCCLUDER_HU=none")
    files = list((meta.get("source") or {}).get("image") or [])
    if not files:
        raise InputError(f"case {case}", "meta.json names no source image")
    path = Path(raw) / files[0]
    if not path.is_file():
        raise InputError(path, "missing: the source image of the case (rerun the unpacking)")
    n = len(channels) if len(files) == 1 else 1
    data = geometry.read_nifti(path, "image", channels=n).data
    volume = np.asarray(data if n == 1 else data[..., 0], dtype=np.float32)
    for op in meta.get("transforms") or []:
        volume = geometry.replay(volume, op, PAD_HU)
    if list(volume.shape) != [int(s) for s in meta["shape"]]:
        raise InputError(path, f"replaying the case's transforms gives shape "
                         f"{list(volume.shape)}, not the stored {meta['shape']}")
    return volume
