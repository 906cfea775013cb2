"""Real-size synthetic archives for the scale benchmark (bench/bench_scale.py).

The toy archives are small on purpose (96² slices, a dozen cases), so every figure
measured on them says nothing about a real dataset's cost. This module writes
archives with a real dataset's *sizes*: the layout, file formats, array sizes,
spacings, dtypes and gzip compression (zlib level 1, as nibabel writes ``.nii.gz``
by default) of the real release, from the same deterministic machinery as the toys
(:mod:`segline.datasets.deterministic`: counter-based random streams, explicit NIfTI
headers, USTAR members). Content is simple (sized in mm, with integer noise of ±12 HU
on every voxel), but the bytes a stage reads, decompresses and hashes are real.

What it writes:

* ``spleen``: MSD Task09 Spleen: ``Task09_Spleen.tar`` with N labelled cases
  (41 in the release) and ``round(20·N/41)`` unlabelled ones, 512×512 in-plane at
  0.60–0.90 mm, 31–168 slices of 1.5–8 mm, int16 HU images and uint8 labels; a body
  ellipse, a spine disc and a spleen-like ellipsoid.
  Case ``spleen_<k>`` has the same bytes in every archive, whatever N, so the sets
  of N = 5, 10, 20 and 41 cases are nested.
* ``isles``: ISLES 2018: ``ISLES2018_Training.zip`` (94 labelled cases) and
  ``ISLES2018_Testing.zip`` (62) beside it, from the toy generator
  (:mod:`segline.datasets.toy_isles`) at the real 256² in-plane size and 2-22 slices,
  with a 43-frame ``CT_4DPWI`` series (stored members, as the toy; 12.5 GB in all). It
  prints the two md5 lines.
* ``vessels``: MSD Task08 HepaticVessel: a ``Task08_HepaticVessel/`` tar in the MSD
  layout and naming of the toy (:mod:`segline.datasets.toy_vessels`:
  ``hepaticvessel_NNN``, labelled numbers not multiples of 3, unlabelled ones the
  multiples of 3) with N labelled cases (303 in the release) and ``round(140·N/303)``
  unlabelled ones (140). 512×512 in-plane at k/256 mm, k in 154–251 (0.60–0.98 mm);
  slice thickness from :data:`VESSEL_SLICE_MM` (13 of 20 draws 5 mm, the others 0.8,
  1.5, 2.5, 3, 7.5 (twice) and 8 mm); slices ``clip(round(C / thickness), 24, 181)``
  for a cranio-caudal coverage C uniform in 140–240 mm, which gives 24–181 slices,
  mean 50.8 over the 303 labelled cases (52.6 over all 443; median 38: 28–48 at 5 mm,
  24 for most 7.5–8 mm scans, 181 at 0.8 mm). int16 HU and uint8 labels (0
  background, 1 vessel, 2 tumour). ~215 kB per compressed 512² slice: ~5.0 GB and
  ~8 min for the 443 cases on a 2-core CPU (~20 ms per slice). Content: a
  body ellipse, a spine disc (700 HU, the MIP stage's occluder), a liver ellipsoid
  (~100 HU) on the patient's right, two vessel trees grown by the toy's
  :func:`~segline.datasets.toy_vessels.grow_tree` in mm (trunks 5–7 mm radius, down
  to 1 mm, 170–210 HU, labelled inside the liver) and, in 85 % of cases, a hypodense
  tumour (~50 HU, radius 8–30 mm).
* ``verse``: VerSe (vertebrae.make): one tar in the toy's form
  (:mod:`segline.datasets.toy_vertebrae`), a top folder ``dataset-verse-scale-training/``
  with ``rawdata/sub-verseNNN/sub-verseNNN_ct.nii.gz`` and
  ``derivatives/sub-verseNNN/sub-verseNNN_seg-vert_msk.nii.gz`` plus
  ``..._seg-subreg_ctd.json`` centroids for N labelled cases (80 as VerSe'19's
  training part), and ``dataset-verse-scale-test/rawdata/...`` for ``--unlabelled``
  ones (none by default). 1 mm isotropic; field of view 288–352 × 288–352 mm
  in-plane (each axis drawn) × 300–600 mm along z (so 288–352 × 288–352 × 300–600
  voxels, 45 M on average, 3.6 G for the 80; ~0.86 byte per voxel compressed: ~3.2 GB
  and ~4 min on a 2-core CPU); int16 HU CT and uint8 masks of VerSe vertebra values,
  the whole vertebrae inside the field of a spine C1–L5 (values 1–24) whose levels
  grow from cervical to lumbar (body height 13–28 mm, disc 4–10 mm), the field's
  bottom drawn from 120 mm below L5 (pelvis) to the cervical spine, biased toward
  the lumbar end: 5–24 vertebrae per scan (5–21, mean 12.5, in the 80; 46 of them
  end at L5). Each vertebra: an elliptic body with a cortical shell, an arch around
  the canal, a spinous and two transverse processes (the toy's shapes, in mm); discs
  (90 HU), soft tissue, a fat rim and lungs at the thoracic levels.

Every archive is streamed to disk member by member (a 41-case spleen archive is
~1.5 GB); each compressed case file is kept in ``parts/`` beside the archive (named by
case, so the next N reuses it and cases are nested as for ``spleen``), and the vessel
and VerSe volumes are generated, and compressed, one slice at a time. The md5 of the
archive is written to a lineage file next to it (``<out>.lineage``), in ``md5sum``
format, as the pipeline reads it (``LINEAGE=``); the md5 is printed (``spleen``), or
the md5 line(s) for a lineage file (the others).

Usage:
    .venv/bin/python bench/scale_data.py spleen --cases 41 --out data/scale/spleen-41.tar
    .venv/bin/python bench/scale_data.py isles --out data/scale/ISLES2018_Training.zip
    .venv/bin/python bench/scale_data.py vessels --out data/scale/Task08_HepaticVessel.tar
    .venv/bin/python bench/scale_data.py verse --out data/scale/verse-80.tar
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from segline import atomic
from segline.datasets import toy_vessels as tv
from segline.datasets.deterministic import (
    CounterRNG,
    Entry,
    nifti_bytes,
    nifti_header_bytes,
    tar_end,
    tar_member,
    with_parent_dirs,
)
from segline.datasets.toy_msd import msd_dataset_json
from segline.datasets.toy_spleen import (
    CASE_PREFIX,
    TASK_DIR,
    ToyCase,
    training_numbers,
    unlabelled_numbers,
)

SEED = 0
IN_PLANE = 512
DEPTH = (31, 168)  # slices, inclusive (the release's range)
SPACING_256THS = (154, 230)  # in-plane spacing k/256 mm: 0.60-0.90
SLICE_MM = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0)
GZIP_LEVEL = 1
#: unlabelled cases per labelled case in the release (20 of 41)
UNLABELLED_SHARE = 20 / 41


def spleen_volume(number: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Case ``number``: (image int16 (X, Y, Z) in HU, label uint8 (X, Y, Z), affine).

    Built slice by slice (float32 per slice), so memory stays at the two output arrays.
    """
    rng = CounterRNG(seed, "spleen-scale", number)
    geo = rng.child("geometry")
    nz = geo.integers(DEPTH[0], DEPTH[1] + 1)
    sxy = geo.integers(SPACING_256THS[0], SPACING_256THS[1] + 1) / 256.0
    sz = SLICE_MM[geo.integers(0, len(SLICE_MM))]
    affine = np.array(
        [
            [-sxy, 0.0, 0.0, sxy * IN_PLANE / 2],
            [0.0, -sxy, 0.0, sxy * IN_PLANE / 2],
            [0.0, 0.0, sz, -sz * nz / 2],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    # positions in mm from the image centre (x: patient's left is +, y: posterior +)
    axis = (np.arange(IN_PLANE, dtype=np.float32) - (IN_PLANE - 1) / 2) * np.float32(sxy)
    x, y = axis[:, None], axis[None, :]
    body_a, body_b = geo.uniform(150.0, 175.0), geo.uniform(105.0, 125.0)
    organ_c = (geo.uniform(55.0, 80.0), geo.uniform(20.0, 45.0))
    organ_r = (geo.uniform(30.0, 45.0), geo.uniform(25.0, 35.0), geo.uniform(35.0, 60.0))
    # the organ's cranio-caudal centre: within the scanned range, leaving empty slices
    z_len = nz * sz
    organ_z = geo.uniform(-0.25, 0.25) * max(z_len - 2 * organ_r[2], 0.0)
    spine_c = body_b - geo.uniform(35.0, 45.0)
    image = np.empty((IN_PLANE, IN_PLANE, nz), dtype=np.int16)
    label = np.zeros((IN_PLANE, IN_PLANE, nz), dtype=np.uint8)
    noise = rng.child("noise")
    for k in range(nz):
        z = (k - (nz - 1) / 2) * sz
        taper = np.float32(1.0 - 0.1 * (z / max(z_len / 2, 1.0)) ** 2)
        body = (x / (body_a * taper)) ** 2 + (y / (body_b * taper)) ** 2 < 1.0
        w = (z - organ_z) / organ_r[2]
        organ = ((x - organ_c[0]) / organ_r[0]) ** 2 + ((y - organ_c[1]) / organ_r[1]) ** 2 < (
            1.0 - w * w
        )
        organ &= body
        spine = x**2 + (y - spine_c) ** 2 < 15.0**2
        hu = np.where(body, np.float32(40.0), np.float32(-1000.0))
        hu = np.where(spine, np.float32(700.0), hu)
        hu = np.where(organ, np.float32(140.0), hu)
        hu += noise.child(k).integers(-12, 13, (IN_PLANE, IN_PLANE)).astype(np.float32)
        image[:, :, k] = np.clip(hu, -1024, 3071).astype(np.int16)
        label[:, :, k] = organ
    return image, label, affine


def _gz(array: np.ndarray, affine: np.ndarray) -> bytes:
    """The ``.nii.gz`` bytes: a NIfTI-1 file compressed by zlib (mtime 0)."""
    return gzip.compress(nifti_bytes(array, affine), compresslevel=GZIP_LEVEL, mtime=0)


def _case_parts(number: int, labelled: bool, parts: Path) -> tuple[Path, Path | None]:
    """The compressed image (and label) of a case, generated once into ``parts``."""
    image_gz = parts / f"{CASE_PREFIX}{number}.image.nii.gz"
    label_gz = parts / f"{CASE_PREFIX}{number}.label.nii.gz" if labelled else None
    if not image_gz.exists() or (label_gz is not None and not label_gz.exists()):
        image, label, affine = spleen_volume(number)
        if label_gz is not None:
            atomic.write_bytes(label_gz, _gz(label, affine))
        atomic.write_bytes(image_gz, _gz(image, affine))
    return image_gz, label_gz


def _write_tar(out: Path, members: Sequence[tuple[str, Path | bytes]]) -> str:
    """Write the USTAR archive ``out`` member by member (a file's content is read from
    its part file when its turn comes, never the whole archive in memory), through
    ``<out>.tmp``; returns its md5 (hex)."""
    md5 = hashlib.md5()
    tmp = atomic.tmp_path_for(out)
    written = 0
    with open(tmp, "wb") as fh:
        for name, content in members:
            data = content.read_bytes() if isinstance(content, Path) else content
            block = tar_member(name, data)
            fh.write(block)
            md5.update(block)
            written += len(block)
        end = tar_end(written)
        fh.write(end)
        md5.update(end)
    atomic.replace_file(tmp, out)
    return md5.hexdigest()


def _with_dirs(files: Iterable[tuple[str, Path | bytes]]) -> list[tuple[str, Path | bytes]]:
    """The members sorted by name, each folder entry (``a/``) once, before its first
    member (:func:`segline.datasets.deterministic.with_parent_dirs`, whose entries may
    carry a part file instead of bytes: it never looks at the content)."""
    ordered = sorted(files, key=lambda item: item[0])
    return cast(list[tuple[str, Path | bytes]], with_parent_dirs(cast(list[Entry], ordered)))


def _write_lineage(out: Path, digest: str, title: str, note: str) -> str:
    """Write ``<out>.lineage`` (two comments and the md5 line); returns the md5 line."""
    line = f"{digest}  {out.as_posix()}"
    atomic.write_text(
        out.with_name(out.name + ".lineage"),
        f"# {title} (bench/scale_data.py)\n# note: {note}\n{line}\n",
    )
    return line


def write_spleen(out: Path, n_cases: int, say: bool = True, n_test: int | None = None) -> str:
    """Write a Task09-layout archive of ``n_cases`` labelled cases to ``out``; returns
    its md5 (also written to ``<out>.lineage``). ``n_test`` unlabelled cases (default
    ``round(20·n_cases/41)``, the release's share; at most 20)."""
    if n_test is None:
        n_test = round(n_cases * UNLABELLED_SHARE)
    labelled = training_numbers(n_cases)
    unlabelled = unlabelled_numbers(n_test)
    parts = out.parent / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    stub = np.zeros(0)
    cases = [ToyCase(n, stub, stub, np.eye(4), True) for n in labelled]
    cases += [ToyCase(n, stub, stub, np.eye(4), False) for n in unlabelled]
    meta = msd_dataset_json(
        cases,
        SEED,
        name="Spleen",
        description="Spleen Segmentation (segline synthetic data at the release's size)",
        reference="segline bench/scale_data.py (layout and sizes of MSD Task09 Spleen)",
        labels={"0": "background", "1": "spleen"},
        listing_key="spleen-scale",
    )
    members: list[tuple[str, Path | bytes]] = [
        (f"{TASK_DIR}/", b""),
        (f"{TASK_DIR}/dataset.json", (json.dumps(meta, indent=4) + "\n").encode("ascii")),
        (f"{TASK_DIR}/imagesTr/", b""),
        (f"{TASK_DIR}/imagesTs/", b""),
        (f"{TASK_DIR}/labelsTr/", b""),
    ]
    files: list[tuple[str, Path]] = []
    for i, n in enumerate(labelled + unlabelled):
        if say:
            print(f"scale_data: case {i + 1}/{len(cases)}", file=sys.stderr, flush=True)
        image_gz, label_gz = _case_parts(n, n in labelled, parts)
        name = f"{CASE_PREFIX}{n}.nii.gz"
        if label_gz is not None:
            files.append((f"{TASK_DIR}/imagesTr/{name}", image_gz))
            files.append((f"{TASK_DIR}/labelsTr/{name}", label_gz))
        else:
            files.append((f"{TASK_DIR}/imagesTs/{name}", image_gz))
    members += sorted(files)
    digest = _write_tar(out, members)
    _write_lineage(
        out,
        digest,
        "Real-size synthetic spleen archive",
        f"{n_cases} labelled + {n_test} unlabelled cases",
    )
    return digest


#: ISLES 2018 at real size: 94 training (labelled) and 62 testing cases, 256² slabs of
#: 2-22 slices; the CT_4DPWI series with 43 time points (an assumption: the toy's 6
#: frames stretched to a bolus curve of about a minute at ~1.4 s)
ISLES_TRAIN, ISLES_TEST, ISLES_FRAMES = 94, 62, 43


def write_isles(train_out: Path, test_out: Path, say: bool = True) -> str:
    """ISLES-2018-like training and testing zips at real size, from the toy generator
    (:mod:`segline.datasets.toy_isles`) with its in-plane size, slab depths, lesion
    sizes (voxels, x4) and perfusion series length set to the real ones; members stored
    with a fixed date as the toy's (written one case at a time, never the whole archive
    in memory). Returns the md5 lines for a lineage file."""
    import zipfile

    from segline.datasets import toy_isles as ti

    ti.IN_PLANE = 256
    ti.PWI_FRAMES = ISLES_FRAMES
    ti.BOLUS_HU = tuple(
        int(round(34 * np.exp(-(((t - 12) / 6.0) ** 2)))) for t in range(ISLES_FRAMES)
    )
    params = ti.ToyIslesParams(
        stream="isles-scale",
        n_train=ISLES_TRAIN,
        n_test=ISLES_TEST,
        depths=tuple(range(2, 23)),
        lesion_radius=(22.0, 40.0),
        lesion_depth=(0.8, 3.0),
        lesion_offset=(36.0, 56.0),
        attempts=20,
    )
    lines = []
    for out, labelled, n in ((train_out, True, ISLES_TRAIN), (test_out, False, ISLES_TEST)):
        tmp = out.with_name(out.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for number in range(1, n + 1):
                case = ti.make_case(SEED, number, labelled, params)
                for name, data in case.files():
                    zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
                if say and number % 20 == 0:
                    print(f"  {out.name}: {number}/{n} cases", flush=True)
        tmp.replace(out)
        digest = hashlib.md5()
        with out.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  {out.as_posix()}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Streaming NIfTI writer and part files
# ---------------------------------------------------------------------------


def _stream_nifti_gz(
    targets: Sequence[tuple[Path, np.dtype] | None],
    shape: tuple[int, int, int],
    affine: np.ndarray,
    planes: Iterable[tuple[np.ndarray, ...]],
) -> None:
    """Write ``.nii.gz`` files plane by plane (zlib level :data:`GZIP_LEVEL`, mtime 0).

    ``planes`` yields, for every slice k = 0..Z-1, one (X, Y) array per entry of
    ``targets``; a target ``(path, dtype)`` receives its arrays in that dtype (the
    header from :func:`nifti_header_bytes`, voxels in the file's x-fastest order), a
    target ``None`` drops them (an unlabelled case's label). Memory holds one plane per
    file; each file goes through ``<path>.tmp`` and is renamed when complete.
    """
    opened: list[tuple[Path, Path, np.dtype, gzip.GzipFile] | None] = []
    try:
        for target in targets:
            if target is None:
                opened.append(None)
                continue
            path, dtype = target
            tmp = atomic.tmp_path_for(path)
            gz = gzip.GzipFile(
                filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=open(tmp, "wb"), mtime=0
            )
            gz.write(nifti_header_bytes(shape, dtype, affine) + b"\x00\x00\x00\x00")
            opened.append((path, tmp, np.dtype(dtype).newbyteorder("<"), gz))
        count = 0
        for arrays in planes:
            for item, plane in zip(opened, arrays, strict=True):
                if item is not None:
                    if plane.shape != shape[:2]:
                        raise ValueError(f"plane {count}: shape {plane.shape}, not {shape[:2]}")
                    item[3].write(plane.astype(item[2], copy=False).tobytes(order="F"))
            count += 1
        if count != shape[2]:
            raise ValueError(f"{count} planes for a volume of {shape[2]} slices")
        for item in opened:
            if item is not None:
                path, tmp, _, gz = item
                raw = gz.fileobj
                gz.close()
                raw.close()  # type: ignore[union-attr]
                atomic.replace_file(tmp, path)
    except BaseException:
        for item in opened:
            if item is not None:
                _, tmp, _, gz = item
                raw = gz.fileobj
                gz.close()
                if raw is not None:
                    raw.close()
                tmp.unlink(missing_ok=True)
        raise


def _part_names(parts: Path, case_id: str, tag: str) -> tuple[Path, Path]:
    """The image and label part files of a case (``tag``: non-default sizes, or '')."""
    return parts / f"{case_id}{tag}.image.nii.gz", parts / f"{case_id}{tag}.label.nii.gz"


# ---------------------------------------------------------------------------
# MSD Task08 HepaticVessel
# ---------------------------------------------------------------------------

#: the release: 303 labelled and 140 unlabelled cases
VESSELS_LABELLED, VESSELS_UNLABELLED = 303, 140
VESSEL_IN_PLANE = 512
VESSEL_DEPTH = (24, 181)  # slices, inclusive (the release's range)
VESSEL_SPACING_256THS = (154, 251)  # in-plane spacing k/256 mm: 0.60-0.98
#: slice thickness (mm), one drawn per case: 13 of 20 draws 5 mm (mostly 5 mm, as the
#: release), the rest 0.8-8 mm
VESSEL_SLICE_MM = (0.8, 1.5, 2.5, 3.0, 7.5, 7.5, 8.0) + (5.0,) * 13
VESSEL_COVERAGE_MM = (140.0, 240.0)  # cranio-caudal extent scanned, before the clip
VESSEL_TRUNK_MM = (5.0, 7.0)  # trunk radius; branches end at tv.MIN_RADIUS (1 mm here)
VESSEL_TRUNK_LENGTH_MM = (60.0, 90.0)
VESSEL_CONTRAST_HU = (70.0, 110.0)  # vessel over liver (~100 HU): 170-210 HU
VESSEL_RIM_MM = 1.0  # partial-volume rim outside a tube
TUMOUR_PERCENT = 85  # cases with a tumour
TUMOUR_RADIUS_MM = (8.0, 30.0)
HU_LIVER, HU_TUMOUR, HU_BODY, HU_SPINE, HU_AIR = 100.0, 50.0, 40.0, 700.0, -1000.0


@dataclass(frozen=True)
class VesselCase:
    """The geometry of one vessel case (no voxels: :func:`vessel_planes` makes them).

    Attributes:
        number: the case number (file ``hepaticvessel_NNN.nii.gz``).
        shape: (X, Y, Z) voxels.
        spacing: (x, y, z) voxel size in mm.
        affine: 4×4 voxel → world (mm) map, as stored in the header.
    """

    number: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray

    @property
    def case_id(self) -> str:
        """``hepaticvessel_NNN``."""
        return f"{tv.CASE_PREFIX}{self.number:03d}"


def vessel_case(
    number: int,
    *,
    in_plane: int = VESSEL_IN_PLANE,
    depth: tuple[int, int] = VESSEL_DEPTH,
    seed: int = SEED,
) -> VesselCase:
    """The size, spacing and affine of vessel case ``number`` (module docstring).

    ``in_plane`` and ``depth`` are test hooks: fewer in-plane voxels over the same
    field of view in mm (the spacing grows by 512/in_plane, the anatomy stays) and
    another slice-count range (the clip of ``round(coverage / thickness)``, the
    thickness unchanged).
    """
    geo = CounterRNG(seed, "vessels-scale", number).child("geometry")
    sz = VESSEL_SLICE_MM[geo.integers(0, len(VESSEL_SLICE_MM))]
    coverage = geo.uniform(*VESSEL_COVERAGE_MM)
    nz = min(max(round(coverage / sz), depth[0]), depth[1])
    sxy = geo.integers(VESSEL_SPACING_256THS[0], VESSEL_SPACING_256THS[1] + 1) / 256.0
    sxy *= VESSEL_IN_PLANE / in_plane
    n = in_plane
    affine = np.array(
        [
            [-sxy, 0.0, 0.0, sxy * n / 2],
            [0.0, -sxy, 0.0, sxy * n / 2],
            [0.0, 0.0, sz, -sz * nz / 2],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return VesselCase(number, (n, n, nz), (sxy, sxy, sz), affine)


def _vessel_trees(
    rng: CounterRNG, centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> np.ndarray:
    """Centreline pieces of the two trees, in mm around the image centre.

    Grown by the toy's :func:`~segline.datasets.toy_vessels.grow_tree` in a frame of
    1 mm units spanning the liver's bounding box: one trunk enters through its medial
    face (toward the midline, +x) at 40 % of its height, one through its posterior face
    (+y) at 60 %, both heading inward with a random tilt. Returns an (N, 9) float64
    array: end points a (3), b (3), radii at a and b (mm), contrast (HU).
    """
    size = tuple(int(math.ceil(2.0 * r)) for r in radii)
    origin = tuple(c - r for c, r in zip(centre, radii, strict=True))
    rows: list[tuple[float, ...]] = []
    for n, height in enumerate((0.4, 0.6)):
        tree = rng.child("tree", n)
        along = tree.uniform(0.35, 0.65)
        tilt = (tree.uniform(-1.0, 1.0), tree.uniform(-1.0, 1.0), tree.uniform(-1.0, 1.0))
        k = size[2] * height
        if n == 0:
            start = (size[0] - 1 - tv.MARGIN, size[1] * along, k)
            direction = (-1.0 + 0.4 * tilt[0], 0.4 * tilt[1], 0.3 * tilt[2])
        else:
            start = (size[0] * along, size[1] - 1 - tv.MARGIN, k)
            direction = (0.4 * tilt[0], -1.0 + 0.4 * tilt[1], 0.3 * tilt[2])
        radius = tree.uniform(*VESSEL_TRUNK_MM)
        length = tree.uniform(*VESSEL_TRUNK_LENGTH_MM)
        contrast = tree.uniform(*VESSEL_CONTRAST_HU)
        for seg in tv.grow_tree(tree, size, start, direction, radius, length, contrast):
            a = [seg.a[i] + origin[i] for i in range(3)]
            b = [seg.b[i] + origin[i] for i in range(3)]
            rows.append((*a, *b, seg.ra, seg.rb, seg.contrast))
    return np.array(rows, dtype=np.float64)


def _tubes_on_plane(
    segs: np.ndarray, z: float, ax: np.ndarray, ay: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """The tubes' label and enhancement on the plane at ``z`` mm (mm geometry).

    As :func:`~segline.datasets.toy_vessels.rasterise_tubes`, with distances in mm: a
    pixel is inside when its centre lies within the local radius of a piece; within
    :data:`VESSEL_RIM_MM` outside it, the enhancement falls from half the contrast to
    0. Only each piece's bounding box is visited. ``ax``/``ay``: pixel centres (mm),
    evenly spaced by ``spacing``.
    """
    inside = np.zeros((ax.size, ay.size), dtype=bool)
    enhance = np.zeros((ax.size, ay.size), dtype=np.float32)
    reach = np.maximum(segs[:, 6], segs[:, 7]) + VESSEL_RIM_MM
    lo = np.minimum(segs[:, 2], segs[:, 5]) - reach
    hi = np.maximum(segs[:, 2], segs[:, 5]) + reach
    for n in np.flatnonzero((lo <= z) & (hi >= z)):
        a, b, ra, rb, contrast = segs[n, 0:3], segs[n, 3:6], segs[n, 6], segs[n, 7], segs[n, 8]
        box = []
        for axis, centres in ((0, ax), (1, ay)):
            first = math.floor((min(a[axis], b[axis]) - reach[n] - centres[0]) / spacing)
            last = math.ceil((max(a[axis], b[axis]) + reach[n] - centres[0]) / spacing) + 1
            box.append(slice(max(first, 0), min(last, centres.size)))
        if box[0].start >= box[0].stop or box[1].start >= box[1].stop:
            continue
        ci = ax[box[0], None] - a[0]
        cj = ay[None, box[1]] - a[1]
        ck = z - a[2]
        e = b - a
        norm2 = float(e @ e)
        t = np.clip((ci * e[0] + cj * e[1] + ck * e[2]) / norm2, 0.0, 1.0) if norm2 else 0.0
        di, dj, dk = ci - t * e[0], cj - t * e[1], ck - t * e[2]
        excess = np.sqrt(di * di + dj * dj + dk * dk) - (ra + t * (rb - ra))
        box_t = (box[0], box[1])
        inside[box_t] |= excess <= 0.0
        weight = np.where(excess <= 0.0, 1.0, np.clip(0.5 - 0.5 * excess / VESSEL_RIM_MM, 0, 0.5))
        np.maximum(enhance[box_t], (contrast * weight).astype(np.float32), out=enhance[box_t])
    return inside, enhance


def vessel_planes(case: VesselCase, seed: int = SEED) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The slices of ``case``, k = 0..Z-1: (image int16 (X, Y) in HU, label uint8 (X, Y)).

    Anatomy in mm from the image centre (x: toward the patient's left, y: posterior),
    drawn from the case's stream, independent of the voxel grid (module docstring).
    """
    nx, ny, nz = case.shape
    sxy, _, sz = case.spacing
    rng = CounterRNG(seed, "vessels-scale", case.number)
    anat = rng.child("anatomy")
    body_a, body_b = anat.uniform(140.0, 175.0), anat.uniform(100.0, 125.0)
    spine_c = body_b - anat.uniform(35.0, 45.0)
    z_len = nz * sz
    radii = (anat.uniform(65.0, 85.0), anat.uniform(55.0, 75.0), anat.uniform(60.0, 85.0))
    centre = (
        -anat.uniform(45.0, 70.0),
        -anat.uniform(0.0, 20.0),
        anat.uniform(-0.2, 0.2) * max(z_len - 2 * radii[2], 0.0),
    )
    tum = rng.child("tumour")
    has_tumour = tum.integers(0, 100) < TUMOUR_PERCENT
    t_r = tum.uniform(*TUMOUR_RADIUS_MM)
    t_radii = (t_r, t_r * tum.uniform(0.8, 1.2), t_r * tum.uniform(0.8, 1.2))
    t_centre = tuple(c + tum.uniform(-0.45, 0.45) * r for c, r in zip(centre, radii, strict=True))
    segs = _vessel_trees(rng, centre, radii)
    ax = (np.arange(nx, dtype=np.float64) - (nx - 1) / 2) * sxy
    ay = (np.arange(ny, dtype=np.float64) - (ny - 1) / 2) * sxy
    x, y = ax.astype(np.float32)[:, None], ay.astype(np.float32)[None, :]
    noise = rng.child("noise")
    for k in range(nz):
        z = (k - (nz - 1) / 2) * sz
        taper = np.float32(1.0 - 0.1 * (z / max(z_len / 2, 1.0)) ** 2)
        body = (x / (body_a * taper)) ** 2 + (y / (body_b * taper)) ** 2 < 1.0
        spine = x**2 + (y - spine_c) ** 2 < 15.0**2
        w = (z - centre[2]) / radii[2]
        liver = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 < (
            1.0 - w * w
        )
        liver &= body & ~spine
        label = np.zeros((nx, ny), dtype=np.uint8)
        hu = np.where(body, np.float32(HU_BODY), np.float32(HU_AIR))
        hu = np.where(spine, np.float32(HU_SPINE), hu)
        hu = np.where(liver, np.float32(HU_LIVER), hu)
        if has_tumour:
            wt = (z - t_centre[2]) / t_radii[2]
            tumour = ((x - t_centre[0]) / t_radii[0]) ** 2 + (
                (y - t_centre[1]) / t_radii[1]
            ) ** 2 < (1.0 - wt * wt)
            tumour &= liver
            hu = np.where(tumour, np.float32(HU_TUMOUR), hu)
            label[tumour] = 2
        if segs.size:
            vessel, enhance = _tubes_on_plane(segs, z, ax, ay, sxy)
            hu = np.where(liver, hu + enhance, hu)
            label[vessel & liver] = 1
        hu += noise.child(k).integers(-12, 13, (nx, ny)).astype(np.float32)
        yield np.clip(hu, -1024, 3071).astype(np.int16), label


def write_vessels(
    out: Path,
    n_cases: int = VESSELS_LABELLED,
    n_test: int | None = None,
    say: bool = True,
    *,
    in_plane: int = VESSEL_IN_PLANE,
    depth: tuple[int, int] = VESSEL_DEPTH,
) -> str:
    """Write a Task08-layout archive of ``n_cases`` labelled cases to ``out``.

    ``n_test`` unlabelled cases (default ``round(140·n_cases/303)``, the release's
    share). Case ``hepaticvessel_NNN`` has the same bytes whatever N (its compressed
    files are kept in ``parts/`` beside ``out``). ``in_plane`` and ``depth`` are the
    test hooks of :func:`vessel_case`. Returns the md5 line (the archive's md5 is also
    written to ``<out>.lineage``).
    """
    if n_test is None:
        n_test = round(n_cases * VESSELS_UNLABELLED / VESSELS_LABELLED)
    labelled = tv.training_numbers(n_cases)
    unlabelled = tv.unlabelled_numbers(n_test)
    stub = np.zeros(0)
    stubs = [tv.ToyCase(n, stub, stub, np.eye(4), True) for n in labelled]
    stubs += [tv.ToyCase(n, stub, stub, np.eye(4), False) for n in unlabelled]
    meta = msd_dataset_json(
        stubs,
        SEED,
        name="HepaticVessel",
        description="Hepatic Vessel and Tumour Segmentation (segline synthetic data at the "
        "release's size)",
        reference="segline bench/scale_data.py (layout and sizes of MSD Task08 HepaticVessel)",
        labels={"0": "background", "1": "Vessel", "2": "Tumour"},
        listing_key="vessels-scale",
    )
    parts = out.parent / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    default = (in_plane, depth) == (VESSEL_IN_PLANE, VESSEL_DEPTH)
    tag = "" if default else f".{in_plane}.{depth[0]}-{depth[1]}"
    task = tv.TASK_DIR
    files: list[tuple[str, Path | bytes]] = []
    for i, n in enumerate(labelled + unlabelled):
        is_labelled = i < len(labelled)
        case = vessel_case(n, in_plane=in_plane, depth=depth)
        image_gz, label_gz = _part_names(parts, case.case_id, tag)
        if not image_gz.exists() or (is_labelled and not label_gz.exists()):
            if say:
                print(f"scale_data: case {i + 1}/{len(stubs)}", file=sys.stderr, flush=True)
            _stream_nifti_gz(
                [
                    (image_gz, np.dtype(np.int16)),
                    (label_gz, np.dtype(np.uint8)) if is_labelled else None,
                ],
                case.shape,
                case.affine,
                vessel_planes(case),
            )
        name = f"{case.case_id}.nii.gz"
        if is_labelled:
            files += [(f"{task}/imagesTr/{name}", image_gz), (f"{task}/labelsTr/{name}", label_gz)]
        else:
            files.append((f"{task}/imagesTs/{name}", image_gz))
    files.append((f"{task}/dataset.json", (json.dumps(meta, indent=4) + "\n").encode("ascii")))
    files += [(f"{task}/{folder}/", b"") for folder in ("imagesTr", "imagesTs", "labelsTr")]
    digest = _write_tar(out, _with_dirs(files))
    return _write_lineage(
        out,
        digest,
        "Real-size synthetic HepaticVessel archive",
        f"{n_cases} labelled + {n_test} unlabelled cases",
    )


# ---------------------------------------------------------------------------
# VerSe (vertebrae.make)
# ---------------------------------------------------------------------------

VERSE_CASES = 80  # VerSe'19's training part
VERSE_TRAIN_DIR = "dataset-verse-scale-training"
VERSE_TEST_DIR = "dataset-verse-scale-test"
VERSE_FIELD_XY_MM = (288, 352)  # in-plane field of view, each axis, inclusive
VERSE_FIELD_Z_MM = (300, 600)  # cranio-caudal field of view, inclusive
VERSE_VOXEL_MM = 1.0
VERSE_BELOW_L5_MM = 120.0  # the field may start this far below L5 (pelvis)
VERSE_LEVELS = 24  # C1..L5: VerSe values 1-24
VERSE_MIN_VERTEBRAE = 5
HU_FAT, HU_TISSUE, HU_CANAL, HU_DISC, HU_LUNG = -100.0, 40.0, 15.0, 90.0, -850.0
HU_CANCELLOUS = (170.0, 230.0)
HU_CORTICAL = (450.0, 600.0)


@dataclass(frozen=True)
class Vertebra:
    """One vertebra in field coordinates (mm from the field's corner; z superior).

    Attributes:
        value: VerSe value (1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5).
        cx, cy: body centre (x toward the patient's left, y posterior).
        zc, hz: centre and half height of its slab (every part lies within it).
        rx, ry: body semi-axes; canal_r: canal radius; arch_w: arch thickness;
        spinous, transverse: process lengths; spin_w: spinous half-width (all mm).
    """

    value: int
    cx: float
    cy: float
    zc: float
    hz: float
    rx: float
    ry: float
    canal_r: float
    arch_w: float
    spinous: float
    transverse: float
    spin_w: float


@dataclass(frozen=True)
class VerseCase:
    """The geometry of one VerSe-like case (no voxels: :func:`verse_planes` makes them).

    Attributes:
        number: subject number (``sub-verseNNN``).
        shape: (X, Y, Z) voxels; voxel_mm: isotropic voxel size (mm).
        affine: 4×4 voxel → world (mm) map (i toward the left, j posterior, k superior).
        vertebrae: cranial to caudal (consecutive values).
        torso: (centre x, centre y, semi-axis x, semi-axis y), mm.
        lungs: the z range (mm) of the lungs, or None.
        labelled: whether the mask is written.
    """

    number: int
    shape: tuple[int, int, int]
    voxel_mm: float
    affine: np.ndarray
    vertebrae: tuple[Vertebra, ...]
    torso: tuple[float, float, float, float]
    lungs: tuple[float, float] | None
    labelled: bool = True

    @property
    def case_id(self) -> str:
        """``sub-verseNNN`` (the subject, and the file stem before ``_ct.nii.gz``)."""
        return f"sub-verse{self.number:03d}"

    @property
    def values(self) -> tuple[int, ...]:
        """The vertebra values, cranial to caudal."""
        return tuple(v.value for v in self.vertebrae)


def verse_case(
    number: int, labelled: bool = True, *, voxel_mm: float = VERSE_VOXEL_MM, seed: int = SEED
) -> VerseCase:
    """The geometry of VerSe-like case ``number`` (module docstring).

    A spine C1-L5 is stacked upward from L5 (level sizes grow linearly from C1 to L5,
    times a subject scale 0.9-1.1); the field (288-352 × 288-352 × 300-600 mm) starts
    between 120 mm below L5 and the height that keeps its top inside the spine, biased
    toward the lumbar end (u²), but never above the point where L5-L1 still fit; the
    vertebrae wholly inside it (1 mm from its faces) are drawn and labelled.
    ``voxel_mm`` is a test hook: the same field and anatomy on coarser voxels.
    """
    rng = CounterRNG(seed, "verse-scale", number)
    geo = rng.child("geometry")
    field = (
        float(geo.integers(VERSE_FIELD_XY_MM[0], VERSE_FIELD_XY_MM[1] + 1)),
        float(geo.integers(VERSE_FIELD_XY_MM[0], VERSE_FIELD_XY_MM[1] + 1)),
        float(geo.integers(VERSE_FIELD_Z_MM[0], VERSE_FIELD_Z_MM[1] + 1)),
    )
    scale = geo.uniform(0.9, 1.1)
    # the chain, L5 (value 24) first: (bottom, top) of each body, mm above L5's bottom
    dims = rng.child("levels")
    spans: dict[int, tuple[float, float]] = {}
    sizes: dict[int, tuple[float, ...]] = {}
    zeta = 0.0
    for value in range(VERSE_LEVELS, 0, -1):
        f = (value - 1) / (VERSE_LEVELS - 1)  # 0 at C1, 1 at L5
        jitter = dims.uniform(0.95, 1.05)
        height = (13.0 + 15.0 * f) * scale * jitter
        spans[value] = (zeta, zeta + height)
        sizes[value] = (
            (9.0 + 14.0 * f) * scale * jitter,  # rx
            (7.5 + 10.0 * f) * scale * jitter,  # ry
            (7.5 + 1.0 * f) * scale,  # canal_r
            (3.5 + 3.0 * f) * scale,  # arch_w
            (15.0 + 15.0 * f) * scale * dims.uniform(0.9, 1.1),  # spinous
            (10.0 + 15.0 * f) * scale * dims.uniform(0.9, 1.1),  # transverse
            (2.5 + 2.0 * f) * scale,  # spin_w
        )
        f_above = (value - 2) / (VERSE_LEVELS - 1)
        zeta += height + (4.0 + 6.0 * f_above) * scale  # the disc above this level
    top = spans[1][1]
    fz = field[2]
    low = max(-VERSE_BELOW_L5_MM, spans[VERSE_LEVELS - VERSE_MIN_VERTEBRAE + 1][1] + 1.0 - fz)
    high = max(top - fz, low)
    u = geo.uniform()
    bottom = low + (high - low) * u * u  # the field's bottom, in chain coordinates
    drawn = [
        v
        for v in range(1, VERSE_LEVELS + 1)
        if spans[v][0] - bottom >= 1.0 and spans[v][1] - bottom <= fz - 1.0
    ]
    if len(drawn) < VERSE_MIN_VERTEBRAE:
        raise RuntimeError(f"verse case {number}: only {len(drawn)} vertebrae in the field")
    # torso and spine axis (x: centre of the field, y: the spine at the back)
    tcx = field[0] / 2 + geo.uniform(-5.0, 5.0)
    tcy = field[1] / 2 + geo.uniform(-10.0, 10.0)
    tax = field[0] / 2 * geo.uniform(0.8, 1.05)
    tay = geo.uniform(95.0, 125.0)
    drift_x, bow_x = geo.uniform(-4.0, 4.0), geo.uniform(-5.0, 5.0)
    drift_y, bow_y = geo.uniform(-5.0, 5.0), geo.uniform(-12.0, 12.0)
    dorsal = max(s[1] + 1.0 + 2 * s[2] + s[3] + s[4] for s in sizes.values())
    base_y = tcy + tay - dorsal - 15.0 - 17.0
    base_x = tcx + geo.uniform(-3.0, 3.0)
    vertebrae = []
    for v in drawn:
        zc = (spans[v][0] + spans[v][1]) / 2 - bottom
        t = (zc - fz / 2) / (fz / 2)
        rx, ry, canal_r, arch_w, spinous, transverse, spin_w = sizes[v]
        vertebrae.append(
            Vertebra(
                v,
                base_x + drift_x * t + bow_x * t * t,
                base_y + drift_y * t + bow_y * t * t,
                zc,
                (spans[v][1] - spans[v][0]) / 2,
                rx,
                ry,
                canal_r,
                arch_w,
                spinous,
                transverse,
                spin_w,
            )
        )
    # lungs: from the middle of T12 (value 19) to 25 mm above T1's top (value 8)
    lung_lo = (spans[19][0] + spans[19][1]) / 2 - bottom
    lung_hi = spans[8][1] + 25.0 - bottom
    lungs = (lung_lo, lung_hi) if lung_hi > 0.0 and lung_lo < fz else None
    shape = tuple(int(math.ceil(f / voxel_mm - 1e-9)) for f in field)
    affine = np.array(
        [
            [-voxel_mm, 0.0, 0.0, voxel_mm * (shape[0] // 2)],
            [0.0, -voxel_mm, 0.0, voxel_mm * (shape[1] // 2)],
            [0.0, 0.0, voxel_mm, -float(geo.integers(200, 500))],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return VerseCase(
        number,
        (shape[0], shape[1], shape[2]),
        voxel_mm,
        affine,
        tuple(vertebrae),
        (tcx, tcy, tax, tay),
        lungs,
        labelled,
    )


def verse_planes(
    case: VerseCase, sums: dict[int, list[int]] | None = None, seed: int = SEED
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The slices of ``case``, k = 0..Z-1: (CT int16 (X, Y) in HU, mask uint8 (X, Y)).

    The toy's vertebra shapes (:func:`segline.datasets.toy_vertebrae.make_case`) in mm,
    one plane at a time. ``sums``, when given, collects value -> [voxels, Σi, Σj, Σk]
    for the centroids (exact integers).
    """
    nx, ny, nz = case.shape
    vox = case.voxel_mm
    rng = CounterRNG(seed, "verse-scale", case.number)
    tex = rng.child("texture")
    cancellous, cortex = tex.uniform(*HU_CANCELLOUS), tex.uniform(*HU_CORTICAL)
    noise = rng.child("noise")
    x = ((np.arange(nx, dtype=np.float32) + 0.5) * np.float32(vox))[:, None]
    y = ((np.arange(ny, dtype=np.float32) + 0.5) * np.float32(vox))[None, :]
    tcx, tcy, tax, tay = case.torso
    tx, ty = (x - tcx) / tax, (y - tcy) / tay
    torso = tx * tx + ty * ty < 1.0
    ix, iy = (x - tcx) / (tax - 10.0), (y - tcy) / (tay - 10.0)
    inner = ix * ix + iy * iy < 1.0
    verts = case.vertebrae
    ii = np.arange(nx, dtype=np.int64)
    jj = np.arange(ny, dtype=np.int64)
    for k in range(nz):
        z = (k + 0.5) * vox
        hu = np.where(torso, np.float32(HU_FAT), np.float32(HU_AIR))
        hu = np.where(inner, np.float32(HU_TISSUE), hu)
        if case.lungs is not None and case.lungs[0] < z < case.lungs[1]:
            lo, hi = case.lungs
            q = (2.0 * z - lo - hi) / (hi - lo)
            shrink = math.sqrt(max(1.0 - q * q, 0.0)) ** 0.5
            ly = (y - (tcy - 0.1 * tay)) / (0.62 * tay * shrink)
            for side in (-1.0, 1.0):
                lx = (x - (tcx + side * 0.5 * tax)) / (0.36 * tax * shrink)
                hu = np.where((lx * lx + ly * ly < 1.0) & inner, np.float32(HU_LUNG), hu)
        label = np.zeros((nx, ny), dtype=np.uint8)
        for upper, lower in zip(verts[:-1], verts[1:], strict=True):
            if lower.zc + lower.hz < z < upper.zc - upper.hz:  # a disc
                du = (x - (upper.cx + lower.cx) / 2) / ((upper.rx + lower.rx) / 2 - 0.5)
                dv = (y - (upper.cy + lower.cy) / 2) / ((upper.ry + lower.ry) / 2 - 0.5)
                hu = np.where(du * du + dv * dv <= 1.0, np.float32(HU_DISC), hu)
        for vt in verts:
            w = z - vt.zc
            if abs(w) > vt.hz:
                continue
            u, v = x - vt.cx, y - vt.cy
            bu, bv = u / vt.rx, v / vt.ry
            r2 = bu * bu + bv * bv
            lim = vt.hz * (1.0 - 0.12 * r2)  # rounded endplates
            body = (r2 <= 1.0) & (abs(w) <= lim)
            cu, cv = u / (vt.rx - 1.5), v / (vt.ry - 1.5)
            core_xy = cu * cu + cv * cv <= 1.0
            core = core_xy & (abs(w) <= lim - 1.5)
            vc = vt.ry + vt.canal_r + 1.0
            dv = v - vc
            d2 = u * u + dv * dv
            outer = vt.canal_r + vt.arch_w
            canal = d2 < vt.canal_r**2
            vert = body
            if abs(w) <= 0.7 * vt.hz:
                vert = vert | ((d2 >= vt.canal_r**2) & (d2 <= outer * outer) & (v >= vt.ry - 3.0))
            back = v - (vc + vt.canal_r)
            ws = w + 0.25 * back
            vert = vert | (
                (abs(u) <= vt.spin_w)
                & (back >= 0.0)
                & (back <= vt.arch_w + vt.spinous)
                & (abs(ws) <= 0.5 * vt.hz)
            )
            if abs(w) <= 0.45 * vt.hz:
                au = abs(u)
                vert = vert | (
                    (au >= 0.5 * vt.rx) & (au <= vt.rx + vt.transverse) & (dv <= 3.0) & (dv >= -5.0)
                )
            hu = np.where(canal & ~vert, np.float32(HU_CANAL), hu)
            cortical = vert & ~core_xy
            endplate = vert & core_xy & ~core
            bone = np.where(
                cortical,
                np.float32(cortex),
                np.where(
                    endplate,
                    np.float32(cancellous + 0.35 * (cortex - cancellous)),
                    np.float32(cancellous),
                ),
            )
            hu = np.where(vert, bone, hu)
            label[vert] = vt.value
            if sums is not None:
                count = int(np.count_nonzero(vert))
                if count:
                    acc = sums.setdefault(vt.value, [0, 0, 0, 0])
                    acc[0] += count
                    acc[1] += int(np.count_nonzero(vert, axis=1) @ ii)
                    acc[2] += int(np.count_nonzero(vert, axis=0) @ jj)
                    acc[3] += k * count
        hu += noise.child(k).integers(-12, 13, (nx, ny)).astype(np.float32)
        yield np.clip(hu, -1024, 3071).astype(np.int16), label


def _centroids_json(sums: dict[int, list[int]]) -> bytes:
    """A ``_seg-subreg_ctd.json`` as the toy's (voxel centroids, one decimal)."""
    items: list[dict[str, object]] = [{"direc": ["L", "P", "S"]}]
    for value in sorted(sums):
        count, si, sj, sk = sums[value]
        items.append(
            {
                "label": value,
                "X": round(si / count, 1),
                "Y": round(sj / count, 1),
                "Z": round(sk / count, 1),
            }
        )
    return (json.dumps(items, indent=1) + "\n").encode("utf-8")


def write_verse(
    out: Path,
    n_cases: int = VERSE_CASES,
    n_test: int = 0,
    say: bool = True,
    *,
    voxel_mm: float = VERSE_VOXEL_MM,
) -> str:
    """Write a VerSe-layout tar (the toy's form) of ``n_cases`` labelled subjects
    (``sub-verse001`` ...) and ``n_test`` unlabelled ones after them to ``out``.

    Subject ``sub-verseNNN`` has the same bytes whatever N (its compressed files and
    centroids are kept in ``parts/`` beside ``out``). ``voxel_mm`` is the test hook of
    :func:`verse_case`. Returns the md5 line (the archive's md5 is also written to
    ``<out>.lineage``).
    """
    parts = out.parent / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    tag = "" if voxel_mm == VERSE_VOXEL_MM else f".{voxel_mm:g}mm"
    files: list[tuple[str, Path | bytes]] = []
    total = n_cases + n_test
    for number in range(1, total + 1):
        labelled = number <= n_cases
        case = verse_case(number, labelled, voxel_mm=voxel_mm)
        image_gz, label_gz = _part_names(parts, case.case_id, tag)
        ctd = parts / f"{case.case_id}{tag}.ctd.json"
        if not image_gz.exists() or (labelled and not (label_gz.exists() and ctd.exists())):
            if say:
                print(f"scale_data: case {number}/{total}", file=sys.stderr, flush=True)
            sums: dict[int, list[int]] = {}
            _stream_nifti_gz(
                [
                    (image_gz, np.dtype(np.int16)),
                    (label_gz, np.dtype(np.uint8)) if labelled else None,
                ],
                case.shape,
                case.affine,
                verse_planes(case, sums),
            )
            if labelled:
                atomic.write_bytes(ctd, _centroids_json(sums))
        top = VERSE_TRAIN_DIR if labelled else VERSE_TEST_DIR
        sub = case.case_id
        files.append((f"{top}/rawdata/{sub}/{sub}_ct.nii.gz", image_gz))
        if labelled:
            files.append((f"{top}/derivatives/{sub}/{sub}_seg-vert_msk.nii.gz", label_gz))
            files.append((f"{top}/derivatives/{sub}/{sub}_seg-subreg_ctd.json", ctd))
    digest = _write_tar(out, _with_dirs(files))
    return _write_lineage(
        out,
        digest,
        "Real-size synthetic VerSe-layout archive",
        f"{n_cases} labelled + {n_test} unlabelled subjects",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["spleen", "isles", "vessels", "verse"])
    parser.add_argument(
        "--cases",
        type=int,
        default=None,
        help="labelled cases (spleen 41, vessels 303, verse 80: the releases'; not isles)",
    )
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=None,
        help="unlabelled cases (spleen round(20N/41), vessels round(140N/303), verse 0)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the archive (.tar, isles .zip)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.dataset == "isles":  # --out names the training zip; the testing zip beside it
        test = args.out.with_name(args.out.name.replace("Training", "Testing"))
        if test == args.out:
            parser.error("--out for isles must contain 'Training' (e.g. ISLES2018_Training.zip)")
        print(write_isles(args.out, test))
        return 0
    if args.dataset == "vessels":
        cases = VESSELS_LABELLED if args.cases is None else args.cases
        print(write_vessels(args.out, cases, args.unlabelled))
        return 0
    if args.dataset == "verse":
        cases = VERSE_CASES if args.cases is None else args.cases
        print(write_verse(args.out, cases, args.unlabelled or 0))
        return 0
    print(write_spleen(args.out, 41 if args.cases is None else args.cases, n_test=args.unlabelled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
