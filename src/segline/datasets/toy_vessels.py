"""A deterministic toy archive in the format of MSD Task08 HepaticVessel.

The real archive (``Task08_HepaticVessel.tar``, several GB) cannot be fetched
everywhere, so ``make -f vessels.make TOY=1`` runs the same stages on
``data/vessels-toy.tar``: same layout, same file formats, a few MB, produced in about
a second and byte-identical on every machine (its md5 is pinned in
``lineage/vessels-toy.lineage``; see :mod:`segline.datasets.deterministic` for how).

Layout (as the real tar)::

    Task08_HepaticVessel/
      dataset.json                          MSD keys; labels {0: background, 1: Vessel,
                                            2: Tumour}; training list shuffled
      imagesTr/hepaticvessel_NNN.nii.gz     int16 CT in HU, array (X, Y, Z)
      labelsTr/hepaticvessel_NNN.nii.gz     uint8 {0, 1 vessel, 2 tumour}
      imagesTs/hepaticvessel_NNN.nii.gz     unlabelled cases
      ._dataset.json, */._*.nii.gz          macOS AppleDouble junk, as in the real tars

Case numbers are three-digit, zero-padded like the real files; the toy gives the
numbers that are not multiples of 3 to the labelled cases (001, 002, 004, 005, ...)
and the multiples of 3 to the unlabelled ones (003, 006, ...).

**What a case looks like.** The field of view is a crop *inside* the liver
(64 × 64 voxels in-plane of 0.75–0.875 mm, 32–40 slices of 2.5 mm): liver-like
tissue at ~60 HU with smoothed noise (σ ≈ 10 HU, correlation ≈ 6 voxels in-plane)
plus white noise (σ ≈ 8 HU), two contrast-enhanced vessel trees (~180–230 HU) and,
in some cases, a hypodense tumour blob (~25 HU, label 2). Each tree is grown from a
trunk entering through one side of the volume, at its own depth (the two trees
enter at about 35 % and 65 % of the slices), so that branches of the two trees cross
in a maximum-intensity projection along z. Branches are polylines of three straight
pieces whose direction bends a little at each joint; at its end a branch splits in
two children leaving at an angle on either side of it, each thinner (×0.74–0.88)
and shorter, until the radius would drop below one voxel. The radius tapers along
every branch (×0.9), from 2.6–3.2 voxels in the trunks to ~1 voxel in the finest
twigs. Directions are kept mostly in-plane (their z component is damped), which is
what makes a projection along z informative.

Geometry is measured in *voxel index* units (a radius of 2 means two voxels in every
direction), so tubes are round in the array and a 1-voxel radius never falls between
slices; physically they are elongated along z, as small vessels are in thick-slice
CT. A voxel is labelled vessel when its centre lies within the local radius of a
centreline piece (point-to-segment distance); the image adds a partial-volume rim of
one voxel outside the tube at up to half the vessel contrast, and small vessels are
slightly dimmer (×0.875 at radius 1), as partial volume makes them in real CT.

**A bone-like occluder.** Every case also holds a straight bar of bone (700–1000 HU,
radius 1.6–2.4 voxels, with the same one-voxel partial-volume rim), running along x
through the whole field of view at one (y, z). Its y is drawn in the middle of the
plane, so in a projection along z it crosses many vessel rays, and it is brighter
than every vessel: on those rays the brightest voxel is bone, not vessel. Its z is
the slice nearest a drawn depth at which the bar (rim included) touches no vessel,
vessel rim or tumour voxel, so the bar hides vessels in the projection without
touching them in 3D. It is labelled background (the MSD labels have no bone class).
The MIP stage's occluder removal (:mod:`segline.experiments.vessels.mip`) exists for
such structures.

All voxel values come from integer noise (:class:`CounterRNG`, exact box sums) and
element-wise float64 ``+ - * /``, ``sqrt``, ``min``/``max`` and comparisons, so the
result is the same bytes on every platform (no sin/cos/exp/log, no float reductions).

Example:
    >>> cases = toy_vessel_cases(seed=0, n_cases=2, n_test=0)
    >>> [c.case_id for c in cases], cases[0].image.dtype.name, cases[0].label.dtype.name
    (['hepaticvessel_001', 'hepaticvessel_002'], 'int16', 'uint8')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from segline import atomic
from segline.datasets.deterministic import (
    CounterRNG,
    Entry,
    smooth_noise,
    tar_bytes,
)
from segline.datasets.toy_msd import MsdToyCase, msd_dataset_json, msd_entries
from segline.datasets.toys import register_toy

TASK_DIR = "Task08_HepaticVessel"
CASE_PREFIX = "hepaticvessel_"
N_CASES = 12  # labelled cases in the pinned archive
N_TEST = 2  # unlabelled cases in the pinned archive

IN_PLANE = 64  # voxels along x and y
DEPTH_RANGE = (32, 40)  # slices along z, inclusive
SPACING_256THS = (192, 224)  # in-plane spacing k/256 mm (0.75–0.875; float32-exact)
SLICE_MM = 2.5

HU_LIVER = 60.0
LIVER_TEXTURE_STD = 10.0
WHITE_NOISE_STD = 8.0
VESSEL_CONTRAST = (120.0, 170.0)  # HU above the liver, drawn per tree
TUMOUR_CONTRAST = -35.0  # hypodense lesion
TUMOUR_PROBABILITY_PERCENT = 50
HU_MIN, HU_MAX = -1024, 3071

# Tree growth, in voxel index units.
TRUNK_RADIUS = (2.6, 3.2)
MIN_RADIUS = 1.0  # no branch thinner than this at its start
BRANCH_TAPER = 0.9  # radius at a branch's end / at its start
CHILD_RADIUS = (0.74, 0.88)  # child start radius / parent end radius
TRUNK_LENGTH = (20.0, 26.0)
CHILD_LENGTH = (0.6, 0.85)  # child length / parent length
PIECES = 3  # straight pieces per branch
BEND = 0.3  # direction change per piece (relative to a unit direction)
SPLIT = (0.55, 1.0)  # lateral offset of a child's direction (relative)
Z_DAMP = 0.35  # multiplies the z component of every new direction
MARGIN = 2.0  # centrelines stay this many voxels inside the volume
RIM = 1.0  # partial-volume rim outside a tube, voxels

# The bone-like occluder bar (module docstring).
BONE_CONTRAST = (640.0, 940.0)  # HU above the liver: 700-1000 HU
BONE_RADIUS = (1.6, 2.4)  # voxels
BONE_ALONG_Y = (0.3, 0.7)  # position in y, fraction of the plane
BONE_DEPTH = (0.1, 0.9)  # preferred position in z, fraction of the slices

Vec = tuple[float, float, float]


@dataclass(frozen=True)
class Segment:
    """One straight piece of a vessel centreline, in voxel index coordinates (i, j, k).

    Attributes:
        a, b: end points (float voxel indices, NIfTI order x, y, z).
        ra, rb: tube radius at ``a`` and ``b`` (voxels; linear in between).
        contrast: enhancement of this piece over the background (HU).
    """

    a: Vec
    b: Vec
    ra: float
    rb: float
    contrast: float


@dataclass(frozen=True)
class ToyCase(MsdToyCase):
    """One generated case, as the NIfTI files hold it.

    Attributes:
        number: the case number N (file ``hepaticvessel_NNN.nii.gz``).
        image: (X, Y, Z) int16, Hounsfield units.
        label: (X, Y, Z) uint8 in {0, 1 vessel, 2 tumour}; kept for unlabelled cases
            too, whose label is not written to the archive.
        affine: 4×4 float64 voxel → world (mm) map, as stored in the header.
        labelled: whether the case goes to imagesTr/labelsTr (else imagesTs).
        occluder: (X, Y, Z) bool, the bone bar with its partial-volume rim (every
            voxel it brightens); not written to the archive, for tests of the
            occluder removal.
    """

    case_prefix: ClassVar[str] = CASE_PREFIX
    digits: ClassVar[int] = 3

    occluder: np.ndarray | None = None


def training_numbers(n: int) -> list[int]:
    """The first ``n`` labelled case numbers: not multiples of 3 (1, 2, 4, 5, 7, ...)."""
    return [k for k in range(1, 3 * n + 1) if k % 3][:n]


def unlabelled_numbers(n: int) -> list[int]:
    """The first ``n`` unlabelled case numbers: multiples of 3 (3, 6, 9, ...)."""
    if n < 0:
        raise ValueError(f"n_test must be >= 0, got {n}")
    return [3 * (k + 1) for k in range(n)]


# ---------------------------------------------------------------------------
# Vessel trees
# ---------------------------------------------------------------------------


def _unit(v: Vec) -> Vec:
    """``v`` scaled to length 1 (IEEE-exact ops only)."""
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return (v[0] / n, v[1] / n, v[2] / n)


def _damped(v: Vec) -> Vec:
    """A new direction: ``v`` with its z component damped by :data:`Z_DAMP`, unit length."""
    return _unit((v[0], v[1], v[2] * Z_DAMP))


def _random_vec(rng: CounterRNG) -> Vec:
    """A vector with components uniform in [-1, 1)."""
    return (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0))


def _step_inside(p: Vec, u: Vec, length: float, shape: tuple[int, int, int]) -> tuple[Vec, Vec]:
    """End point of a piece from ``p`` along ``u``, reflecting ``u`` off the walls.

    Any direction component that would take the end point closer than
    :data:`MARGIN` voxels to a face is flipped (the end point is then clamped, for
    the rare piece longer than the volume). Returns ``(end, direction used)``.
    """
    d = list(u)
    for axis in range(3):
        lo, hi = MARGIN, shape[axis] - 1 - MARGIN
        q = p[axis] + d[axis] * length
        if q < lo or q > hi:
            d[axis] = -d[axis]
    end = tuple(
        min(max(p[a] + d[a] * length, MARGIN), shape[a] - 1 - MARGIN) for a in range(3)
    )
    return (end[0], end[1], end[2]), (d[0], d[1], d[2])


def grow_tree(
    rng: CounterRNG,
    shape: tuple[int, int, int],
    start: Vec,
    direction: Vec,
    radius: float,
    length: float,
    contrast: float,
) -> list[Segment]:
    """Centreline pieces of one branching vessel tree (see the module docstring).

    Branches are grown depth-first, each from its own child stream of ``rng``, so
    the tree depends only on the arguments. Used by the toy cases and, at a larger
    scale, by ``bench/bench_pseudo.py``.

    Args:
        rng: the tree's random stream.
        shape: volume shape (voxels, index order of the points).
        start: trunk origin (voxel indices).
        direction: trunk direction (any length; z damped and normalised here).
        radius: trunk radius at ``start`` (voxels).
        length: trunk length (voxels); children are shorter.
        contrast: enhancement over the background (HU); small vessels get less.

    Returns:
        The pieces, trunk first.
    """
    out: list[Segment] = []
    _grow_branch(rng, shape, start, _damped(direction), radius, length, contrast, out)
    return out


def _dimmed(contrast: float, r: float) -> float:
    """Partial-volume dimming of thin vessels: ×(0.75 + 0.125 r), at most ×1."""
    return contrast * min(1.0, 0.75 + 0.125 * r)


def _grow_branch(
    rng: CounterRNG,
    shape: tuple[int, int, int],
    p: Vec,
    u: Vec,
    radius: float,
    length: float,
    contrast: float,
    out: list[Segment],
) -> None:
    """Append one branch (``PIECES`` pieces) and, recursively, its two children."""
    r_end = radius * BRANCH_TAPER
    piece = length / PIECES
    r = radius
    for n in range(PIECES):
        if n:
            v = _random_vec(rng)
            u = _damped((u[0] + BEND * v[0], u[1] + BEND * v[1], u[2] + BEND * v[2]))
        q, u = _step_inside(p, u, piece, shape)
        r_next = radius + (r_end - radius) * ((n + 1) / PIECES)
        out.append(Segment(p, q, r, r_next, _dimmed(contrast, 0.5 * (r + r_next))))
        p, r = q, r_next
    # Children: lateral unit vector w perpendicular to u, directions u ± s·w.
    w = _random_vec(rng)
    dot = w[0] * u[0] + w[1] * u[1] + w[2] * u[2]
    w = (w[0] - dot * u[0], w[1] - dot * u[1], w[2] - dot * u[2])
    if w[0] * w[0] + w[1] * w[1] + w[2] * w[2] < 1e-6:  # degenerate draw: any normal
        w = (-u[1], u[0], 0.0)
    w = _unit(w)
    for side, name in ((1.0, "left"), (-1.0, "right")):
        child = rng.child(name)
        ratio = child.uniform(*CHILD_RADIUS)
        r_child = r_end * ratio
        if r_child < MIN_RADIUS:
            continue
        s = side * child.uniform(*SPLIT)
        d = _damped((u[0] + s * w[0], u[1] + s * w[1], u[2] + s * w[2]))
        grown = length * child.uniform(*CHILD_LENGTH)
        _grow_branch(child, shape, p, d, r_child, grown, contrast, out)


def rasterise_tubes(
    segments: list[Segment], shape: tuple[int, int, int], rim: float = RIM
) -> tuple[np.ndarray, np.ndarray]:
    """Label and enhancement of a union of tapered tubes on a voxel grid.

    For each voxel centre c and piece (a, b): t = clip(<c − a, b − a> / |b − a|², 0,
    1), d = |c − a − t (b − a)| and the local radius r(t) = ra + t (rb − ra); the
    voxel is inside when d ≤ r(t). Only the piece's bounding box (plus radius and
    rim) is visited, so the cost is proportional to the tube volume, not the grid.

    Args:
        segments: centreline pieces (voxel index coordinates).
        shape: grid shape.
        rim: width (voxels) of the partial-volume rim outside a tube, where the
            enhancement falls linearly from half the contrast to 0.

    Returns:
        ``(inside, enhancement)``: bool mask and float64 HU to add (the maximum over
        pieces of contrast × weight; weight 1 inside, ``0.5 (1 − (d − r)/rim)`` in
        the rim).
    """
    inside = np.zeros(shape, dtype=bool)
    enhance = np.zeros(shape, dtype=np.float64)
    for seg in segments:
        reach = max(seg.ra, seg.rb) + rim + 1.0
        box = []
        for axis in range(3):
            lo = math.floor(min(seg.a[axis], seg.b[axis]) - reach)
            hi = math.ceil(max(seg.a[axis], seg.b[axis]) + reach) + 1
            box.append(slice(max(lo, 0), min(hi, shape[axis])))
        if any(s.start >= s.stop for s in box):
            continue
        ci = np.arange(box[0].start, box[0].stop, dtype=np.float64)[:, None, None] - seg.a[0]
        cj = np.arange(box[1].start, box[1].stop, dtype=np.float64)[None, :, None] - seg.a[1]
        ck = np.arange(box[2].start, box[2].stop, dtype=np.float64)[None, None, :] - seg.a[2]
        ei, ej, ek = seg.b[0] - seg.a[0], seg.b[1] - seg.a[1], seg.b[2] - seg.a[2]
        norm2 = ei * ei + ej * ej + ek * ek
        if norm2 > 0.0:
            t = np.clip((ci * ei + cj * ej + ck * ek) / norm2, 0.0, 1.0)
        else:
            t = np.zeros((1, 1, 1))
        di, dj, dk = ci - t * ei, cj - t * ej, ck - t * ek
        dist = np.sqrt(di * di + dj * dj + dk * dk)
        radius = seg.ra + t * (seg.rb - seg.ra)
        excess = dist - radius
        box_t = tuple(box)
        inside[box_t] |= excess <= 0.0
        weight = np.where(excess <= 0.0, 1.0, np.clip(0.5 - 0.5 * excess / rim, 0.0, 0.5))
        np.maximum(enhance[box_t], seg.contrast * weight, out=enhance[box_t])
    return inside, enhance


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def _tree_specs(geo: CounterRNG, shape: tuple[int, int, int]) -> list[tuple[Vec, Vec]]:
    """(start, direction) of the two trunks: entering from two different faces.

    The first trunk enters through a face of constant x at ~35 % depth, the second
    through a face of constant y at ~65 % depth, both heading inward (plus a random
    tilt), so the trees overlap in a projection along z but not in 3D.
    """
    nx, ny, nz = shape
    specs: list[tuple[Vec, Vec]] = []
    for n, depth in enumerate((0.35, 0.65)):
        side = geo.integers(0, 2)  # low or high face
        along = geo.uniform(0.3, 0.7)
        k = nz * depth + geo.uniform(-2.0, 2.0)
        tilt = _random_vec(geo)
        if n == 0:
            i = MARGIN if side == 0 else nx - 1 - MARGIN
            start = (i, ny * along, k)
            inward = (1.0 if side == 0 else -1.0, 0.0, 0.0)
        else:
            j = MARGIN if side == 0 else ny - 1 - MARGIN
            start = (nx * along, j, k)
            inward = (0.0, 1.0 if side == 0 else -1.0, 0.0)
        direction = (inward[0] + 0.4 * tilt[0], inward[1] + 0.4 * tilt[1], 0.3 * tilt[2])
        specs.append((start, direction))
    return specs


def _tumour(geo: CounterRNG, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoidal lesion (mask) and its partial-volume weight, or empty arrays.

    Present with probability :data:`TUMOUR_PROBABILITY_PERCENT` %; semi-axes 4–7
    voxels in-plane and 2–3.5 slices, centred away from the faces. The weight is 1
    inside, falling linearly to 0 over a normalised rim of 0.25.
    """
    present = geo.integers(0, 100) < TUMOUR_PROBABILITY_PERCENT
    ax, ay, az = geo.uniform(4.0, 7.0), geo.uniform(4.0, 7.0), geo.uniform(2.0, 3.5)
    c = [geo.uniform(0.25, 0.75) * (n - 1) for n in shape]
    if not present:
        return np.zeros(shape, dtype=bool), np.zeros(shape, dtype=np.float64)
    i = (np.arange(shape[0], dtype=np.float64)[:, None, None] - c[0]) / ax
    j = (np.arange(shape[1], dtype=np.float64)[None, :, None] - c[1]) / ay
    k = (np.arange(shape[2], dtype=np.float64)[None, None, :] - c[2]) / az
    q = np.sqrt(i * i + j * j + k * k)
    return q <= 1.0, np.clip((1.25 - q) / 0.25, 0.0, 1.0)


