"""3D pseudo-labels from a 2D MIP annotation and the image (after Guo et al., TMI 2024).

A 2D label on the maximum intensity projection (MIP) says, for every ray through the
volume, whether it meets a vessel. Together with the image this fixes part of the 3D
label; the rest is left *unlabelled* (255) and ignored by the losses. Per case, from
the image's channel 0 (I), the 2D label L and the argmax depths of the MIP stage
(:mod:`segline.experiments.vessels.mip`), with ``fg_class`` = 1 (vessel):

1. **Seeds**: for every pixel with ``L == fg_class``, the voxel at its argmax depth
   (the voxel the annotator saw). ``s`` = mean image value of the seeds, i.e. the
   mean MIP value over the labelled pixels.
2. **Foreground (1)**: voxels on the rays of labelled pixels with ``I >= fg_rel · s``,
   grouped into connected components (:func:`scipy.ndimage.label`, 26-connectivity by
   default: thin oblique vessels are often connected only through an edge or a corner
   of a voxel, most of all in thick-slice CT; 6 is available). A component is kept
   when it **contains at least one seed** and has **at least** ``min_size`` voxels.
   Restricting the candidates to the labelled rays loses nothing when the annotation
   is a projection of the vessels (every vessel voxel projects onto a labelled pixel)
   and stops bright structures beside the vessels from joining a component. A seed
   darker than the threshold (e.g. on a partial-volume edge) is not foreground itself.
3. **Background (0)**: voxels on the rays of pixels with ``L == 0`` (the annotator
   saw no vessel there) that are *not brighter* than ``bg_factor · s`` (``I <= bg_factor
   · s``); brighter voxels on those rays stay unlabelled (a vessel hidden behind a
   brighter structure, a missed small vessel, noise).
4. **Unlabelled (255)**: everything else (the rest of the labelled rays, bright voxels
   on unlabelled rays, rays whose 2D label is neither 0 nor ``fg_class``).

**The reference's rules** (``rules="reference"``, make's ``PSEUDO=reference``;
:func:`pseudo_label_reference`, :class:`ReferenceParams`), as the published code of
Guo et al. grows them, with ``s`` the same seed mean:

1. **Foreground (1)**: the *whole volume* thresholded at ``I > 1.0 · s`` (strictly
   greater), components with 26-connectivity; a component is kept when it contains a
   seed and has at least 10 voxels. **Seeds are always foreground**, even below the
   threshold. Candidates are not restricted to the labelled rays, so a bright
   structure touching a vessel off its rays joins it.
2. **Background (0)**: the voxels on the rays of pixels labelled 0, except those
   brighter than ``1.2 · s`` (``I > 1.2 · s`` leaves the background); *plus every
   voxel of the volume*, on any ray, darker than ``0.2 · s`` (``I < 0.2 · s``). Both
   factors multiply the seed mean ``s`` (the mean image value at the seeds), as the
   foreground threshold does.
3. Where a voxel meets both rules (a kept component on a ray labelled 0, a seed
   darker than ``0.2 · s``), **foreground wins**. The reference keeps two separate
   masks and applies both losses to such a voxel; one label map must choose, and the
   seeds must stay foreground.
4. **Unlabelled (255)**: everything else.

Differences that remain: the reference thresholds its foreground on the image
min-max normalised per volume (2.5 % of the range cut at both ends) and its
background on the unnormalised image, each with its own seed mean; segline applies
both rules to the case store's intensities (the windowed CT), one scale for both.

A case whose 2D label is empty has no seeds: ``s`` is undefined (NaN in the table), no
voxel is foreground and every voxel is background (all rays are unlabelled pixels;
nothing to compare brightness with), under either rule set.

**Intensities.** The thresholds are fractions of ``s``, measured from 0, so they
assume an intensity scale whose 0 means "dark" (MRA, or CT after windowing, where the
case store holds values in [0, 1]: 0 at ``level − width/2`` HU). With CT they then
depend on the window: the darker the liver is in the window, the better the fixed
fractions separate it from the vessels. With the soft-tissue window 40,400 ([−160,
240] HU) liver at ~60 HU sits at 0.55 and vessels at ~200 HU at 0.9, so ``bg_factor``
0.5 (0.45) would leave most of the liver unlabelled; a vessel window such as 100,300
([−50, 250] HU: liver 0.37, vessels 0.83) or 120,280 suits the defaults. On the toy
set (seed 0, defaults) the pooled foreground precision / background recall are 0.70 /
0.003 with the window 40,400, 0.93 / 0.72 with 100,300 and 0.97 / 0.79 with 120,280
(foreground recall 1.0 throughout; measured before the toy had its bone bar: with
the bar and the MIP stage's default occluder removal, 120,280 gives 0.97 / 0.78, and
without the removal 0.85 / 0.79, the bar's voxels taken for vessel). Raw HU
(``--no-window``) must not be used: negative values break "fraction of".

Under both rule sets the occluders of the MIP stage (its ``occluder.npy``: bone above
``OCCLUDER_HU``) are background: they are not vessel by definition, and left unlabelled
(bright, off the labelled rays) they were learnt as vessel.

The stage also writes, per case, the signed distance maps of the pseudo-label
(:func:`segline.distmaps.volume_signed_distance`, K = 2, mm, unlabelled counted as
background) for the boundary loss, and a quality table against the true 3D labels
(the only use of the 3D labels here): foreground precision ``|fg ∩ T| / |fg|`` and
recall ``|fg ∩ T| / |T|`` with ``T = (label == fg_class)``, the same for the background
label against ``~T``, and the fraction of voxels left unlabelled. The ``all`` row pools
the voxel counts of every case (ratios of sums, not means of ratios). An empty
denominator gives NaN.

The store (``data/<ds>/pseudo``, written atomically)::

    <out>/<case_id>/pseudo.npy         uint8 (Z, Y, X): 0 bg, 1 fg, 255 unlabelled
    <out>/<case_id>/pseudo_dist3d.npy  float32 (2, Z, Y, X), mm
    <out>/quality.csv, quality.md      per case + pooled, see QUALITY_COLUMNS
    <out>/pseudo.json                  parameters, conventions, per-case thresholds

Example:
    >>> img = np.zeros((3, 1, 4), np.float32); img[1, 0, 1:3] = 1.0; img[2, 0, 3] = 0.9
    >>> lab2d = np.array([[0, 1, 1, 0]], np.uint8)
    >>> from segline.experiments.vessels.mip import mip_and_depth
    >>> _, depth = mip_and_depth(img, 0)
    >>> res = pseudo_label(img, lab2d, depth, 0, PseudoParams(min_size=1))
    >>> res.label[:, 0, :].tolist()   # the bright voxel at x=3 is on an unlabelled ray
    [[0, 255, 255, 0], [0, 1, 1, 0], [0, 255, 255, 255]]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from segline import atomic
from segline.casestore import CaseStore
from segline.cli import HelpFormatter, cli_of, non_negative_float, positive_int, prog
from segline.csvio import csv_text
from segline.distmaps import volume_signed_distance
from segline.errors import InputError
from segline.experiments.vessels import mip as mipmod
from segline.parallel import map_cases

IGNORE = 255
FG, BG = 1, 0
CONNECTIVITIES = (6, 26)
RULES = ("segline", "reference")
PSEUDO = "pseudo.npy"
PSEUDO_DIST = "pseudo_dist3d.npy"
QUALITY_CSV = "quality.csv"
QUALITY_MD = "quality.md"
STORE_JSON = "pseudo.json"
OVERALL = "all"
QUALITY_COLUMNS = (
    "case", "split", "n_voxels", "n_true", "n_fg", "n_bg", "n_unlabelled", "fg_tp", "bg_tp",
    "fg_precision", "fg_recall", "bg_precision", "bg_recall", "unlabelled_fraction",
    "n_seeds", "seed_mean", "fg_threshold", "bg_threshold", "n_components", "n_kept",
)
CONVENTION = (
    "pseudo.npy uint8 (Z, Y, X): 1 = voxels on labelled rays with I >= fg_rel*s in a "
    "connected component (scipy.ndimage.label, given connectivity) containing a seed "
    "(argmax voxel of a labelled MIP pixel) and of >= min_size voxels; 0 = voxels on "
    "rays of MIP pixels labelled 0 with I <= bg_factor*s; 255 = unlabelled (ignored); "
    "s = mean image value (channel 0) at the seeds; pseudo_dist3d.npy = signed distance "
    "maps (K=2, mm) of pseudo == 1 (unlabelled counted as background)"
)
REFERENCE_CONVENTION = (
    "pseudo.npy uint8 (Z, Y, X), the reference's rules: 1 = seeds (argmax voxel of a "
    "labelled MIP pixel) and voxels of the whole volume with I > fg_rel*s in a "
    "26-connected component containing a seed and of >= min_size voxels; 0 = (voxels "
    "on rays of MIP pixels labelled 0 with I <= bg_high*s) or (any voxel with "
    "I < bg_low*s), unless 1; 255 = unlabelled (ignored); s = mean image value "
    "(channel 0) at the seeds; pseudo_dist3d.npy = signed distance maps (K=2, mm) of "
    "pseudo == 1 (unlabelled counted as background)"
)


@dataclass(frozen=True)
class PseudoParams:
    """Thresholds of the pseudo-label rules (module docstring).

    Attributes:
        fg_rel: foreground threshold as a fraction of the mean seed intensity.
        bg_factor: background voxels may be at most this fraction of the seed mean.
        min_size: smallest foreground component kept, in voxels.
        connectivity: 26 (faces, edges, corners; default) or 6 (faces only).
    """

    fg_rel: float = 0.7
    bg_factor: float = 0.5
    min_size: int = 10
    connectivity: int = 26

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fg_rel) and self.fg_rel > 0):
            raise ValueError(f"fg_rel must be finite and > 0, got {self.fg_rel}")
        if not (math.isfinite(self.bg_factor) and self.bg_factor >= 0):
            raise ValueError(f"bg_factor must be finite and >= 0, got {self.bg_factor}")
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) or \
                self.min_size < 1:
            raise ValueError(f"min_size must be an integer >= 1, got {self.min_size!r}")
        if self.connectivity not in CONNECTIVITIES:
            raise ValueError(f"connectivity must be 6 or 26, got {self.connectivity!r}")


@dataclass(frozen=True)
class ReferenceParams:
    """The published code's pseudo-label constants (module docstring, "the
    reference's rules"); fixed, recorded in ``pseudo.json``.

    Attributes:
        fg_rel: foreground: ``I > fg_rel · s`` over the whole volume.
        min_size: smallest kept component, voxels (a component of 9 is dropped).
        bg_high: background on rays labelled 0 unless ``I > bg_high · s``.
        bg_low: background anywhere when ``I < bg_low · s``.
        connectivity: 26 (scikit-image's default for a 3D volume).
    """

    fg_rel: float = 1.0
    min_size: int = 10
    bg_high: float = 1.2
    bg_low: float = 0.2
    connectivity: int = 26


@dataclass(frozen=True)
class PseudoLabel:
    """One case's pseudo-label and the numbers that made it.

    Attributes:
        label: uint8 (Z, Y, X), 0 background, 1 foreground, 255 unlabelled.
        n_seeds: seeds (= labelled MIP pixels).
        seed_mean: mean intensity at the seeds (NaN without seeds).
        fg_threshold: ``fg_rel · seed_mean`` (NaN without seeds).
        bg_threshold: ``bg_factor · seed_mean`` (NaN without seeds).
        n_components: candidate components (above the threshold on labelled rays).
        n_kept: components kept (containing a seed, large enough).
    """

    label: np.ndarray
    n_seeds: int
    seed_mean: float
    fg_threshold: float
    bg_threshold: float
    n_components: int
    n_kept: int


def rays(mask2d: np.ndarray, axis: int, shape: Sequence[int]) -> np.ndarray:
    """The 3D voxels on the rays of a 2D mask: ``mask2d`` repeated along ``axis``.

    Returns a read-only broadcast view of ``shape`` (no memory per voxel).

    Example:
        >>> rays(np.array([[True, False]]), 0, (2, 1, 2)).tolist()
        [[[True, False]], [[True, False]]]
    """
    ax = mipmod.check_axis(axis, len(shape))
    return np.broadcast_to(np.expand_dims(np.asarray(mask2d, bool), ax), tuple(shape))


def seed_mask(annotated: np.ndarray, depth: np.ndarray, axis: int,
              shape: Sequence[int]) -> np.ndarray:
    """Bool volume of ``shape``: True at the argmax depth of every annotated pixel.

    Args:
        annotated: 2D bool, the labelled (foreground) MIP pixels.
        depth: 2D integer argmax depths (same shape).
        axis: the projection axis.
        shape: the volume's shape.

    Example:
        >>> seed_mask(np.array([[True, False]]), np.array([[1, 0]]), 0, (2, 1, 2)).tolist()
        [[[False, False]], [[True, False]]]
    """
    ax = mipmod.check_axis(axis, len(shape))
    ann = np.asarray(annotated, bool)
    dep = np.asarray(depth)
    plane = tuple(n for a, n in enumerate(shape) if a != ax)
    if ann.shape != plane or dep.shape != plane:
        raise ValueError(f"2D label {ann.shape} / depth {dep.shape} must be {plane}")
    where = np.nonzero(ann)
    d = dep[where].astype(np.intp)
    if d.size and (int(d.min()) < 0 or int(d.max()) >= shape[ax]):
        raise ValueError(f"depths outside 0..{shape[ax] - 1}")
    index = list(where)
    index.insert(ax, d)
    out = np.zeros(tuple(shape), dtype=bool)
    out[tuple(index)] = True
    return out


def _bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the True voxels (None if there are none)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


@dataclass
class _Start:
    """What both rule sets start from: the checked volume and axis, the annotated MIP
    pixels, the seeds (their voxels at the argmax depth), an all-unlabelled output and
    the rays with no vessel in the 2D label."""

    vol: np.ndarray
    ax: int
    annotated: np.ndarray
    seeds: np.ndarray
    n_seeds: int
    out: np.ndarray
    no_vessel: np.ndarray

    @classmethod
    def of(cls, volume: np.ndarray, mip_label: np.ndarray, depth: np.ndarray, axis: int,
           fg_class: int) -> _Start:
        """Check and derive the common inputs (ValueError: not 3D, bad axis or depths)."""
        vol = np.asarray(volume)
        if vol.ndim != 3:
            raise ValueError(f"volume must be 3D (Z, Y, X), got shape {vol.shape}")
        ax = mipmod.check_axis(axis, 3)
        lab2d = np.asarray(mip_label)
        annotated = lab2d == fg_class
        return cls(vol, ax, annotated, seed_mask(annotated, depth, ax, vol.shape),
                   int(np.count_nonzero(annotated)),
                   np.full(vol.shape, IGNORE, dtype=np.uint8),
                   rays(lab2d == 0, ax, vol.shape))

    def no_seed_label(self) -> PseudoLabel:
        """No annotated pixel: background on every ray, the rest unlabelled."""
        self.out[self.no_vessel] = BG
        nan = float("nan")
        return PseudoLabel(self.out, 0, nan, nan, nan, 0, 0)


def pseudo_label(
    volume: np.ndarray,
    mip_label: np.ndarray,
    depth: np.ndarray,
    axis: int = 0,
    params: PseudoParams | None = None,
    fg_class: int = FG,
) -> PseudoLabel:
    """Pseudo-label of one volume from its 2D MIP label (rules in the module docstring).

    Args:
        volume: (Z, Y, X) intensities (channel 0 of the case store's image).
        mip_label: 2D annotation of the MIP (volume shape without ``axis``).
        depth: 2D argmax depths of the image along ``axis`` (the MIP stage's).
        axis: the projection axis.
        params: thresholds (defaults: :class:`PseudoParams`).
        fg_class: the 2D label value meaning "vessel" (0 means "no vessel").

    Returns:
        The label (uint8, 0/1/255) and the thresholds used.

    Raises:
        ValueError: mismatched shapes, bad axis or depths.
    """
    p = params or PseudoParams()
    start = _Start.of(volume, mip_label, depth, axis, fg_class)
    if start.n_seeds == 0:
        return start.no_seed_label()
    vol, ax, annotated, seeds = start.vol, start.ax, start.annotated, start.seeds
    n_seeds, out, no_vessel = start.n_seeds, start.out, start.no_vessel
    seed_mean = float(np.mean(vol[seeds], dtype=np.float64))
    fg_thr = p.fg_rel * seed_mean
    bg_thr = p.bg_factor * seed_mean
    candidate = (vol >= fg_thr) & rays(annotated, ax, vol.shape)
    n_comp = n_kept = 0
    box = _bbox(candidate)
    if box is not None:
        structure = ndimage.generate_binary_structure(3, 1 if p.connectivity == 6 else 3)
        comps, n_comp = ndimage.label(candidate[box], structure=structure)
        sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
        keep = np.zeros(n_comp + 1, dtype=bool)
        keep[comps[seeds[box]]] = True
        keep &= sizes >= p.min_size
        keep[0] = False
        n_kept = int(np.count_nonzero(keep))
        fg_box = keep[comps]
        out[box][fg_box] = FG
    out[no_vessel & (vol <= bg_thr)] = BG
    return PseudoLabel(out, n_seeds, seed_mean, fg_thr, bg_thr, int(n_comp), n_kept)


def pseudo_label_reference(
    volume: np.ndarray,
    mip_label: np.ndarray,
    depth: np.ndarray,
    axis: int = 0,
    params: ReferenceParams | None = None,
    fg_class: int = FG,
) -> PseudoLabel:
    """Pseudo-label of one volume by the reference's rules (module docstring).

    Args:
        volume: (Z, Y, X) intensities (channel 0 of the case store's image).
        mip_label: 2D annotation of the MIP (volume shape without ``axis``).
        depth: 2D argmax depths of the image along ``axis`` (the MIP stage's).
        axis: the projection axis.
        params: the constants (defaults: the reference's, :class:`ReferenceParams`).
        fg_class: the 2D label value meaning "vessel" (0 means "no vessel").

    Returns:
        The label (uint8, 0/1/255); ``fg_threshold`` is ``fg_rel · s`` and
        ``bg_threshold`` the upper bound ``bg_high · s`` on the rays labelled 0.

    Raises:
        ValueError: mismatched shapes, bad axis or depths.

    Example:
        >>> img = np.zeros((3, 1, 4), np.float32); img[1, 0, 1:3] = 1.0
        >>> img[0, 0, 3] = 0.5; img[2, 0, 0] = 0.1
        >>> lab2d = np.array([[0, 1, 1, 0]], np.uint8)
        >>> from segline.experiments.vessels.mip import mip_and_depth
        >>> _, depth = mip_and_depth(img, 0)
        >>> res = pseudo_label_reference(img, lab2d, depth, 0)
        >>> res.label[:, 0, :].tolist()  # seeds fg; I < 0.2 s bg on every ray
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    p = params or ReferenceParams()
    start = _Start.of(volume, mip_label, depth, axis, fg_class)
    if start.n_seeds == 0:
        return start.no_seed_label()
    vol, seeds = start.vol, start.seeds
    n_seeds, out, no_vessel = start.n_seeds, start.out, start.no_vessel
    seed_mean = float(np.mean(vol[seeds], dtype=np.float64))
    fg_thr = p.fg_rel * seed_mean
    structure = ndimage.generate_binary_structure(3, 1 if p.connectivity == 6 else 3)
    comps, n_comp = ndimage.label(vol > fg_thr, structure=structure)
    sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
    keep = np.zeros(n_comp + 1, dtype=bool)
    keep[comps[seeds]] = True
    keep &= sizes >= p.min_size
    keep[0] = False
    fg = keep[comps] | seeds
    bg = (no_vessel & (vol <= p.bg_high * seed_mean)) | (vol < p.bg_low * seed_mean)
    out[bg] = BG
    out[fg] = FG
    return PseudoLabel(out, n_seeds, seed_mean, fg_thr, p.bg_high * seed_mean, int(n_comp),
                       int(np.count_nonzero(keep)))


# ---------------------------------------------------------------------------- quality


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def quality(pseudo: np.ndarray, truth: np.ndarray, fg_class: int = FG) -> dict[str, Any]:
    """Voxel counts and precision/recall of a pseudo-label against the true 3D label.

    Args:
        pseudo: uint8 (Z, Y, X), 0 / 1 / 255.
        truth: (Z, Y, X) class indices; ``truth == fg_class`` is the true vessel.
        fg_class: the vessel class of ``truth``.

    Returns:
        ``n_voxels, n_true, n_fg, n_bg, n_unlabelled, fg_tp, bg_tp`` (ints) and
        ``fg_precision, fg_recall, bg_precision, bg_recall, unlabelled_fraction``
        (floats; NaN for an empty denominator).

    Example:
        >>> q = quality(np.array([1, 1, 0, 255], np.uint8), np.array([1, 0, 0, 1]))
        >>> q["fg_precision"], q["fg_recall"], q["bg_precision"], q["unlabelled_fraction"]
        (0.5, 0.5, 1.0, 0.25)
    """
    pl = np.asarray(pseudo)
    tr = np.asarray(truth) == fg_class
    if pl.shape != tr.shape:
        raise ValueError(f"pseudo-label shape {pl.shape} != label shape {tr.shape}")
    fg, bg = pl == FG, pl == BG
    counts = {
        "n_voxels": int(pl.size),
        "n_true": int(np.count_nonzero(tr)),
        "n_fg": int(np.count_nonzero(fg)),
        "n_bg": int(np.count_nonzero(bg)),
        "n_unlabelled": int(pl.size - np.count_nonzero(fg) - np.count_nonzero(bg)),
        "fg_tp": int(np.count_nonzero(fg & tr)),
        "bg_tp": int(np.count_nonzero(bg & ~tr)),
    }
    return {**counts, **_ratios(counts)}


def _ratios(c: dict[str, int]) -> dict[str, float]:
    """Precision / recall / unlabelled fraction from the counts of :func:`quality`."""
    return {
        "fg_precision": _ratio(c["fg_tp"], c["n_fg"]),
        "fg_recall": _ratio(c["fg_tp"], c["n_true"]),
        "bg_precision": _ratio(c["bg_tp"], c["n_bg"]),
        "bg_recall": _ratio(c["bg_tp"], c["n_voxels"] - c["n_true"]),
        "unlabelled_fraction": _ratio(c["n_unlabelled"], c["n_voxels"]),
    }


def quality_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per-case quality rows plus the pooled ``all`` row, columns :data:`QUALITY_COLUMNS`.

    The pooled row sums the counts of every case and recomputes the ratios (a large
    case weighs more); its per-case fields (seeds, thresholds, components) are NaN.
    """
    count_keys = ("n_voxels", "n_true", "n_fg", "n_bg", "n_unlabelled", "fg_tp", "bg_tp")
    pooled: dict[str, Any] = {k: int(sum(int(r[k]) for r in rows)) for k in count_keys}
    pooled.update(_ratios(pooled))
    pooled.update({"case": OVERALL, "split": OVERALL})
    frame = pd.DataFrame([*rows, pooled], columns=list(QUALITY_COLUMNS))
    for k in count_keys:
        frame[k] = frame[k].astype("int64")
    return frame


def quality_markdown(frame: pd.DataFrame) -> str:
    """The quality table as Markdown (the columns a reader compares, 3 decimals)."""
    cols = ("case", "split", "fg_precision", "fg_recall", "bg_precision", "bg_recall",
            "unlabelled_fraction", "n_true", "n_fg")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [str(row[c]) if c in ("case", "split") else
                 f"{int(row[c])}" if c.startswith("n_") else f"{float(row[c]):.3f}"
                 for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ store


def _load_case(store: CaseStore, mip_root: Path, case_id: str,
               ax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """(volume, truth, mip_label, depth, spacing) of one case, checked, or InputError."""
    folder = store.root / case_id
    try:
        image = store.image(case_id)
        if image.ndim != 4:
            raise InputError(folder / "image.npy", f"must be (C, Z, Y, X), got {image.shape}")
        volume = np.asarray(image[0], dtype=np.float32)
        truth = np.asarray(store.label(case_id, mmap=False))
        spacing = [float(s) for s in store.meta(case_id)["spacing"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(folder, f"unreadable case: {err}") from None
    if truth.shape != volume.shape:
        raise InputError(folder / "label.npy", f"shape {truth.shape} != image {volume.shape}")
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InputError(folder / "meta.json", f"bad spacing {spacing}")
    mfolder = mip_root / case_id
    if not (mfolder / mipmod.MIP_LABEL).is_file():
        raise InputError(mfolder / mipmod.MIP_LABEL, "missing; rerun the MIP stage")
    try:
        lab2d = np.load(mfolder / mipmod.MIP_LABEL)
        depth = np.load(mfolder / mipmod.DEPTH)
    except (OSError, ValueError) as err:
        raise InputError(mfolder, f"unreadable MIP arrays: {err}") from None
    plane = tuple(n for a, n in enumerate(volume.shape) if a != ax)
    if lab2d.shape != plane or depth.shape != plane:
        raise InputError(mfolder, f"2D shapes {lab2d.shape}/{depth.shape} do not match the "
                         f"image {volume.shape} projected along axis {ax} {plane}; rerun the "
                         "MIP stage")
    if depth.dtype.kind not in "iu" or (depth.size and (
            int(depth.min()) < 0 or int(depth.max()) >= volume.shape[ax])):
        raise InputError(mfolder / mipmod.DEPTH, "depths outside the volume")
    return volume, truth, lab2d, depth, spacing


def occluder_voxels(mfolder: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The MIP stage's occluder mask of a case (bool, ``shape``), None when the MIP was
    projected without occluder removal. Occluders (bone above the threshold) are not
    vessel by definition, so both rule sets label them background: left unlabelled, the
    bright bar of the toy was learnt as vessel by every weakly supervised method."""
    path = mfolder / mipmod.OCCLUDER
    if not path.is_file():
        return None
    try:
        mask = np.load(path) > 0
    except (OSError, ValueError) as err:
        raise InputError(path, f"unreadable occluder mask: {err}") from None
    if mask.shape != tuple(shape):
        raise InputError(path, f"shape {mask.shape} != image {tuple(shape)}; rerun the MIP stage")
    return mask


def _write_case(cases: str, mip_root: str, case_id: str, split: str, out: str, ax: int,
                params: PseudoParams | ReferenceParams) -> dict[str, Any]:
    """Compute and write one case's pseudo-label and maps; its quality row."""
    store = CaseStore(cases)
    volume, truth, lab2d, depth, spacing = _load_case(store, Path(mip_root), case_id, ax)
    res = (pseudo_label_reference(volume, lab2d, depth, ax, params)
           if isinstance(params, ReferenceParams) else pseudo_label(volume, lab2d, depth, ax,
                                                                      params))
    occluded = occluder_voxels(Path(mip_root) / case_id, volume.shape)
    if occluded is not None:
        res.label[occluded] = BG
    folder = Path(out) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    atomic.save_npy(folder / PSEUDO, res.label)
    fg = (res.label == FG).astype(np.uint8)
    atomic.save_npy(folder / PSEUDO_DIST, volume_signed_distance(fg, 2, spacing))
    row: dict[str, Any] = {"case": case_id, "split": split}
    row.update(quality(res.label, truth))
    row.update({
        "n_seeds": res.n_seeds, "seed_mean": res.seed_mean, "fg_threshold": res.fg_threshold,
        "bg_threshold": res.bg_threshold, "n_components": res.n_components,
        "n_kept": res.n_kept,
    })
    return row


def split_names(store: CaseStore) -> dict[str, str]:
    """The quality table's ``split`` of every case: its split (``train``, ``val``,
    ``test``); in a cross-validation store (``FOLDS``), where every labelled case is
    trained on in some folds and tested in one, ``test fold<i>``. Pseudo-labels depend
    on the case alone (its image and 2D label), never on the split, so one store
    serves every fold."""
    folds = json.loads((store.root / "split.json").read_text()).get("folds") or []
    if not folds:
        return {c: s for s, ids in store.split.items() for c in ids}
    names = {c: "infer" for c in store.split["infer"]}
    for i, fold in enumerate(folds):
        names.update({c: f"test fold{i}" for c in fold["test"]})
    return names


def write_pseudo_store(
    cases: str | Path,
    mip: str | Path,
    out: str | Path,
    params: PseudoParams | ReferenceParams | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """Write the pseudo-label store ``out`` for every labelled case of ``cases``.

    Pseudo-labels use only the image and the MIP stage's 2D label and depths; the
    true 3D label is read only for the quality table. Val/test cases get pseudo-labels
    too (cheap, and their quality is informative); the trainer decides what to use.

    Args:
        cases: the case store (``data/<ds>/cases``).
        mip: the MIP store (``data/<ds>/mip``); its ``mip.json`` gives the axis.
        out: the folder to produce (``data/<ds>/pseudo``).
        params: the segline rules' thresholds (:class:`PseudoParams`) or the
            reference's rules (:class:`ReferenceParams`); recorded in ``pseudo.json``
            with ``rules``.
        jobs: worker processes over cases.

    Returns:
        The quality table (also in ``quality.csv`` / ``quality.md``).

    Raises:
        InputError: a missing or inconsistent store, no labelled case.
    """
    p = params or PseudoParams()
    store = CaseStore(cases)
    mip_root = Path(mip)
    info = mipmod.read_mip_json(mip_root)
    ax = int(info["axis"])
    split_of = split_names(store)
    ids = store.case_ids()
    for case_id in ids:
        if not (store.root / case_id).is_dir():
            raise InputError(store.root / case_id, "listed in split.json but missing")
    labelled = [c for c in ids if store.has_label(c)]
    if not labelled:
        raise InputError(store.root, "no labelled case: the MIP 2D labels come from labels")
    with atomic.atomic_dir(out) as tmp:
        args = [(str(store.root), str(mip_root), c, split_of[c], str(tmp), ax, p)
                for c in labelled]
        frame = quality_frame(map_cases(_write_case, args, jobs))
        atomic.write_text(tmp / QUALITY_CSV, csv_text(frame))
        atomic.write_text(tmp / QUALITY_MD, quality_markdown(frame))
        reference = isinstance(p, ReferenceParams)
        atomic.write_json(tmp / STORE_JSON, {
            "rules": RULES[1] if reference else RULES[0],
            "convention": REFERENCE_CONVENTION if reference else CONVENTION,
            "ignore_value": IGNORE,
            "axis": ax,
            "params": asdict(p),
            "fg_class": FG,
            "cases": labelled,
            "skipped_unlabelled": [c for c in ids if not store.has_label(c)],
            "occluders": ("background" if any((mip_root / c / mipmod.OCCLUDER).is_file()
                                              for c in labelled) else "none removed"),
        })
    return frame


# ------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``preprocess/pseudo.py``."""
    d = PseudoParams()
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("pseudo.py"),
        description="3D pseudo-labels (0 bg, 1 vessel, 255 unlabelled) from the 2D MIP labels "
        "and the images, their signed distance maps, and their quality against the true "
        "3D labels.",
    )
    p.add_argument("--cases", required=True, type=Path, help="case store (data/<ds>/cases)")
    p.add_argument("--mip", required=True, type=Path, help="MIP store (data/<ds>/mip)")
    p.add_argument("--out", required=True, type=Path, help="folder to write (data/<ds>/pseudo)")
    p.add_argument("--rules", choices=RULES, default=RULES[0],
                   help="segline (default): candidates on the labelled rays, the thresholds "
                   "below; reference: the published code's rules with its fixed constants "
                   "(whole volume > 1.0 x seed mean, components >= 10 voxels with a seed, "
                   "seeds foreground, background <= 1.2 x on unlabelled rays or < 0.2 x "
                   "anywhere); the four options below then do not apply")
    p.add_argument("--fg-rel", type=non_negative_float, default=None,
                   help=f"foreground: I >= FG_REL x mean seed intensity (default {d.fg_rel})")
    p.add_argument("--bg-factor", type=non_negative_float, default=None,
                   help="background: voxels on unlabelled rays with I <= BG_FACTOR x mean seed "
                   f"intensity (default {d.bg_factor})")
    p.add_argument("--min-size", type=positive_int, default=None,
                   help=f"smallest foreground component kept, voxels (default {d.min_size})")
    p.add_argument("--connectivity", type=int, choices=CONNECTIVITIES, default=None,
                   help=f"component connectivity (default {d.connectivity})")
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes over cases")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Write the pseudo-label store; print the quality table and one summary line."""
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in (("fg_rel", args.fg_rel), ("bg_factor", args.bg_factor),
                               ("min_size", args.min_size),
                               ("connectivity", args.connectivity)) if v is not None}
    params: PseudoParams | ReferenceParams
    if args.rules == "reference":
        if given:
            names = ", ".join("--" + k.replace("_", "-") for k in given)
            raise InputError("arguments", f"{names}: the segline rules' options; --rules "
                             "reference uses the published constants")
        params = ReferenceParams()
    else:
        try:
            params = PseudoParams(**given)
        except ValueError as err:
            raise InputError("arguments", str(err)) from None
    start = time.perf_counter()
    frame = write_pseudo_store(args.cases, args.mip, args.out, params, args.jobs)
    print(quality_markdown(frame), end="")
    total = frame[frame["case"] == OVERALL].iloc[0]
    print(f"pseudo: {len(frame) - 1} cases, fg precision {total['fg_precision']:.3f} recall "
          f"{total['fg_recall']:.3f}, unlabelled {total['unlabelled_fraction']:.3f} -> "
          f"{args.out} in {time.perf_counter() - start:.1f} s")
    return 0


cli = cli_of(main)
