"""Where EBP places its test pivots: the region of interest (``--roi``).

EBP needs a box to put pivots in. The published code takes the **ground-truth** box
of each test case, though the paper says it does not crop; a test case located with
its own label is no honest test. segline's default is ``pred:<folder>``: the bounding
box of the largest 26-connected component of another trained method's prediction
(e.g. ``results/spleen/gdl``, a make prerequisite of the EBP training), made by that
method's own predictor (:func:`segline.predicting.infer.load_predictor`) on the same
image, so ``segline-predict`` on an unlabelled image places the pivots exactly as the
training's test did. The pivot grid then pads the box by 10 voxels
(:func:`segline.experiments.ebp.geometry.pivot_grid`).

``gt`` (the oracle) takes the box of the case's own label: allowed for a method that
records ``oracle: true`` in its ``args.json``, which the report marks and leaves out
of its statistics; it cannot predict an unlabelled image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segline.errors import InputError
from segline.preprocess.cropping import largest_component
from segline.preprocess.geometry import bounding_box

__all__ = ["Box", "largest_component_box", "parse_roi", "roi_folder"]

Box = tuple[np.ndarray, np.ndarray]
"""(lo, hi): first and one-past-last voxel per axis (z, y, x)."""


def parse_roi(spec: str) -> tuple[str, Path | None]:
    """``("pred", folder)`` for ``pred:<folder>``, ``("gt", None)`` for ``gt``.

    Raises:
        InputError: anything else.
    """
    if spec == "gt":
        return "gt", None
    kind, sep, rest = spec.partition(":")
    if kind == "pred" and sep and rest:
        return "pred", Path(rest)
    raise InputError("--roi (EBP_ROI)", f"expected pred:<method folder> or gt, got {spec!r}")


def roi_folder(spec: str) -> Path | None:
    """The method folder a ``pred:`` region of interest reads (None for ``gt``)."""
    return parse_roi(spec)[1]


def largest_component_box(mask: np.ndarray) -> Box | None:
    """The bounding box of the largest 26-connected component of ``mask`` (ties: the
    first in scan order); None when the mask is empty."""
    ranges = bounding_box(largest_component(np.asarray(mask) > 0, connectivity=3))
    if ranges is None:
        return None
    lo, hi = zip(*ranges, strict=True)
    return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)


class PredictedRoi:
    """The box of another method's prediction (module docstring), its predictor loaded
    once. ``seconds`` of the last :meth:`box` call are kept for the timing table."""

    def __init__(self, folder: Path, store: Any, device: str, amp: str) -> None:
        from segline.predicting.infer import load_predictor

        if not (folder / "args.json").is_file() and not folder.is_dir():
            raise InputError(
                folder,
                "the region-of-interest method is not trained "
                "(train it first: it is a prerequisite of the EBP method)",
            )
        self.folder = folder
        self.predictor = load_predictor(folder, store, device, amp)

    def box(self, image: np.ndarray) -> Box | None:
        """The box of the largest component of the method's labels of ``image``."""
        labels, _ = self.predictor.predict(np.asarray(image, dtype=np.float32))
        return largest_component_box(labels)
