"""Real-size synthetic archives for the scale benchmark (bench/bench_scale.py).

The toy archives are small on purpose (96² slices, a dozen cases), so every figure
measured on them says nothing about a real dataset's cost. This module writes
archives with a real dataset's *sizes*: the layout, file formats, array sizes,
spacings, dtypes and gzip compression (zlib level 1, as nibabel writes ``.nii.gz``
by default) of the real release, from the same deterministic machinery as the toys
(:mod:`segline.datasets.deterministic`: counter-based random streams, explicit NIfTI
headers, USTAR members). Content is simple: a body ellipse, a spine disc and a
spleen-like ellipsoid, all sized in mm, with integer noise.

What it writes:

* ``spleen``: MSD Task09 Spleen: ``Task09_Spleen.tar`` with N labelled cases
  (41 in the release) and ``round(20·N/41)`` unlabelled ones, 512×512 in-plane at
  0.60–0.90 mm, 31–168 slices of 1.5–8 mm, int16 HU images and uint8 labels.
  Case ``spleen_<k>`` has the same bytes in every archive, whatever N, so the sets
  of N = 5, 10, 20 and 41 cases are nested.
* ``isles``: ISLES 2018: ``ISLES2018_Training.zip`` (94 labelled cases) and
  ``ISLES2018_Testing.zip`` (62) beside it, from the toy generator
  (:mod:`segline.datasets.toy_isles`) at the real 256² in-plane size and 2-22 slices,
  with a 43-frame ``CT_4DPWI`` series (stored members, as the toy; 12.5 GB in all). It
  prints the two md5 lines.

The archive is streamed to disk member by member (a 41-case archive is ~1.5 GB);
compressed cases are kept in ``<out>.parts/`` so the next N reuses them. The md5 of
the archive is written to a lineage file next to it, in ``md5sum`` format, as the
pipeline reads it (``LINEAGE=``).

Usage:
    .venv/bin/python bench/scale_data.py spleen --cases 41 --out data/scale/spleen-41.tar
    .venv/bin/python bench/scale_data.py isles --out data/scale/ISLES2018_Training.zip
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from segline import atomic
from segline.datasets.deterministic import (
    CounterRNG,
    nifti_bytes,
    tar_end,
    tar_member,
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


def write_spleen(out: Path, n_cases: int, say: bool = True) -> str:
    """Write a Task09-layout archive of ``n_cases`` labelled cases to ``out``; returns
    its md5 (also written to ``<out>.lineage``)."""
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
    md5 = hashlib.md5()
    tmp = out.with_name(out.name + ".tmp")
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
    tmp.replace(out)
    digest = md5.hexdigest()
    atomic.write_text(
        out.with_name(out.name + ".lineage"),
        "# Real-size synthetic spleen archive (bench/scale_data.py)\n"
        f"# note: {n_cases} labelled + {n_test} unlabelled cases\n"
        f"{digest}  {out.as_posix()}\n",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["spleen", "isles"])
    parser.add_argument("--cases", type=int, default=41, help="labelled cases")
    parser.add_argument("--out", type=Path, required=True, help="the archive (.tar)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.dataset == "isles":  # --out names the training zip; the testing zip beside it
        test = args.out.with_name(args.out.name.replace("Training", "Testing"))
        if test == args.out:
            parser.error("--out for isles must contain 'Training' (e.g. ISLES2018_Training.zip)")
        print(write_isles(args.out, test))
        return 0
    print(write_spleen(args.out, args.cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
