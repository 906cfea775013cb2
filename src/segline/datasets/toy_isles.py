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
            (f"{self.folder}/{self.name(m)}/{self.name(m)}.nii",
             nifti_bytes(self.volumes[m], self.affine))
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


def make_case(seed: int, number: int, labelled: bool = True) -> ToyCase:
    """Generate ``case_<number>`` of the training (``labelled``) or testing set.

    Every case has its own random stream, so cases do not depend on one another.

    Args:
        seed: the toy data set's seed.
        number: N of ``case_N`` (>= 1).
        labelled: TRAINING (True) or TESTING (False) case.

    Returns:
        the case's volumes (the real dtypes), affine and SMIR ids.
    """
    if number < 1:
        raise ValueError(f"case numbers start at 1, got {number}")
    split = "train" if labelled else "test"
    rng = CounterRNG(seed, "isles", split, number)
    geo = rng.child("geometry")
    nx = ny = IN_PLANE
    nz = DEPTHS[geo.integers(0, len(DEPTHS))]
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

    # Lesion: a lobulated ellipsoid in one hemisphere, away from the midline.
    side = 1.0 if geo.integers(0, 2) else -1.0
    li = cx + side * geo.uniform(9.0, 14.0)
    lj = cy + geo.uniform(-9.0, 9.0)
    lk = geo.uniform(1.0, nz - 2.0)
    rx, ry = geo.uniform(5.5, 10.0), geo.uniform(5.5, 10.0)
    rz = geo.uniform(0.8, 1.4)
    u, v, w = (i - li) / rx, (j - lj) / ry, (k - lk) / rz
    q = u * u + v * v + w * w
    bumps = smooth_noise(rng.child("lesion"), shape, (2, 2, 0), 2, std=0.25)
    core = brain & ~csf & (q + bumps < 1.0)
    penumbra = brain & ~csf & ~core & (q + bumps < 2.6)
    per_slice = core.any(axis=(0, 1))
    if not per_slice.any() or per_slice.all():
        raise RuntimeError(f"toy isles case {number}: lesion in {int(per_slice.sum())} "
                           f"of {nz} slices (need some, not all)")
    wcore, wpen = _soft(core), _soft(penumbra | core)

    tex = rng.child("texture")

    def noise(name: str, std: float) -> np.ndarray:
        """Smooth tissue texture plus a little white noise (units of the map)."""
        stream = tex.child(name)
        smooth = smooth_noise(stream.child("smooth"), shape, (2, 2, 0), 2, std=std)
        return smooth + stream.child("white").normal(shape, terms=4) * (0.4 * std)

    # CT (HU, int32): air, skull, brain; the core a few HU darker.
    ct = _tissue(grey, csf, (HU_GREY, HU_WHITE, HU_CSF)) - HU_CORE_DROP * wcore
    ct = ct + noise("ct", 3.0)
    skull = HU_BONE + noise("bone", 80.0)
    ct = np.where(brain, ct, np.where(head, skull, HU_AIR + noise("air", 6.0)))
    ct_i = np.clip(np.rint(ct), -1024, 3071).astype(np.int32)

    # Perfusion maps: normal tissue, penumbra, core; zero outside the brain.
    cbf = _tissue(grey, csf, CBF_NORMAL)
    cbf = cbf + wpen * (CBF_PENUMBRA_FACTOR - 1.0) * cbf
    cbf = cbf + wcore * (CBF_CORE - cbf) + noise("cbf", 4.0)
    cbv = _tissue(grey, csf, CBV_NORMAL)
    cbv = cbv + wpen * (CBV_PENUMBRA_FACTOR - 1.0) * cbv
    cbv = cbv + wcore * (CBV_CORE - cbv) + noise("cbv", 2.5)
    mtt = _tissue(grey, csf, MTT_NORMAL)
    mtt = mtt + wpen * (MTT_PENUMBRA - mtt)
    mtt = mtt + wcore * (MTT_CORE - mtt) + noise("mtt", 0.5)
    tmax = _tissue(grey, csf, TMAX_NORMAL)
    tmax = tmax + wpen * (TMAX_PENUMBRA - tmax)
    tmax = tmax + wcore * (TMAX_CORE - tmax) + noise("tmax", 0.5)
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


def toy_isles_cases(seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST) -> list[ToyCase]:
    """Training cases ``case_1..n_train`` then testing cases ``case_1..n_test``."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"case counts must be >= 0, got {n_train}, {n_test}")
    return [make_case(seed, n, True) for n in range(1, n_train + 1)] + [
        make_case(seed, n, False) for n in range(1, n_test + 1)
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
    seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST, junk: bool = True
) -> tuple[list[Entry], list[Entry]]:
    """The two archives' files as ``(path, bytes)`` lists, sorted by path.

    Returns:
        (training zip entries, testing zip entries), no folder entries (the zip
        writer adds them).
    """
    cases = toy_isles_cases(seed, n_train, n_test)
    train = [f for c in cases if c.labelled for f in c.files()]
    test = [f for c in cases if not c.labelled for f in c.files()]
    if junk:
        train, test = _with_junk(train), _with_junk(test)
    return sorted(train), sorted(test)


def toy_isles_bytes(
    seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST
) -> tuple[bytes, bytes]:
    """The complete ``(training, testing)`` zip archives (members stored, fixed dates)."""
    train, test = toy_isles_entries(seed, n_train, n_test)
    return zip_bytes(train), zip_bytes(test)


def write_toy_archives(outs: list[Path], seed: int = 0) -> None:
    """``preprocess/make_toy.py`` entry point: write the training and testing zips.

    Args:
        outs: ``[training zip, testing zip]`` (normally ``data/isles-toy_Training.zip``
            and ``data/isles-toy_Testing.zip``), each written atomically.
        seed: data set seed (the md5s in ``lineage/isles-toy.lineage`` are for 0).
    """
    if len(outs) != 2:
        raise ValueError(f"the isles toy is two archives (training, testing), got {len(outs)}")
    train, test = toy_isles_bytes(seed)
    atomic.write_bytes(Path(outs[0]), train)
    atomic.write_bytes(Path(outs[1]), test)
