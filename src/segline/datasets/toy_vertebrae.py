"""A deterministic toy archive in the VerSe layout (spine CT, one label per vertebra).

The real VerSe data (several GB, CC BY-SA 4.0) is put in place by the user, so
``make -f vertebrae.make TOY=1`` runs the same stages on ``data/vertebrae-toy.tar``:
the same layout and file formats (:mod:`segline.datasets.verse`), about 18 MB,
produced in seconds and byte-identical on every machine (its md5 is pinned in
``lineage/vertebrae-toy.lineage``; see :mod:`segline.datasets.deterministic`).

Layout (VerSe / BIDS naming; :data:`TRAIN_DIR` and :data:`TEST_DIR` are the two top
folders, like the real ``dataset-verse19training/`` ...)::

    dataset-vertebrae-toy-training/
      rawdata/sub-toyNNN/sub-toyNNN_ct.nii.gz                       int16 CT, HU, (X, Y, Z)
      rawdata/sub-toyNNN/ses-01/sub-toyNNN_ses-01_ct.nii.gz         (every 4th case)
      rawdata/sub-toyNNN/sub-toyNNN_dir-ax_ct.nii.gz                (cases 3, 7, 11, 15)
      derivatives/sub-toyNNN/[ses-01/]<stem>_seg-vert_msk.nii.gz    uint8 VerSe values
      derivatives/sub-toyNNN/[ses-01/]<stem>_seg-subreg_ctd.json    centroids (ignored)
    dataset-vertebrae-toy-test/
      rawdata/sub-toyNNN/sub-toyNNN_ct.nii.gz                       unlabelled cases

**A case.** A synthetic lower spine: ``n`` = 6-10 vertebrae stacked along z (the
cranio-caudal axis) whose centres follow a smooth curve in x and y (a quadratic in z:
a sideways drift and a lordosis/kyphosis-like bow). Each vertebra is an elliptic body
(rounded endplates) with a posterior arch around the spinal canal, a spinous process
and two transverse processes, all kept inside the body's z slab, so two neighbours are
always separated along z by an intervertebral disc of 5.5-7.5 mm (2-3 source slices,
about 3 voxels at the toy pipeline's 2 mm). Bodies grow toward the caudal end (as
thoracic to lumbar vertebrae do). Labels are consecutive VerSe values (1-7 C1-C7, 8-19
T1-T12, 20-24 L1-L5) from a case-dependent first vertebra between T1 and L5, the
smallest value at the cranial end (high z).

Intensities (HU): air -1000 outside the torso ellipse, a fat rim ~-100, soft tissue
~40 with smooth noise; cancellous bone 170-230 inside a cortical shell (~1.5 mm) and
processes at 450-600, endplates (the end slices of a body) in between; discs ~90
(darker than bone, brighter than soft tissue). The composed volume is blurred by a
small exact integer kernel (partial volume: one voxel in-plane, [1, 4, 1] along z) and
white noise (sigma 12 HU) is added.

Geometry: voxels of 1.5 x 1.5 x 2.5 mm (x, y, z), 72 x 72 in-plane, 48-84 slices; the
affine is axis-aligned with negative x/y steps (i grows toward the patient's left, j
toward posterior, k toward superior), like :mod:`segline.datasets.toy_spleen`.

All voxel values come from integer noise (:class:`CounterRNG`, exact box sums) and
element-wise float64 ``+ - * /`` and comparisons, so the bytes are the same on every
platform (no sin/cos/exp, no float reductions).

Example:
    >>> case = make_case(0, 1)
    >>> case.case_id, case.image.dtype.name, case.values == tuple(range(14, 21))
    ('sub-toy001', 'int16', True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segline import atomic
from segline.datasets.deterministic import (
    CounterRNG,
    Entry,
    box_sum_nd,
    nifti_gz_bytes,
    smooth_noise,
    tar_bytes,
)
from segline.datasets.toys import register_toy

TRAIN_DIR = "dataset-vertebrae-toy-training"
TEST_DIR = "dataset-vertebrae-toy-test"
N_LABELLED = 16
N_UNLABELLED = 2
SESSION = "ses-01"

SPACING_XYZ = (1.5, 1.5, 2.5)  # mm: anisotropic, so the pipeline's isotropic resampling acts
IN_PLANE = 72  # voxels along x and y (108 mm)
N_VERTEBRAE = (6, 10)  # inclusive
FIRST_VALUE, LAST_VALUE = 8, 24  # T1 .. L5 (VerSe values)
DISC_MM = (5.5, 7.5)  # intervertebral gap along z
PERIOD_MM = (15.0, 20.0)  # body + disc, before fitting the spine's length
SPINE_MM = (124.0, 176.0)  # n * period is kept in this range (the z extent after cropping)
END_MM = (8.0, 14.0)  # soft tissue above the first / below the last vertebra

HU_AIR = -1000.0
HU_FAT = -100.0
HU_TISSUE = 40.0
HU_DISC = 90.0
HU_CANCELLOUS = (170.0, 230.0)
HU_CORTICAL = (450.0, 600.0)
HU_MIN, HU_MAX = -1024, 3071
ENDPLATE_SHARE = 0.35  # an endplate slice's HU: this far from cancellous toward cortical
WHITE_NOISE_HU = 12.0


@dataclass(frozen=True)
class ToyVertebraeCase:
    """One generated case, as the NIfTI files hold it.

    Attributes:
        number: subject number N (``sub-toyNNN``).
        image: (X, Y, Z) int16, HU.
        label: (X, Y, Z) uint8 VerSe values (0 background); also kept for unlabelled
            cases, whose mask is not written.
        affine: 4x4 voxel -> world (mm) map.
        values: the case's vertebra values, cranial to caudal (consecutive).
        labelled: whether the mask is written (training folder) or not (test folder).
    """

    number: int
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    values: tuple[int, ...]
    labelled: bool

    @property
    def subject(self) -> str:
        """``sub-toyNNN``."""
        return f"sub-toy{self.number:03d}"

    @property
    def session(self) -> str | None:
        """``ses-01`` for every 4th labelled case (the VerSe'20 session layout), else None."""
        return SESSION if self.labelled and self.number % 4 == 0 else None

    @property
    def case_id(self) -> str:
        """The file stem before ``_ct.nii.gz`` (what the ``verse`` adapter uses as case id)."""
        parts = [self.subject]
        if self.session:
            parts.append(self.session)
        if self.labelled and self.number % 4 == 3:
            parts.append("dir-ax")
        return "_".join(parts)

    @property
    def n_vertebrae(self) -> int:
        """Number of labelled vertebrae."""
        return len(self.values)


def _clip(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _blur(img: np.ndarray) -> np.ndarray:
    """Partial volume: a 3x3 in-plane box mean, then [1, 4, 1]/6 along z (exact integers).

    The z kernel is narrow because the slices are thick (2.5 mm) and the discs only
    2-3 slices: a wider one would lift a disc to the brightness of cancellous bone.
    """
    hu = np.rint(img).astype(np.int64)
    inplane = box_sum_nd(hu, (1, 1, 0))  # sum of 9
    padded = np.pad(inplane, ((0, 0), (0, 0), (1, 1)), mode="edge")
    zsum = padded[:, :, :-2] + 4 * padded[:, :, 1:-1] + padded[:, :, 2:]
    return zsum.astype(np.float64) / 54.0


def make_case(seed: int, number: int, labelled: bool = True) -> ToyVertebraeCase:
    """Generate case ``number`` from ``seed`` (independent of every other case).

    Args:
        seed: the toy data set's seed.
        number: the subject number (selects the case's random stream).
        labelled: whether its mask goes into the archive.

    Returns:
        The case's image, label, affine and vertebra values.
    """
    rng = CounterRNG(seed, "vertebrae", number)
    geo = rng.child("geometry")
    sx, sy, sz = SPACING_XYZ
    n = geo.integers(N_VERTEBRAE[0], N_VERTEBRAE[1] + 1)
    first = geo.integers(FIRST_VALUE, LAST_VALUE - n + 2)
    values = tuple(range(first, first + n))
    disc = geo.uniform(*DISC_MM)
    period = _clip(geo.uniform(*PERIOD_MM), SPINE_MM[0] / n, SPINE_MM[1] / n)
    length = n * period - disc  # top of the first body to the bottom of the last, mm
    end_top, end_bottom = geo.uniform(*END_MM), geo.uniform(*END_MM)
    nz = int((end_top + length + end_bottom) / sz) + 1
    nx = ny = IN_PLANE
    affine = np.array(
        [
            [-sx, 0.0, 0.0, sx * (nx // 2)],
            [0.0, -sy, 0.0, sy * (ny // 2) + geo.integers(-20, 21)],
            [0.0, 0.0, sz, -float(geo.integers(200, 500))],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    # Voxel centres in mm (local frame: x toward the left, y posterior, z superior).
    x = np.arange(nx, dtype=np.float64)[:, None, None] * sx
    y = np.arange(ny, dtype=np.float64)[None, :, None] * sy
    z = np.arange(nz, dtype=np.float64)[None, None, :] * sz
    z_top = end_bottom + length  # the cranial end of the spine (z grows superior)
    z_mid = end_bottom + length / 2.0

    # Torso ellipse, fat rim 3 mm.
    tcx = nx * sx / 2.0 + geo.uniform(-2.0, 2.0)
    tcy = ny * sy / 2.0 + geo.uniform(-2.0, 2.0)
    tax, tay = geo.uniform(48.0, 52.0), geo.uniform(42.0, 46.0)
    tx, ty = (x - tcx) / tax, (y - tcy) / tay
    torso = tx * tx + ty * ty < 1.0
    ix, iy = (x - tcx) / (tax - 3.0), (y - tcy) / (tay - 3.0)
    inner = ix * ix + iy * iy < 1.0

    # Spine axis: centre (cx, cy) of each vertebra, a quadratic in t = (z - z_mid) / half.
    drift_x, bow_x = geo.uniform(-3.0, 3.0), geo.uniform(-3.0, 3.0)
    drift_y, bow_y = geo.uniform(-2.0, 2.0), geo.uniform(-6.0, 6.0)
    scale_max = 0.85 + 0.3 * (values[-1] - FIRST_VALUE) / (LAST_VALUE - FIRST_VALUE)
    dorsal_max = 37.0 * scale_max + 1.0  # body front to spinous tip behind the centre, mm
    base_x = tcx + geo.uniform(-1.5, 1.5)
    base_y = tcy + tay - 6.0 - dorsal_max - 8.0  # skin behind the spinous tips

    shape = (nx, ny, nz)
    label = np.zeros(shape, dtype=np.uint8)
    cortical = np.zeros(shape, dtype=bool)
    endplate = np.zeros(shape, dtype=bool)
    discs = np.zeros(shape, dtype=bool)
    canal_mask = np.zeros(shape, dtype=bool)
    bodies: list[tuple[float, float, float, float, float, float]] = []
    shapes = rng.child("shapes")
    for m, value in enumerate(values):
        s = 0.85 + 0.3 * (value - FIRST_VALUE) / (LAST_VALUE - FIRST_VALUE)
        top = z_top - m * period
        h = period - disc
        zc, hz = top - h / 2.0, h / 2.0
        t = (zc - z_mid) / (length / 2.0)
        cx = base_x + drift_x * t + bow_x * t * t
        cy = base_y + drift_y * t + bow_y * t * t
        rx = 14.0 * s + shapes.uniform(-1.0, 1.0)
        ry = 11.0 * s + shapes.uniform(-1.0, 1.0)
        canal_r = 6.0 * s
        arch_w = 4.0 * s
        spinous = (12.0 + shapes.uniform(0.0, 4.0)) * s
        transverse = (10.0 + shapes.uniform(0.0, 4.0)) * s
        u, v, w = x - cx, y - cy, z - zc
        slab = (w <= hz) & (w >= -hz)
        bu, bv = u / rx, v / ry
        r2 = bu * bu + bv * bv
        lim = hz * (1.0 - 0.12 * r2)  # rounded endplates
        body = (r2 <= 1.0) & (w <= lim) & (w >= -lim)
        cu, cv = u / (rx - 1.5), v / (ry - 1.5)
        core_r2 = cu * cu + cv * cv
        core_lim = lim - 1.5
        core_xy = core_r2 <= 1.0
        core = core_xy & (w <= core_lim) & (w >= -core_lim)
        vc = ry + canal_r + 1.0  # canal centre behind the body centre
        dv = v - vc
        d2 = u * u + dv * dv
        outer = canal_r + arch_w
        arch = (d2 >= canal_r * canal_r) & (d2 <= outer * outer) & (v >= ry - 3.0)
        arch = arch & (w <= 0.7 * hz) & (w >= -0.7 * hz)
        canal = d2 < canal_r * canal_r
        # Spinous process: backward and slightly caudal (its z band moves down with depth).
        back = v - (vc + canal_r)
        ws = w + 0.25 * back
        spin = (u <= 2.5) & (u >= -2.5) & (back >= 0.0) & (back <= arch_w + spinous)
        spin = spin & (ws <= 0.5 * hz) & (ws >= -0.5 * hz)
        au = np.abs(u)
        trans = (au >= 0.5 * rx) & (au <= rx + transverse) & (dv <= 3.0) & (dv >= -5.0)
        trans = trans & (w <= 0.45 * hz) & (w >= -0.45 * hz)
        vert = (body | arch | spin | trans) & slab
        label[vert] = value
        cortical |= vert & ~core_xy  # the side walls and the processes
        endplate |= vert & core_xy & ~core
        canal_mask |= canal & slab
        bodies.append((cx, cy, rx, ry, top - h, top))
    # Discs: between consecutive bodies, an ellipse between theirs.
    for upper, lower in zip(bodies[:-1], bodies[1:], strict=True):
        cx = (upper[0] + lower[0]) / 2.0
        cy = (upper[1] + lower[1]) / 2.0
        rx = (upper[2] + lower[2]) / 2.0 - 0.5
        ry = (upper[3] + lower[3]) / 2.0 - 0.5
        du, dv = (x - cx) / rx, (y - cy) / ry
        gap = (z > lower[5]) & (z < upper[4])
        discs |= (du * du + dv * dv <= 1.0) & gap & (label == 0)

    # Intensities (HU), composed back to front.
    tex = rng.child("texture")
    img = HU_TISSUE + smooth_noise(tex.child("tissue"), shape, (3, 3, 1), 2, std=10.0)
    img = np.where(canal_mask & (label == 0), HU_TISSUE - 25.0, img)  # CSF-like canal
    img = np.where(discs, HU_DISC + smooth_noise(tex.child("disc"), shape, (2, 2, 1), 2, 8.0), img)
    cancellous = geo.uniform(*HU_CANCELLOUS)
    cortex = geo.uniform(*HU_CORTICAL)
    spongy = cancellous + smooth_noise(tex.child("cancellous"), shape, (2, 2, 1), 2, 20.0)
    shell = cortex + smooth_noise(tex.child("cortical"), shape, (1, 1, 1), 2, 30.0)
    plate = spongy + ENDPLATE_SHARE * (shell - spongy)  # thin endplates: partly cortical
    img = np.where(label > 0, np.where(cortical, shell, np.where(endplate, plate, spongy)), img)
    fat = HU_FAT + smooth_noise(tex.child("fat"), shape, (2, 2, 1), 2, std=10.0)
    img = np.where(torso & ~inner, fat, img)
    img = np.where(torso, img, HU_AIR)
    img = _blur(img) + tex.child("white").normal(shape, terms=4) * WHITE_NOISE_HU
    image = np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)
    if (label[:, :, 0] > 0).any() or (label[:, :, -1] > 0).any():
        raise RuntimeError(f"toy vertebrae case {number}: a vertebra reaches the end slices")
    if sorted(int(v) for v in np.unique(label) if v) != list(values):
        raise RuntimeError(f"toy vertebrae case {number}: a vertebra is missing")
    return ToyVertebraeCase(number, image, label, affine, values, labelled)


def toy_vertebrae_cases(
    seed: int = 0, n_labelled: int = N_LABELLED, n_unlabelled: int = N_UNLABELLED
) -> list[ToyVertebraeCase]:
    """All cases: subjects 1..n_labelled with masks, then the unlabelled ones."""
    if n_labelled < 0 or n_unlabelled < 0:
        raise ValueError("case counts must be >= 0")
    total = n_labelled + n_unlabelled
    return [make_case(seed, k, k <= n_labelled) for k in range(1, total + 1)]


def centroids_json(case: ToyVertebraeCase) -> bytes:
    """A ``_seg-subreg_ctd.json`` like VerSe's (voxel centroids; the adapter ignores it).

    Centroids are integer means of voxel indices (exact), written with one decimal.
    """
    items: list[dict[str, object]] = [{"direc": ["L", "P", "S"]}]
    for value in case.values:
        idx = np.argwhere(case.label == value)
        count = idx.shape[0]
        sums = [int(s) for s in idx.astype(np.int64).sum(axis=0)]
        items.append(
            {"label": value, **{a: round(s / count, 1) for a, s in zip("XYZ", sums, strict=True)}}
        )
    return (json.dumps(items, indent=1) + "\n").encode("utf-8")


def toy_vertebrae_entries(
    seed: int = 0, n_labelled: int = N_LABELLED, n_unlabelled: int = N_UNLABELLED
) -> list[Entry]:
    """The archive's files as ``(path, bytes)``, sorted by path (no folder entries)."""
    entries: list[Entry] = []
    for case in toy_vertebrae_cases(seed, n_labelled, n_unlabelled):
        top = TRAIN_DIR if case.labelled else TEST_DIR
        sub = case.subject + (f"/{case.session}" if case.session else "")
        descrip = f"segline toy vertebrae seed {seed}"
        entries.append(
            (
                f"{top}/rawdata/{sub}/{case.case_id}_ct.nii.gz",
                nifti_gz_bytes(case.image, case.affine, descrip),
            )
        )
        if case.labelled:
            stem = f"{top}/derivatives/{sub}/{case.case_id}"
            entries.append(
                (f"{stem}_seg-vert_msk.nii.gz", nifti_gz_bytes(case.label, case.affine, descrip))
            )
            entries.append((f"{stem}_seg-subreg_ctd.json", centroids_json(case)))
    return sorted(entries)


def toy_vertebrae_bytes(seed: int = 0) -> bytes:
    """The complete toy archive (uncompressed USTAR tar with folder entries)."""
    return tar_bytes(toy_vertebrae_entries(seed))


@register_toy("vertebrae")
def write_toy_archives(outs: list[Path], seed: int = 0) -> None:
    """``preprocess/make_toy.py`` entry point: the one archive at ``outs[0]`` (atomic)."""
    if len(outs) != 1:
        raise ValueError(f"the vertebrae toy is one archive, got {len(outs)} outputs")
    atomic.write_bytes(Path(outs[0]), toy_vertebrae_bytes(seed))
