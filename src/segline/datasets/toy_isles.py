"""Deterministic toy ISLES 2018 archives: CT perfusion maps of a brain with a stroke lesion.

Two zip files with the layout and naming of the real ``ISLES2018_Training.zip`` and
``ISLES2018_Testing.zip`` (SMIR export, one folder per volume)::

    TRAINING/case_N/SMIR.Brain.XX.O.<MOD>.<id>/SMIR.Brain.XX.O.<MOD>.<id>.nii
    TESTING/case_N/...                                    (no OT: no ground truth)

with ``MOD`` in ``CT`` (int32, HU), ``CT_CBF`` and ``CT_CBV`` (uint16), ``CT_MTT`` and
``CT_Tmax`` (float64, seconds), ``OT`` (uint8, the lesion mask; training only) and
``CT_4DPWI`` (the raw perfusion series, 4D int16, a few time points here), the dtypes
of the real files. SMIR ids are consecutive within a case, in the real order
(4DPWI, CT, CBF, CBV, MTT, OT, Tmax; e.g. training case_1 of the real set is
345561..345567), from a toy range (700001.., testing 800001..) that cannot be
mistaken for real ids. Each archive also carries the ``__MACOSX/.../._*`` AppleDouble
entries a macOS zip has, which the unpack stage drops, and the ``CT_4DPWI`` volumes
that ``isles.make`` excludes (``--exclude '*CT_4DPWI*'``).

Each case is a 64×64 axial slab of 4, 6 or 8 slices (4 or 5 mm thick, 0.80–0.98 mm
in-plane, like the real 256×256 slabs of 2–22 slices, on a smaller field of view):
an elliptic head (skull ~900 HU, air −1024 HU), grey and white matter, ventricles,
and one ischaemic lesion in one hemisphere:

* **core** (the ``OT`` label): CBF and CBV very low, MTT and Tmax high, CT a few HU
  darker (early hypodensity, barely visible on CT, as in reality);
* **penumbra** around it (not labelled): Tmax and MTT high but CBF only mildly
  reduced and CBV preserved, so Tmax alone over-segments and the network has to use
  CBF/CBV, as for real data;

at least one slice of every case has no lesion. Perfusion maps are zero outside the
brain (skull-stripped, as the real maps). Only integer noise, integer smoothing and
element-wise float64 ``+ - * /`` decide voxel values (see :mod:`deterministic`), and
MTT/Tmax are rounded to 1/64 s (exact binary fractions), so the archives are the same
bytes everywhere; their md5s are pinned in ``lineage/isles-toy.lineage``.

The generator's parameters are a :class:`ToyIslesParams`; its defaults are the toy
above. ``ISLES_HARD_TOY`` (``make -f isles.make TOY=hard``, md5s in
``lineage/isles-hard-toy.lineage``) is a hard variant on which loss methods differ: 30
labelled cases with 1–3 lesions of a few mm (0.1–1 % of the voxels), a core whose
CBF/CBV are close to the penumbra's, and twice the noise.

Example:
    >>> case = make_case(0, 1, labelled=True)
    >>> case.folder, case.volumes["CT"].dtype.name, case.volumes["OT"].dtype.name
    ('TRAINING/case_1', 'int32', 'uint8')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segline import atomic
from segline.datasets.deterministic import (
    APPLEDOUBLE,
    CounterRNG,
    Entry,
    box_gain,
    box_sum_nd,
    nifti_bytes,
    smooth_noise,
    zip_bytes,
)
from segline.datasets.toys import register_toy

PREFIX = "SMIR.Brain.XX.O."
TRAIN_DIR, TEST_DIR = "TRAINING", "TESTING"
# Modalities in the order of their SMIR ids within a case (as in the real export).
TRAIN_ORDER = ("CT_4DPWI", "CT", "CT_CBF", "CT_CBV", "CT_MTT", "OT", "CT_Tmax")
TEST_ORDER = tuple(m for m in TRAIN_ORDER if m != "OT")
TRAIN_ID0, TEST_ID0 = 700001, 800001  # toy SMIR id ranges (real ids are ~339000-347000)
N_TRAIN, N_TEST = 10, 3  # cases in the pinned archives

IN_PLANE = 64  # voxels along x and y
DEPTHS = (4, 6, 8)  # slices per case
SPACING_256THS = (205, 250)  # in-plane spacing k/256 mm (0.80-0.98 mm; float32-exact)
SLICE_MM = (4.0, 5.0)
PWI_FRAMES = 6  # time points of the toy CT_4DPWI series
BOLUS_HU = (0, 6, 22, 34, 20, 8)  # contrast enhancement per time point, HU at CBV 40

HU_AIR, HU_BONE, HU_GREY, HU_WHITE, HU_CSF = -1024.0, 900.0, 38.0, 28.0, 8.0
HU_CORE_DROP = 5.0  # early ischaemic hypodensity
# Perfusion values (grey, white, CSF) and their changes in the lesion.
CBF_NORMAL = (60.0, 28.0, 4.0)  # ml/100 g/min
CBV_NORMAL = (40.0, 22.0, 3.0)  # stored as uint16 like the real maps (arbitrary units)
MTT_NORMAL = (3.6, 4.4, 2.0)  # s
TMAX_NORMAL = (0.7, 1.0, 0.5)  # s
CBF_CORE, CBV_CORE, MTT_CORE, TMAX_CORE = 7.0, 9.0, 11.0, 12.0
CBF_PENUMBRA_FACTOR, CBV_PENUMBRA_FACTOR = 0.7, 1.1
MTT_PENUMBRA, TMAX_PENUMBRA = 8.0, 8.5
SECONDS_GRID = 64.0  # MTT / Tmax rounded to 1/64 s


@dataclass(frozen=True)
class ToyIslesParams:
    """Generator parameters of one toy variant; the defaults are the pinned ``isles`` toy.

    Lengths are in voxels (in-plane 0.80–0.98 mm, slices 4–5 mm), perfusion values in
    the units of the maps (see the module constants). ``ISLES_TOY`` reproduces the bytes
    pinned in ``lineage/isles-toy.lineage``; ``ISLES_HARD_TOY`` is the hard variant.

    Attributes:
        stream: name of the random stream family (cases of two variants are independent).
        n_train, n_test: cases in the training (labelled) and testing archives.
        depths: slices per case, one drawn per case.
        lesions: (min, max) lesions per case; with (1, 1) no count is drawn.
        lesion_radius: (min, max) in-plane semi-axis of a lesion's core, voxels.
        lesion_depth: (min, max) semi-axis across slices, slices.
        lesion_offset: (min, max) distance of a lesion centre from the midline, voxels.
        lesion_bumps: std of the smooth field that lobulates a lesion's outline.
        penumbra: penumbra outline at ``q < penumbra`` (core ``q < 1``): radius factor
            ``sqrt(penumbra)``.
        hu_core_drop: early hypodensity of the core on CT, HU.
        cbf_core, cbv_core, mtt_core, tmax_core: core values (CBF ml/100 g/min, CBV
            arbitrary units, MTT and Tmax s).
        cbf_penumbra_factor, cbv_penumbra_factor: penumbra CBF, CBV as a factor of normal.
        mtt_penumbra, tmax_penumbra: penumbra MTT, Tmax (s).
        noise: factor on every map's texture noise (1: the pinned toy's).
        attempts: draws of the lesions until some slice is lesion-free and the core is
            not empty (1: fail instead, as the pinned toy never needs a second draw).
        min_core_voxels: a draw whose core has fewer voxels is redrawn.
    """

    stream: str = "isles"
    n_train: int = N_TRAIN
    n_test: int = N_TEST
    depths: tuple[int, ...] = DEPTHS
    lesions: tuple[int, int] = (1, 1)
    lesion_radius: tuple[float, float] = (5.5, 10.0)
    lesion_depth: tuple[float, float] = (0.8, 1.4)
    lesion_offset: tuple[float, float] = (9.0, 14.0)
    lesion_bumps: float = 0.25
    penumbra: float = 2.6
    hu_core_drop: float = HU_CORE_DROP
    cbf_core: float = CBF_CORE
    cbv_core: float = CBV_CORE
    mtt_core: float = MTT_CORE
    tmax_core: float = TMAX_CORE
    cbf_penumbra_factor: float = CBF_PENUMBRA_FACTOR
    cbv_penumbra_factor: float = CBV_PENUMBRA_FACTOR
    mtt_penumbra: float = MTT_PENUMBRA
    tmax_penumbra: float = TMAX_PENUMBRA
    noise: float = 1.0
    attempts: int = 1
    min_core_voxels: int = 1


ISLES_TOY = ToyIslesParams()
# The hard variant (``make -f isles.make TOY=hard``), like ISLES lesions: 1-3 small
# lesions per case (core semi-axes 1.5-5 voxels, i.e. 1.2-4.9 mm: diameters of a few
# mm), a wide penumbra whose CBF/CBV lie close to the core's, twice the texture noise,
# a barely visible CT hypodensity, and 30 labelled cases so that a test split of 12
# cases supports a paired test. Tuned to be hard, not for any method.
ISLES_HARD_TOY = ToyIslesParams(
    stream="isles-hard",
    n_train=30,
    n_test=2,
    depths=(4, 5, 6),
    lesions=(1, 3),
    lesion_radius=(1.5, 5.0),
    lesion_depth=(0.6, 1.2),
    lesion_offset=(6.0, 16.0),
    lesion_bumps=0.2,
    penumbra=4.0,
    hu_core_drop=2.0,
    cbf_core=14.0,
    cbv_core=15.0,
    mtt_core=10.0,
    tmax_core=10.5,
    cbf_penumbra_factor=0.55,
    cbv_penumbra_factor=0.95,
    mtt_penumbra=8.5,
    tmax_penumbra=9.5,
    noise=2.0,
    attempts=20,
    min_core_voxels=4,
)


@dataclass(frozen=True)
class ToyCase:
    """One generated case, as its NIfTI files hold it.

    Attributes:
        number: N of ``case_N``.
        labelled: a TRAINING case (with ``OT``) or a TESTING case.
        volumes: modality -> voxel array (X, Y, Z), or (X, Y, Z, T) for ``CT_4DPWI``,
            in the real dtypes; ``OT`` is also kept for testing cases (not written).
        affine: 4×4 voxel -> world (mm) map, as in every file's header.
        ids: modality -> SMIR id of its file.
    """

    number: int
    labelled: bool
    volumes: dict[str, np.ndarray]
    affine: np.ndarray
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """``TRAINING/case_N`` or ``TESTING/case_N``."""
        return f"{TRAIN_DIR if self.labelled else TEST_DIR}/case_{self.number}"

    def name(self, modality: str) -> str:
        """``SMIR.Brain.XX.O.<MOD>.<id>``: the folder and file stem of one volume."""
        return f"{PREFIX}{modality}.{self.ids[modality]}"

    def files(self) -> list[Entry]:
        """``(archive path, NIfTI bytes)`` of the volumes the archive holds for this case."""
        order = TRAIN_ORDER if self.labelled else TEST_ORDER
        return [
            (
                f"{self.folder}/{self.name(m)}/{self.name(m)}.nii",
                nifti_bytes(self.volumes[m], self.affine),
            )
            for m in order
        ]


def smir_ids(number: int, labelled: bool) -> dict[str, int]:
    """Consecutive SMIR ids of case ``number`` (7 per training case, 6 per testing case)."""
    order = TRAIN_ORDER if labelled else TEST_ORDER
    first = (TRAIN_ID0 if labelled else TEST_ID0) + len(order) * (number - 1)
    return {m: first + i for i, m in enumerate(order)}


def _soft(mask: np.ndarray) -> np.ndarray:
    """Partial-volume weight: 1 inside ``mask``, half the 3×3 in-plane mean just outside."""
    radii = (1, 1, 0)
    mean = box_sum_nd(mask.astype(np.int64), radii).astype(np.float64) / float(box_gain(radii))
    return np.where(mask, 1.0, 0.5 * mean)


def _tissue(grey: np.ndarray, csf: np.ndarray, values: tuple[float, float, float]) -> np.ndarray:
    """Normal value per voxel: grey matter, white matter elsewhere, CSF in the ventricles."""
    g, w, c = values
    return np.where(csf, c, np.where(grey, g, w))


def _seconds(values: np.ndarray) -> np.ndarray:
    """Round to 1/64 s (exact in float64) and clip at 0."""
    return np.maximum(np.rint(values * SECONDS_GRID) / SECONDS_GRID, 0.0)


def _lesion_field(
    geo: CounterRNG,
    bumps: CounterRNG,
    params: ToyIslesParams,
    centre: tuple[float, float],
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    shape: tuple[int, int, int],
) -> np.ndarray:
    """``q + bumps`` of one lobulated ellipsoid lesion (core at < 1), in one hemisphere.

    Args:
        geo: stream of the lesion's geometry draws (side, centre, semi-axes).
        bumps: stream of its lobulation field.
        params: the variant's lesion ranges (voxels, slices).
        centre: head centre (x, y), voxels.
        grid: voxel index grids i, j, k (broadcastable to ``shape``).
        shape: (X, Y, Z) of the case.
    """
    i, j, k = grid
    cx, cy = centre
    nz = shape[2]
    side = 1.0 if geo.integers(0, 2) else -1.0
    li = cx + side * geo.uniform(*params.lesion_offset)
    lj = cy + geo.uniform(-9.0, 9.0)
    lk = geo.uniform(1.0, nz - 2.0)
    rx, ry = geo.uniform(*params.lesion_radius), geo.uniform(*params.lesion_radius)
    rz = geo.uniform(*params.lesion_depth)
    u, v, w = (i - li) / rx, (j - lj) / ry, (k - lk) / rz
    q = u * u + v * v + w * w
    return q + smooth_noise(bumps, shape, (2, 2, 0), 2, std=params.lesion_bumps)


def make_case(
    seed: int, number: int, labelled: bool = True, params: ToyIslesParams = ISLES_TOY
) -> ToyCase:
    """Generate ``case_<number>`` of the training (``labelled``) or testing set.

    Every case has its own random stream, so cases do not depend on one another.

    Args:
        seed: the toy data set's seed.
        number: N of ``case_N`` (>= 1).
        labelled: TRAINING (True) or TESTING (False) case.
        params: the toy variant (default: the pinned ``isles`` toy).

    Returns:
        the case's volumes (the real dtypes), affine and SMIR ids.
    """
    if number < 1:
        raise ValueError(f"case numbers start at 1, got {number}")
    split = "train" if labelled else "test"
    rng = CounterRNG(seed, params.stream, split, number)
    geo = rng.child("geometry")
    nx = ny = IN_PLANE
    nz = params.depths[geo.integers(0, len(params.depths))]
    sxy = geo.integers(SPACING_256THS[0], SPACING_256THS[1] + 1) / 256.0
    sz = SLICE_MM[geo.integers(0, len(SLICE_MM))]
    affine = np.array(
        [
            [-sxy, 0.0, 0.0, sxy * (nx // 2)],
            [0.0, -sxy, 0.0, sxy * (ny // 2) + geo.integers(-10, 11)],
            [0.0, 0.0, sz, float(geo.integers(0, 60))],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    i = np.arange(nx, dtype=np.float64)[:, None, None]
    j = np.arange(ny, dtype=np.float64)[None, :, None]
    k = np.arange(nz, dtype=np.float64)[None, None, :]
    shape = (nx, ny, nz)

    # Head: skull ring (3 voxels) around the brain; the slab narrows slightly upward.
    cx = (nx - 1) / 2.0 + geo.uniform(-1.5, 1.5)
    cy = (ny - 1) / 2.0 + geo.uniform(-1.5, 1.5)
    taper = 1.0 - 0.012 * k
    ha = geo.uniform(25.0, 27.5) * taper
    hb = geo.uniform(28.0, 30.5) * taper
    hx, hy = (i - cx) / ha, (j - cy) / hb
    head = hx * hx + hy * hy < 1.0
    bx, by = (i - cx) / (ha - 3.0), (j - cy) / (hb - 3.0)
    rho = bx * bx + by * by  # 0 at the centre, 1 at the inner skull surface
    brain = rho < 1.0
    # Cortical grey matter: an outer rim of irregular width; ventricles near the midline.
    folds = smooth_noise(rng.child("folds"), shape, (2, 2, 0), 2, std=0.08)
    grey = brain & (rho + folds > 0.62)
    vw = geo.uniform(2.0, 3.0)
    vx1, vx2 = (i - (cx - 3.5)) / vw, (i - (cx + 3.5)) / vw
    vy = (j - (cy - 2.0)) / geo.uniform(7.0, 9.0)
    csf = brain & ((vx1 * vx1 + vy * vy < 1.0) | (vx2 * vx2 + vy * vy < 1.0))

    # Lesions: lobulated ellipsoids, each in one hemisphere away from the midline. The
    # first lesion of the first draw continues the geometry stream (the pinned toy's
    # bytes); further lesions and redraws have their own streams.
    for attempt in range(params.attempts):
        base = rng if attempt == 0 else rng.child("attempt", attempt)
        lo, hi = params.lesions
        count = lo if lo == hi else base.child("count").integers(lo, hi + 1)
        field = np.full(shape, np.inf)
        for n in range(count):
            lgeo = geo if (attempt, n) == (0, 0) else base.child("lesion-geometry", n)
            bumps = base.child("lesion") if n == 0 else base.child("lesion", n)
            one = _lesion_field(lgeo, bumps, params, (cx, cy), (i, j, k), shape)
            field = np.minimum(field, one)
        core = brain & ~csf & (field < 1.0)
        penumbra = brain & ~csf & ~core & (field < params.penumbra)
        per_slice = core.any(axis=(0, 1))
        if per_slice.any() and not per_slice.all() and core.sum() >= params.min_core_voxels:
            break
    else:
        raise RuntimeError(
            f"toy isles case {number}: lesion in {int(per_slice.sum())} "
            f"of {nz} slices, {int(core.sum())} core voxels (need some "
            f"slices, not all, and >= {params.min_core_voxels} voxels)"
        )
    wcore, wpen = _soft(core), _soft(penumbra | core)

    tex = rng.child("texture")

    def noise(name: str, std: float) -> np.ndarray:
        """Smooth tissue texture plus a little white noise (units of the map)."""
        stream = tex.child(name)
        std = std * params.noise
        smooth = smooth_noise(stream.child("smooth"), shape, (2, 2, 0), 2, std=std)
        return smooth + stream.child("white").normal(shape, terms=4) * (0.4 * std)

    # CT (HU, int32): air, skull, brain; the core a few HU darker.
    ct = _tissue(grey, csf, (HU_GREY, HU_WHITE, HU_CSF)) - params.hu_core_drop * wcore
    ct = ct + noise("ct", 3.0)
    skull = HU_BONE + noise("bone", 80.0)
    ct = np.where(brain, ct, np.where(head, skull, HU_AIR + noise("air", 6.0)))
    ct_i = np.clip(np.rint(ct), -1024, 3071).astype(np.int32)

    # Perfusion maps: normal tissue, penumbra, core; zero outside the brain.
    cbf = _tissue(grey, csf, CBF_NORMAL)
    cbf = cbf + wpen * (params.cbf_penumbra_factor - 1.0) * cbf
    cbf = cbf + wcore * (params.cbf_core - cbf) + noise("cbf", 4.0)
    cbv = _tissue(grey, csf, CBV_NORMAL)
    cbv = cbv + wpen * (params.cbv_penumbra_factor - 1.0) * cbv
    cbv = cbv + wcore * (params.cbv_core - cbv) + noise("cbv", 2.5)
    mtt = _tissue(grey, csf, MTT_NORMAL)
    mtt = mtt + wpen * (params.mtt_penumbra - mtt)
    mtt = mtt + wcore * (params.mtt_core - mtt) + noise("mtt", 0.5)
    tmax = _tissue(grey, csf, TMAX_NORMAL)
    tmax = tmax + wpen * (params.tmax_penumbra - tmax)
    tmax = tmax + wcore * (params.tmax_core - tmax) + noise("tmax", 0.5)
    cbf_u = np.where(brain, np.clip(np.rint(cbf), 1, 65535), 0).astype(np.uint16)
    cbv_u = np.where(brain, np.clip(np.rint(cbv), 1, 65535), 0).astype(np.uint16)
    mtt_s = np.where(brain, _seconds(mtt), 0.0)
    tmax_s = np.where(brain, _seconds(tmax), 0.0)

    # CT_4DPWI: the CT plus a contrast bolus scaled by the (integer) CBV.
    base = np.clip(ct_i, -1024, 3071).astype(np.int64)
    frames = [base + (bolus * cbv_u.astype(np.int64)) // 40 for bolus in BOLUS_HU[:PWI_FRAMES]]
    pwi = np.stack(frames, axis=-1).astype(np.int16)

    volumes = {
        "CT": ct_i,
        "CT_CBF": cbf_u,
        "CT_CBV": cbv_u,
        "CT_MTT": mtt_s,
        "CT_Tmax": tmax_s,
        "OT": core.astype(np.uint8),
        "CT_4DPWI": pwi,
    }
    return ToyCase(number, labelled, volumes, affine, smir_ids(number, labelled))


def toy_isles_cases(
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    params: ToyIslesParams = ISLES_TOY,
) -> list[ToyCase]:
    """Training cases ``case_1..n_train`` then testing cases ``case_1..n_test``.

    ``None`` counts are the variant's own (``params.n_train``, ``params.n_test``).
    """
    n_train = params.n_train if n_train is None else n_train
    n_test = params.n_test if n_test is None else n_test
    if n_train < 0 or n_test < 0:
        raise ValueError(f"case counts must be >= 0, got {n_train}, {n_test}")
    return [make_case(seed, n, True, params) for n in range(1, n_train + 1)] + [
        make_case(seed, n, False, params) for n in range(1, n_test + 1)
    ]


def _with_junk(files: list[Entry]) -> list[Entry]:
    """Add the ``__MACOSX/<folder>/._<name>`` entry a macOS zip has for every member."""
    out = list(files)
    seen: set[str] = set()
    for path, _ in files:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            member = "/".join(parts[:depth])
            if member in seen:
                continue
            seen.add(member)
            folder, _, name = member.rpartition("/")
            out.append((f"__MACOSX/{folder + '/' if folder else ''}._{name}", APPLEDOUBLE))
    return out


def toy_isles_entries(
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    junk: bool = True,
    params: ToyIslesParams = ISLES_TOY,
) -> tuple[list[Entry], list[Entry]]:
    """The two archives' files as ``(path, bytes)`` lists, sorted by path.

    Returns:
        (training zip entries, testing zip entries), no folder entries (the zip
        writer adds them).
    """
    cases = toy_isles_cases(seed, n_train, n_test, params)
    train = [f for c in cases if c.labelled for f in c.files()]
    test = [f for c in cases if not c.labelled for f in c.files()]
    if junk:
        train, test = _with_junk(train), _with_junk(test)
    return sorted(train), sorted(test)


def toy_isles_bytes(
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    params: ToyIslesParams = ISLES_TOY,
) -> tuple[bytes, bytes]:
    """The complete ``(training, testing)`` zip archives (members stored, fixed dates)."""
    train, test = toy_isles_entries(seed, n_train, n_test, params=params)
    return zip_bytes(train), zip_bytes(test)


def _write(outs: list[Path], seed: int, params: ToyIslesParams) -> None:
    """Write the training and testing zips of variant ``params`` atomically."""
    if len(outs) != 2:
        raise ValueError(f"the isles toy is two archives (training, testing), got {len(outs)}")
    train, test = toy_isles_bytes(seed, params=params)
    atomic.write_bytes(Path(outs[0]), train)
    atomic.write_bytes(Path(outs[1]), test)


@register_toy("isles")
def write_toy_archives(outs: list[Path], seed: int = 0) -> None:
    """``preprocess/make_toy.py --dataset isles``: write the training and testing zips.

    Args:
        outs: ``[training zip, testing zip]`` (normally ``data/isles-toy_Training.zip``
            and ``data/isles-toy_Testing.zip``), each written atomically.
        seed: data set seed (the md5s in ``lineage/isles-toy.lineage`` are for 0).
    """
    _write(outs, seed, ISLES_TOY)


@register_toy("isles-hard")
def write_hard_toy_archives(outs: list[Path], seed: int = 0) -> None:
    """``preprocess/make_toy.py --dataset isles-hard``: the hard variant's two zips.

    Args:
        outs: ``[training zip, testing zip]`` (normally ``data/isles-hard-toy_Training.zip``
            and ``data/isles-hard-toy_Testing.zip``), each written atomically.
        seed: data set seed (the md5s in ``lineage/isles-hard-toy.lineage`` are for 0).
    """
    _write(outs, seed, ISLES_HARD_TOY)
