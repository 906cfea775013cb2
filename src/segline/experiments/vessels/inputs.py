"""What the vessel trainer feeds the core's 3D training: pseudo-labels and MIP keys.

Two objects plug into the hooks of :class:`segline.train.loop.Trainer` (and from
there into :class:`segline.data.patches.PatchDataset` and
:func:`segline.train.evaluate.volume_batch`); both are pickled to DataLoader workers
and open their memory maps there, once per case and worker:

- :class:`PseudoLabels` (a :class:`~segline.data.patches.TrainingLabels`): the
  training labels of ``--label-source pseudo``, ``<pseudo>/<case>/pseudo.npy``
  (uint8: 0 background, 1 vessel, 255 unlabelled = ignored by the losses) and their
  signed distance maps ``pseudo_dist3d.npy`` (float32 (K, Z, Y, X), mm), written by
  the pseudo-label stage (:mod:`segline.experiments.vessels.pseudo`);
- :class:`MipInputs` (a :class:`~segline.data.patches.BatchInputs`): the MIP keys the
  MIP loss (:mod:`segline.experiments.vessels.loss`) reads, for a patch or a whole
  volume.

MIP keys. ``<mip>/mip.json`` gives the projection ``axis`` of the stored (Z, Y, X)
volume (0 = z); ``<mip>/<case>/`` holds ``mip_label.npy`` (uint8, the 2D annotation)
and ``depth.npy`` (int16, argmax index along the axis), each of the volume's shape
with that axis removed (the MIP stage, :mod:`segline.experiments.vessels.mip`). For a
patch with origin ``s`` and size ``p``, the footprint is the window of the two other
axes; ``mip_depth = depth - s[axis]`` (relative to the patch), and ``mip_valid`` is 1
only where ``0 <= mip_depth < p[axis]`` (the ray's brightest voxel lies inside the
patch, so this patch can be supervised by the 2D label there), the pixel is inside
the volume, and ``mip_label != 255``. ``mip_depth`` is 0 where ``mip_valid`` is 0 (a
safe ``torch.gather`` index). Keys: ``mip_label`` int64, ``mip_depth`` int64,
``mip_valid`` float32, each (H', W'), and ``mip_axis`` (int). All three axes are
supported.

Example:
    >>> lab = np.array([[1, 0, 1]], np.uint8); dep = np.array([[2, 5, 3]], np.int16)
    >>> l, d, v = mip_window(lab, dep, 0, (2, 0, 1), (3, 1, 3))
    >>> l.tolist(), d.tolist(), v.tolist()
    ([[0, 1, 0]], [[0, 1, 0]], [[0.0, 1.0, 0.0]])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segline.errors import InputError
from segline.experiments.vessels.mip import DEPTH as MIP_DEPTH
from segline.experiments.vessels.mip import MIP_LABEL
from segline.experiments.vessels.mip import STORE_JSON as MIP_JSON

__all__ = [
    "IGNORE",
    "MIP_KEYS",
    "MipInputs",
    "PseudoLabels",
    "mip_window",
    "read_mip_axis",
]

IGNORE = 255
"""Pseudo-label value of unlabelled voxels (:data:`segline.data.patches.IGNORE`)."""
PSEUDO = "pseudo.npy"
PSEUDO_DIST = "pseudo_dist3d.npy"
"""The files :mod:`segline.experiments.vessels.pseudo` writes per case (that module
loads scipy: a stage importing this one need not)."""
MIP_KEYS = frozenset({"mip_label", "mip_depth", "mip_valid", "mip_axis"})
"""The batch keys :class:`MipInputs` gives."""


def _load(path: Path) -> np.ndarray:
    """A memory-mapped ``.npy`` file; a missing one is one :class:`InputError` line."""
    if not path.is_file():
        raise InputError(path, "missing")
    return np.load(path, mmap_mode="r")


def read_mip_axis(mip_root: str | Path) -> int:
    """The projection axis (0, 1 or 2 of the stored (Z, Y, X) volume) in ``mip.json``.

    Args:
        mip_root: the ``mip`` folder (holding ``mip.json`` and one folder per case).

    Returns:
        The axis.

    Raises:
        InputError: ``mip.json`` missing, unreadable or without a valid ``axis``.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "mip.json").write_text(json.dumps({"axis": 1}))
        >>> read_mip_axis(d)
        1
    """
    path = Path(mip_root) / MIP_JSON
    if not path.is_file():
        raise InputError(path, "missing; run the MIP stage (it records the projection axis)")
    try:
        axis = json.loads(path.read_text()).get("axis")
    except (json.JSONDecodeError, AttributeError) as err:
        raise InputError(path, f"not a JSON object: {err}") from None
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise InputError(path, f"'axis' must be 0, 1 or 2, got {axis!r}")
    return int(axis)


def mip_window(
    mip_label: np.ndarray,
    depth: np.ndarray,
    axis: int,
    start: Sequence[int],
    size: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MIP supervision of one patch: its footprint, relative depths, valid rays.

    Args:
        mip_label: (A, B) 2D annotation of the whole case (the volume's shape without
            ``axis``); may be memory-mapped, only the footprint is read.
        depth: (A, B) argmax index of each ray along ``axis`` (whole case).
        axis: projection axis of the (Z, Y, X) volume, 0, 1 or 2.
        start: patch origin (z, y, x) in voxels (>= 0).
        size: patch size (z, y, x) in voxels.

    Returns:
        ``(label, rel_depth, valid)``, each of shape ``size`` without ``axis``:
        ``label`` int64 (0 outside the volume), ``rel_depth`` int64 = depth minus
        ``start[axis]`` where valid else 0, ``valid`` float32, 1 where the pixel is
        inside the volume, ``0 <= rel_depth < size[axis]`` and ``label != 255``.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    others = [a for a in range(3) if a != axis]
    plane = tuple(int(size[a]) for a in others)
    windows = tuple(slice(int(start[a]), int(start[a]) + int(size[a])) for a in others)
    lab = np.asarray(mip_label[windows]).astype(np.int64)
    dep = np.asarray(depth[windows]).astype(np.int64) - int(start[axis])
    inside = (dep >= 0) & (dep < int(size[axis])) & (lab != IGNORE)
    out_label = np.zeros(plane, np.int64)
    out_depth = np.zeros(plane, np.int64)
    out_valid = np.zeros(plane, np.float32)
    real = tuple(slice(0, n) for n in lab.shape)
    out_label[real] = np.where(lab == IGNORE, 0, lab)
    out_depth[real] = np.where(inside, dep, 0)
    out_valid[real] = inside
    return out_label, out_depth, out_valid


class PseudoLabels:
    """The pseudo-label store as the training labels of a 3D training
    (:class:`segline.data.patches.TrainingLabels`).

    Args:
        root: the pseudo-label folder (``data/<ds>/pseudo``).
    """

    name = "pseudo"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def label(self, case: str) -> np.ndarray:
        """``<root>/<case>/pseudo.npy`` (Z, Y, X) uint8, memory-mapped; 255 = unlabelled."""
        return _load(self.root / case / PSEUDO)

    def dist(self, case: str) -> np.ndarray:
        """``<root>/<case>/pseudo_dist3d.npy`` (K, Z, Y, X) float32 mm, memory-mapped."""
        return _load(self.root / case / PSEUDO_DIST)


class MipInputs:
    """The MIP keys of a patch or a whole volume
    (:class:`segline.data.patches.BatchInputs`; module docstring).

    Args:
        root: the MIP folder (``data/<ds>/mip``).
        axis: overrides the axis recorded in ``<root>/mip.json``.

    Raises:
        InputError: ``mip.json`` missing or invalid (when ``axis`` is not given).
        ValueError: ``axis`` not 0, 1 or 2.
    """

    keys = MIP_KEYS

    def __init__(self, root: str | Path, axis: int | None = None) -> None:
        self.root = Path(root)
        self.axis = read_mip_axis(self.root) if axis is None else axis
        if isinstance(self.axis, bool) or self.axis not in (0, 1, 2):
            raise ValueError(f"mip_axis must be 0, 1 or 2, got {axis!r}")
        self.axis = int(self.axis)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the per-worker memory maps."""
        return {**self.__dict__, "_cache": {}}

    def arrays(self, case: str, volume: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The case's 2D label and depth map (memory-mapped, opened once per process),
        checked against the ``volume`` shape (z, y, x) projected along the axis.

        Raises:
            InputError: a file missing, or a shape other than the projected volume's.
        """
        found = self._cache.get(case)
        if found is not None:
            return found
        found = (_load(self.root / case / MIP_LABEL), _load(self.root / case / MIP_DEPTH))
        vol = tuple(int(n) for n in volume)
        plane = tuple(n for a, n in enumerate(vol) if a != self.axis)
        for key, array in zip(("mip_label", "mip_depth"), found, strict=True):
            if tuple(array.shape) != plane:
                raise InputError(
                    self.root / case,
                    f"{key} shape {array.shape} != {plane} (volume {vol}"
                    f" projected along axis {self.axis})",
                )
        self._cache[case] = found
        return found

    def window(
        self, case: str, start: Sequence[int], size: Sequence[int], volume: Sequence[int]
    ) -> dict[str, Any]:
        """The MIP keys of the window ``start``, ``size`` (z, y, x voxels) of ``case``."""
        mip_label, depth = self.arrays(case, volume)
        label, rel, valid = mip_window(mip_label, depth, self.axis, start, size)
        return {"mip_label": label, "mip_depth": rel, "mip_valid": valid, "mip_axis": self.axis}