def bone_bar(
    geo: CounterRNG, shape: tuple[int, int, int], avoid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The bone-like occluder: a bar along x (module docstring), away from ``avoid``.

    Args:
        geo: the bar's random stream.
        shape: volume shape (X, Y, Z).
        avoid: bool (X, Y, Z), voxels the bar and its rim must not touch (vessels,
            their rims, the tumour).

    Returns:
        ``(inside, enhancement)`` as :func:`rasterise_tubes` gives them (HU over the
        liver). Among the slices where the bar touches nothing in ``avoid``, the one
        nearest the drawn depth (the lower one on a tie); where every slice touches
        something (never in the pinned set), the one touching the fewest voxels.
    """
    nx, ny, nz = shape
    radius = geo.uniform(*BONE_RADIUS)
    contrast = geo.uniform(*BONE_CONTRAST)
    j = ny * geo.uniform(*BONE_ALONG_Y)
    want = nz * geo.uniform(*BONE_DEPTH)
    best: tuple[int, float, int] | None = None
    chosen: tuple[np.ndarray, np.ndarray] | None = None
    for k in range(nz):
        seg = Segment((-1.0, j, float(k)), (float(nx), j, float(k)), radius, radius, contrast)
        inside, enhance = rasterise_tubes([seg], shape)
        key = (int(np.count_nonzero((enhance > 0.0) & avoid)), abs(k - want), k)
        if best is None or key < best:
            best, chosen = key, (inside, enhance)
    if chosen is None:
        raise RuntimeError("toy vessel case: no slice for the bone bar")
    return chosen


def make_case(seed: int, number: int, labelled: bool = True) -> ToyCase:
    """Generate case ``number`` from ``seed`` (independent of every other case).

    Args:
        seed: the toy data set's seed.
        number: the case number (selects the case's random stream).
        labelled: training case (True) or unlabelled test case (False).

    Returns:
        The case's image (HU), label and affine.
    """
    rng = CounterRNG(seed, "vessels", number)
    geo = rng.child("geometry")
    nx = ny = IN_PLANE
    nz = geo.integers(DEPTH_RANGE[0], DEPTH_RANGE[1] + 1)
    shape = (nx, ny, nz)
    sxy = geo.integers(SPACING_256THS[0], SPACING_256THS[1] + 1) / 256.0
    affine = np.array(
        [
            [-sxy, 0.0, 0.0, sxy * geo.integers(20, 60)],
            [0.0, -sxy, 0.0, sxy * geo.integers(60, 120)],
            [0.0, 0.0, SLICE_MM, -SLICE_MM * geo.integers(40, 120)],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )

    segments: list[Segment] = []
    for n, (start, direction) in enumerate(_tree_specs(geo, shape)):
        tree = rng.child("tree", n)
        radius = tree.uniform(*TRUNK_RADIUS)
        length = tree.uniform(*TRUNK_LENGTH)
        contrast = tree.uniform(*VESSEL_CONTRAST)
        segments += grow_tree(tree, shape, start, direction, radius, length, contrast)
    vessel, enhance = rasterise_tubes(segments, shape)
    if not vessel.any():
        raise RuntimeError(f"toy vessel case {number}: no vessel voxel")
    tumour, tumour_weight = _tumour(rng.child("tumour"), shape)
    bone, bone_enhance = bone_bar(rng.child("bone"), shape,
                                  (enhance > 0.0) | (tumour_weight > 0.0))

    tex = rng.child("texture")
    img = HU_LIVER + smooth_noise(tex.child("liver"), shape, (3, 3, 1), 2, std=LIVER_TEXTURE_STD)
    img = img + TUMOUR_CONTRAST * tumour_weight
    img = img + np.maximum(enhance, bone_enhance)
    img = img + tex.child("white").normal(shape, terms=4) * WHITE_NOISE_STD
    image = np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)

    label = np.zeros(shape, dtype=np.uint8)
    label[tumour] = 2
    label[bone] = 0
    label[vessel] = 1
    return ToyCase(number, image, label, affine, labelled, bone_enhance > 0.0)


def toy_vessel_cases(seed: int = 0, n_cases: int = N_CASES, n_test: int = N_TEST) -> list[ToyCase]:
    """All cases of the toy set: ``n_cases`` labelled, then ``n_test`` unlabelled."""
    if n_cases < 0:
        raise ValueError(f"n_cases must be >= 0, got {n_cases}")
    return [make_case(seed, n, True) for n in training_numbers(n_cases)] + [
        make_case(seed, n, False) for n in unlabelled_numbers(n_test)
    ]


def dataset_json(cases: list[ToyCase], seed: int) -> dict[str, object]:
    """The ``dataset.json`` of the toy set, with the real file's keys and labels.

    The training list is in a shuffled (seeded) order, so readers must sort it.
    """
    return msd_dataset_json(
        cases,
        seed,
        name="HepaticVessel",
        description="Hepatic Vessel and Tumour Segmentation (segline synthetic toy CT, "
        f"seed {seed})",
        reference="segline preprocess/make_toy.py (layout of MSD Task08 HepaticVessel)",
        labels={"0": "background", "1": "Vessel", "2": "Tumour"},
        listing_key="vessels",
    )


def toy_vessel_entries(
    seed: int = 0, n_cases: int = N_CASES, n_test: int = N_TEST, junk: bool = True
) -> list[Entry]:
    """The archive's files as ``(path, bytes)``, sorted by path (no folder entries).

    Args:
        seed: data set seed.
        n_cases: labelled cases.
        n_test: unlabelled cases.
        junk: add ``._*`` AppleDouble files (the unpack stage must drop them).
    """
    cases = toy_vessel_cases(seed, n_cases, n_test)
    return msd_entries(TASK_DIR, cases, dataset_json(cases, seed), junk)


def toy_vessel_bytes(seed: int = 0, n_cases: int = N_CASES, n_test: int = N_TEST) -> bytes:
    """The complete toy archive (uncompressed USTAR tar with folder entries)."""
    return tar_bytes(toy_vessel_entries(seed, n_cases, n_test))


def write_toy_vessels(
    path: Path, seed: int = 0, n_cases: int = N_CASES, n_test: int = N_TEST
) -> None:
    """Write the toy archive to ``path`` atomically (``path.tmp``, then rename).

    Args:
        path: output file, normally ``data/vessels-toy.tar``.
        seed: data set seed (the pinned md5 in ``lineage/vessels-toy.lineage`` is for 0).
        n_cases: labelled cases (12 for the pinned archive).
        n_test: unlabelled cases (2 for the pinned archive).
    """
    atomic.write_bytes(Path(path), toy_vessel_bytes(seed, n_cases, n_test))


@register_toy("vessels")
def write_toy_archives(outs: list[Path], seed: int = 0) -> None:
    """``preprocess/make_toy.py`` entry point: the one vessel archive at ``outs[0]``."""
    if len(outs) != 1:
        raise ValueError(f"the vessel toy is one archive, got {len(outs)} outputs")
    write_toy_vessels(outs[0], seed=seed)
