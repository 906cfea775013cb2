"""A deterministic toy archive in the format of MSD Task09 Spleen.

The real archive (``Task09_Spleen.tar``, about 1.5 GB) cannot be fetched everywhere,
so ``make TOY=1`` runs the same stages on ``data/spleen-toy.tar``: same layout, same
file formats, a few MB, produced in about a second and byte-identical on every machine
(its md5 is pinned in ``lineage/spleen-toy.lineage``; see
:mod:`segline.datasets.deterministic` for how).

Layout (as the real tar)::

    Task09_Spleen/
      dataset.json                    MSD keys; training list in a shuffled order
      imagesTr/spleen_<N>.nii.gz      int16 CT in HU, array (X, Y, Z)
      labelsTr/spleen_<N>.nii.gz      uint8 {0: background, 1: spleen}
      imagesTs/spleen_<M>.nii.gz      unlabelled cases
      ._dataset.json, */._*.nii.gz    macOS AppleDouble junk, as shipped in the real tar

Each case is a 96×96×(28–40) CT-like volume: air (−1000 HU) around a body ellipse
with a fat rim (−100 HU), soft tissue (~40 HU, smoothed noise), a liver-like region
(~80 HU) on the patient's right, a spine-like bone disc (~700 HU, darker
intervertebral discs) and the spleen: a bent, tilted ellipsoid on the patient's left,
~100 HU brighter than the surrounding tissue, whose size and position vary per case,
with a few organ-free slices at both ends. The affine is axis-aligned with a
negative x/y direction like the real CT (``diag(-s, -s, 5)`` with ``s`` in
0.78–0.86 mm), so voxel i grows toward the patient's left and j toward posterior.

Example:
    >>> cases = toy_spleen_cases(seed=0, n_cases=2, n_test=0)
    >>> [c.case_id for c in cases], cases[0].image.dtype.name, cases[0].label.dtype.name
    (['spleen_2', 'spleen_3'], 'int16', 'uint8')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from segline import atomic
from segline.datasets.deterministic import (
    CounterRNG,
    Entry,
    box_gain,
    box_sum_nd,
    smooth_noise,
    tar_bytes,
)
from segline.datasets.toy_msd import MsdToyCase, msd_dataset_json, msd_entries
from segline.datasets.toys import register_toy

TASK_DIR = "Task09_Spleen"
CASE_PREFIX = "spleen_"
# Numbers kept out of the training list (the real set numbers its unlabelled cases in
# the gaps of the training numbering); the toy's test cases take the first ones, and
# training numbers are the integers >= 2 not listed here: 2, 3, 6, 8, 9, 10, 12, ...
RESERVED_IDS = (1, 4, 5, 7, 11, 15, 23, 30, 34, 35, 36, 37, 39, 42, 43, 48, 50, 51, 54, 55)

IN_PLANE = 96  # voxels along x and y
DEPTH_RANGE = (28, 40)  # slices along z, inclusive
SPACING_256THS = (200, 220)  # in-plane spacing k/256 mm (0.781–0.859; float32-exact)
SLICE_MM = 5.0
EMPTY_END_SLICES = 3  # at least this many organ-free slices at each end

HU_AIR = -1000.0
HU_FAT = -100.0
HU_TISSUE = 40.0
LIVER_CONTRAST = 40.0  # liver ~80 HU
SPLEEN_CONTRAST = 100.0  # spleen ~140 HU
HU_BONE = 700.0
HU_DISC = 90.0  # intervertebral disc
HU_MIN, HU_MAX = -1024, 3071  # the usual 12-bit CT range


@dataclass(frozen=True)
class ToyCase(MsdToyCase):
    """One generated case, as the NIfTI files hold it.

    Attributes:
        number: the case number N (file ``spleen_N.nii.gz``).
        image: (X, Y, Z) int16, Hounsfield units.
        label: (X, Y, Z) uint8 in {0, 1}; also kept for unlabelled (test) cases, whose
            label is not written to the archive.
        affine: 4×4 float64 voxel → world (mm, RAS) map, as stored in the header.
        labelled: whether the case goes to imagesTr/labelsTr (else imagesTs).
    """

    case_prefix: ClassVar[str] = CASE_PREFIX
    digits: ClassVar[int] = 0


def training_numbers(n: int) -> list[int]:
    """The first ``n`` training case numbers (2, 3, 6, 8, 9, 10, 12, ...)."""
    out: list[int] = []
    k = 2
    while len(out) < n:
        if k not in RESERVED_IDS:
            out.append(k)
        k += 1
    return out


def unlabelled_numbers(n: int) -> list[int]:
    """The first ``n`` unlabelled case numbers (1, 4, 5, ...)."""
    if not 0 <= n <= len(RESERVED_IDS):
        raise ValueError(f"n_test must be in 0..{len(RESERVED_IDS)}, got {n}")
    return list(RESERVED_IDS[:n])


def _soft(mask: np.ndarray) -> np.ndarray:
    """Partial-volume weight of a structure (float64 in [0, 1]).

    1 inside the mask; just outside it, half the 3×3 in-plane box mean (at most ~0.4),
    so edges are blurred without dimming the labelled voxels themselves.
    """
    radii = (1, 1, 0)
    mean = box_sum_nd(mask.astype(np.int64), radii).astype(np.float64) / float(box_gain(radii))
    return np.where(mask, 1.0, 0.5 * mean)


def make_case(seed: int, number: int, labelled: bool = True) -> ToyCase:
    """Generate case ``number`` from ``seed`` (independent of every other case).

    All voxel values come from integer noise and element-wise float64 ``+ - * /`` and
    comparisons, so the result is the same bytes on every platform.

    Args:
        seed: the toy data set's seed.
        number: the case number (selects the case's random stream).
        labelled: training case (True) or unlabelled test case (False).

    Returns:
        The case's image, label and affine.
    """
    rng = CounterRNG(seed, "spleen", number)
    geo = rng.child("geometry")
    nx = ny = IN_PLANE
    nz = geo.integers(DEPTH_RANGE[0], DEPTH_RANGE[1] + 1)
    sxy = geo.integers(SPACING_256THS[0], SPACING_256THS[1] + 1) / 256.0
    affine = np.array(
        [
            [-sxy, 0.0, 0.0, sxy * (nx // 2)],
            [0.0, -sxy, 0.0, sxy * (ny // 2) + geo.integers(-20, 21)],
            [0.0, 0.0, SLICE_MM, -float(geo.integers(150, 400))],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )

    i = np.arange(nx, dtype=np.float64)[:, None, None]
    j = np.arange(ny, dtype=np.float64)[None, :, None]
    k = np.arange(nz, dtype=np.float64)[None, None, :]
    zc = (k - (nz - 1) / 2.0) / ((nz - 1) / 2.0)  # -1 (first slice) .. 1 (last slice)

    # Body: an ellipse that narrows slightly away from the middle slice; fat rim 3 voxels.
    bcx = (nx - 1) / 2.0 + geo.uniform(-2.0, 2.0)
    bcy = (ny - 1) / 2.0 + geo.uniform(-2.0, 2.0)
    taper = 1.0 - 0.05 * zc * zc
    ba = geo.uniform(41.0, 45.0) * taper
    bb = geo.uniform(31.0, 35.0) * taper
    bx, by = (i - bcx) / ba, (j - bcy) / bb
    body = bx * bx + by * by < 1.0
    ix, iy = (i - bcx) / (ba - 3.0), (j - bcy) / (bb - 3.0)
    inner = ix * ix + iy * iy < 1.0

    # Liver: patient's right (low i), anterior (low j), upper slices.
    lu = (i - (bcx - geo.uniform(15.0, 19.0))) / geo.uniform(13.0, 16.0)
    lv = (j - (bcy - geo.uniform(3.0, 8.0))) / geo.uniform(15.0, 19.0)
    lw = (k - nz * geo.uniform(0.55, 0.75)) / (nz * geo.uniform(0.45, 0.6))
    liver = (lu * lu + lv * lv + lw * lw < 1.0) & inner

    # Spine: a bone disc at the back of the midline, darker every few slices.
    scx = bcx + geo.uniform(-1.5, 1.5)
    scy = bcy + bb - geo.uniform(9.0, 11.0)
    srad = geo.uniform(5.0, 6.5)
    sdx, sdy = i - scx, j - scy
    spine = (sdx * sdx + sdy * sdy < srad * srad) & inner
    period = geo.integers(6, 9)
    disc_slice = (np.arange(nz) + geo.integers(0, period)) % period == 0

    # Spleen: patient's left (high i), posterior (high j); ellipsoid bent into a crescent
    # (convex side lateral), tilted, with an asymmetric cranio-caudal profile.
    rx = geo.uniform(7.5, 12.0)
    ry = geo.uniform(6.0, 9.5)
    rz = geo.uniform(4.0, 7.5)
    reach = 1.3 * rz  # the perturbed shape stays within 1.3 radii along z
    lo, hi = EMPTY_END_SLICES + reach, nz - 1 - EMPTY_END_SLICES - reach
    ck = geo.uniform(lo, hi)
    ci = bcx + geo.uniform(12.0, 19.0)
    cj = bcy + geo.uniform(3.0, 10.0)
    bend = geo.uniform(0.15, 0.4)
    tilt_uw = geo.uniform(-0.3, 0.3)
    tilt_vw = geo.uniform(-0.3, 0.3)
    skew_w = geo.uniform(-0.2, 0.2)
    u, v, w = (i - ci) / rx, (j - cj) / ry, (k - ck) / rz
    ub = u + bend * (v * v)
    q = ub * ub + v * v + w * w + tilt_uw * (u * w) + tilt_vw * (v * w) + skew_w * (w * w * w)
    organ = (q < 1.0) & inner
    if organ[:, :, :EMPTY_END_SLICES].any() or organ[:, :, nz - EMPTY_END_SLICES :].any():
        raise RuntimeError(f"toy spleen case {number}: organ reaches the end slices")
    if not organ.any():
        raise RuntimeError(f"toy spleen case {number}: empty organ")

    # Intensities (HU), composed back to front.
    shape = (nx, ny, nz)
    tex = rng.child("texture")
    img = HU_TISSUE + smooth_noise(tex.child("tissue"), shape, (4, 4, 1), 2, std=8.0)
    img = img + LIVER_CONTRAST * _soft(liver)
    organ_hu = img + SPLEEN_CONTRAST + smooth_noise(tex.child("spleen"), shape, (2, 2, 1), 2, 6.0)
    img = img + _soft(organ) * (organ_hu - img)
    bone = np.where(disc_slice[None, None, :], HU_DISC, HU_BONE)
    bone = bone + smooth_noise(tex.child("bone"), shape, (2, 2, 0), 2, std=40.0)
    img = np.where(spine & ~organ, bone, img)
    fat = HU_FAT + smooth_noise(tex.child("fat"), shape, (2, 2, 1), 2, std=10.0)
    img = np.where(body & ~inner, fat, img)
    img = np.where(body, img, HU_AIR)
    img = img + tex.child("white").normal(shape, terms=4) * 6.0
    image = np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)

    return ToyCase(number, image, organ.astype(np.uint8), affine, labelled)


def toy_spleen_cases(seed: int = 0, n_cases: int = 12, n_test: int = 2) -> list[ToyCase]:
    """All cases of the toy set: ``n_cases`` labelled, then ``n_test`` unlabelled.

    This is what the archive holds, without writing or unpacking it (for tests).
    """
    if n_cases < 0:
        raise ValueError(f"n_cases must be >= 0, got {n_cases}")
    return [make_case(seed, n, True) for n in training_numbers(n_cases)] + [
        make_case(seed, n, False) for n in unlabelled_numbers(n_test)
    ]


def dataset_json(cases: list[ToyCase], seed: int) -> dict[str, object]:
    """The ``dataset.json`` of the toy set, with the real file's keys.

    The training list is in a shuffled (seeded) order, as in the real file, so that
    readers must sort it themselves. The real file spells "release" as "relase".
    """
    return msd_dataset_json(
        cases,
        seed,
        name="Spleen",
        description=f"Spleen Segmentation (segline synthetic toy CT, seed {seed})",
        reference="segline preprocess/make_toy.py (layout of MSD Task09 Spleen)",
        labels={"0": "background", "1": "spleen"},
        listing_key="spleen",
    )


def toy_spleen_entries(
    seed: int = 0, n_cases: int = 12, n_test: int = 2, junk: bool = True
) -> list[Entry]:
    """The archive's files as ``(path, bytes)``, sorted by path (no folder entries).

    Args:
        seed: data set seed.
        n_cases: labelled cases.
        n_test: unlabelled cases.
        junk: add the ``._*`` AppleDouble files the real archive ships (the unpack
            stage must drop them).
    """
    cases = toy_spleen_cases(seed, n_cases, n_test)
    return msd_entries(TASK_DIR, cases, dataset_json(cases, seed), junk)


def toy_spleen_bytes(seed: int = 0, n_cases: int = 12, n_test: int = 2) -> bytes:
    """The complete toy archive (uncompressed USTAR tar with folder entries)."""
    return tar_bytes(toy_spleen_entries(seed, n_cases, n_test))


def write_toy_spleen(path: Path, seed: int = 0, n_cases: int = 12, n_test: int = 2) -> None:
    """Write the toy archive to ``path`` atomically (``path.tmp``, then rename).

    Args:
        path: output file, normally ``data/spleen-toy.tar``.
        seed: data set seed (the pinned md5 in ``lineage/spleen-toy.lineage`` is for 0).
        n_cases: labelled cases (12 for the pinned archive).
        n_test: unlabelled cases (2 for the pinned archive).
    """
    atomic.write_bytes(Path(path), toy_spleen_bytes(seed, n_cases, n_test))


@register_toy("spleen")
def write_toy_archives(outs: list[Path], seed: int = 0) -> None:
    """``preprocess/make_toy.py`` entry point: the one spleen archive at ``outs[0]``."""
    if len(outs) != 1:
        raise ValueError(f"the spleen toy is one archive, got {len(outs)} outputs")
    write_toy_spleen(outs[0], seed=seed)
