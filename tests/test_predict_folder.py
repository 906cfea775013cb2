"""Predicting any folder (segline.predict -i/-o, make predict INPUT=... OUTPUT=...).

Tiny case stores are sliced from MSD-layout folders (tests/msd_builder.py) with
resampling, in-plane resizing and a body crop, so every preprocessing step is on the
path; the methods are untrained Dimwit (2D, 2.5D context) and Dimwit3D nets saved as
best.pt with their args.json. Inputs have oblique or flipped affines, anisotropic
spacing and shapes unlike the training data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import copy_project, snapshot
from msd_builder import image_volume, make_task, save
from segline.cli import run
from segline.datasets.msd import MSDAdapter
from segline.errors import InputError
from segline.nets import get_net
from segline.predict import main, predict_folder, predict_method
from segline.predicting import inputs
from segline.predicting.labels import colour
from segline.preprocess.slicing import SliceParams, slice_dataset

CLASSES = {"0": "background", "1": "spleen", "2": "left kidney"}


def _slice(raw: Path, out: Path) -> Path:
    params = SliceParams(
        spacing=(2.5, None, None), inplane=12, n_test=2, n_val=2, crop="body", body_hu=-150.0
    )
    slice_dataset(MSDAdapter(raw), out, params)
    return out


def _method(
    folder: Path, cases: Path, net: str, n_channels: int, n_classes: int, **extra: object
) -> Path:
    """An untrained method folder: best.pt of ``net`` (seeded) and its args.json."""
    context = int(extra.get("context", 0))  # type: ignore[arg-type]
    torch.manual_seed(3)
    model = get_net(net, n_channels * (2 * context + 1), n_classes, base=4)
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "best.pt")
    args = {"cases": str(cases), "net": net, "net_kwargs": {"base": 4}, "batch_size": 3, **extra}
    (folder / "args.json").write_text(json.dumps(args))
    return folder


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-channel CT store (3 classes) and 2D (context 1) and 3D methods."""
    root = tmp_path_factory.mktemp("ct")
    make_task(root / "raw", labels=CLASSES)
    cases = _slice(root / "raw", root / "cases")
    return {
        "raw": root / "raw" / "Task09_Spleen",
        "cases": cases,
        "m2d": _method(root / "results" / "gdl", cases, "Dimwit", 1, 3, context=1),
        "m3d": _method(
            root / "results" / "gdl3d", cases, "Dimwit3D", 1, 3, patch=[4, 8, 8], overlap=0.5
        ),
    }


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two-channel store (T2 percentiles, CT window): MSD 4D images, channels last."""
    root = tmp_path_factory.mktemp("mr")
    task = make_task(root / "raw", modality={"0": "T2", "1": "CT"})
    for sub in ("imagesTr", "imagesTs"):
        for i, f in enumerate(sorted((task / sub).iterdir())):
            hu = image_volume(i)
            save(f, np.stack([hu + 400.0, hu], axis=-1).astype(np.float32))
    cases = _slice(root / "raw", root / "cases")
    return {"cases": cases, "m2d": _method(root / "results" / "gdl", cases, "Dimwit", 2, 2)}


def oblique_affine(spacing: tuple[float, float, float], angle: float) -> np.ndarray:
    """A flipped, rotated (about z, ``angle`` rad) affine with anisotropic spacing (mm)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([-spacing[0], spacing[1], spacing[2]])
    aff[:3, 3] = [31.5, -12.25, 7.0]
    return aff


# (shape (X, Y, Z), spacing (x, y, z) mm, rotation angle rad): unlike the 16x16x6 data
GEOMETRIES = {"a": ((20, 13, 9), (0.6, 1.1, 3.0), 0.3), "b": ((11, 17, 4), (1.3, 0.7, 6.5), -1.1)}


def _hu(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(-50.0, 120.0, size=shape).astype(np.float32)


def write_inputs(folder: Path, n_channels: int, scheme: str) -> dict[str, nib.Nifti1Image]:
    """NIfTI inputs of :data:`GEOMETRIES`; ``scheme`` "nnunet" (a file per channel) or
    "plain" (one 3D or 4D file per case). Returns {case: first channel's image}."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for i, (case, (shape, spacing, angle)) in enumerate(sorted(GEOMETRIES.items())):
        aff = oblique_affine(spacing, angle)
        chans = [
            _hu(shape, 10 * i + c) + 300.0 * (c == 0 and n_channels > 1) for c in range(n_channels)
        ]
        if scheme == "nnunet":
            for c, data in enumerate(chans):
                save(folder / f"{case}_{c:04d}.nii.gz", data, aff)
        else:
            data = chans[0] if n_channels == 1 else np.stack(chans, axis=-1)
            save(folder / f"{case}.nii.gz", data, aff)
        refs[case] = nib.load(next(folder.glob(f"{case}*.nii.gz")))
    return refs


def check_outputs(out: Path, refs: dict[str, nib.Nifti1Image], n_classes: int, probs: bool) -> None:
    """Each prediction (and probability map) on its input's grid, labels in range."""
    for case, ref in refs.items():
        pred = nib.load(out / f"{case}.nii.gz")
        assert pred.shape == ref.shape[:3]
        np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-5)
        labels = np.asarray(pred.dataobj)
        assert labels.dtype == np.uint8 and labels.max() < n_classes
        if probs:
            img = nib.load(out / f"{case}_probs.nii.gz")
            p = img.get_fdata(dtype=np.float32)
            assert p.shape == (*ref.shape[:3], n_classes)
            np.testing.assert_allclose(img.affine, ref.affine, atol=1e-5)
            assert p.min() >= 0.0 and p.max() <= 1.0 + 1e-6
            np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-4)
            np.testing.assert_array_equal(p.argmax(axis=-1), labels)
        else:
            assert not (out / f"{case}_probs.nii.gz").exists()


def check_label_files(out: Path, classes: dict[str, str]) -> None:
    rows = [
        ln.split(None, 7)
        for ln in (out / "labels.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert [int(r[0]) for r in rows] == [int(k) for k in classes]
    assert [r[7].strip('"') for r in rows] == list(classes.values())
    assert rows[0][1:7] == ["0", "0", "0", "0", "0", "0"]  # background: black, hidden
    assert [tuple(int(v) for v in r[1:4]) for r in rows[1:]] == [
        colour(int(k)) for k in list(classes)[1:]
    ]
    ctbl = (out / "labels.ctbl").read_text().splitlines()
    assert ctbl[0].startswith("# Color table file")
    entries = [ln.split() for ln in ctbl if not ln.startswith("#")]
    assert [e[1] for e in entries] == [n.replace(" ", "_") for n in classes.values()]
    assert entries[0][2:] == ["0", "0", "0", "0"] and all(e[5] == "255" for e in entries[1:])


# ------------------------------------------------------------------------ preprocessing
def test_preprocessing_of_a_raw_file_equals_the_store(ct) -> None:
    """The store's unlabelled case, read from its raw file, preprocesses to the stored
    array and meta exactly: the same code, with the store's recorded parameters."""
    from segline.casestore import CaseStore

    store = CaseStore(ct["cases"])
    case = store.case_ids("infer")[0]
    found = inputs.find_inputs(ct["raw"] / "imagesTs", 1)
    (mine,) = [c for c in found if c.case_id == case]
    image, meta = inputs.preprocess(inputs.read_case(mine, ["CT"]), store)
    stored = store.meta(case)
    assert [op["op"] for op in meta["transforms"]] == ["to_zyx", "crop", "resample"]
    assert meta["transforms"] == stored["transforms"] and meta["shape"] == [12, 12, 12]
    np.testing.assert_array_equal(image, store.image(case))


def test_params_come_from_the_store_record(ct) -> None:
    from segline.casestore import CaseStore

    p = inputs.params_from_store(CaseStore(ct["cases"]))
    assert (p.spacing, p.inplane, p.crop, p.body_hu) == ((2.5, None, None), 12, "body", -150.0)
    assert p.window == (40.0, 400.0) and p.percentiles == (0.5, 99.5)


# ------------------------------------------------------------------------ predictions
@pytest.mark.parametrize("which", ["m2d", "m3d"])
def test_folder_prediction_in_source_geometry_with_probs(ct, which, tmp_path: Path) -> None:
    refs = write_inputs(tmp_path / "in", 1, "plain")
    out = tmp_path / "out" / "gdl"
    written = predict_folder(tmp_path / "in", ct[which], out, probs=True)
    assert sorted(p.name for p in written) == [
        "a.nii.gz",
        "a_probs.nii.gz",
        "b.nii.gz",
        "b_probs.nii.gz",
    ]
    check_outputs(out, refs, 3, probs=True)
    check_label_files(out, CLASSES)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in written] + ["labels.ctbl", "labels.txt"]
    )


def test_two_channels_both_namings_give_the_same_prediction(mr, tmp_path: Path) -> None:
    refs = write_inputs(tmp_path / "nn", 2, "nnunet")
    write_inputs(tmp_path / "msd", 2, "plain")
    assert sorted(p.name for p in (tmp_path / "nn").iterdir())[:2] == [
        "a_0000.nii.gz",
        "a_0001.nii.gz",
    ]
    predict_folder(tmp_path / "nn", mr["m2d"], tmp_path / "o_nn", probs=True)
    predict_folder(tmp_path / "msd", mr["m2d"], tmp_path / "o_msd")
    check_outputs(tmp_path / "o_nn", refs, 2, probs=True)
    check_outputs(tmp_path / "o_msd", refs, 2, probs=False)
    for case in refs:
        a = np.asarray(nib.load(tmp_path / "o_nn" / f"{case}.nii.gz").dataobj)
        b = np.asarray(nib.load(tmp_path / "o_msd" / f"{case}.nii.gz").dataobj)
        np.testing.assert_array_equal(a, b)
    check_label_files(tmp_path / "o_nn", {"0": "background", "1": "spleen"})


def test_store_cases_with_probs_and_label_files(ct, tmp_path: Path) -> None:
    """The infer cases of the store (make predict): source geometry, probabilities."""
    out = tmp_path / "pred"
    written = predict_method(ct["cases"], ct["m2d"], out, probs=True)
    assert sorted(p.name for p in written) == [
        "spleen_5.nii.gz",
        "spleen_5_probs.nii.gz",
        "spleen_7.nii.gz",
        "spleen_7_probs.nii.gz",
    ]
    refs = {c: nib.load(ct["raw"] / "imagesTs" / f"{c}.nii.gz") for c in ("spleen_5", "spleen_7")}
    check_outputs(out, refs, 3, probs=True)
    check_label_files(out, CLASSES)


def test_cli_several_methods_and_the_args_store(ct, tmp_path: Path, capsys) -> None:
    """-m twice, no --cases: each method's store comes from its args.json; -o/<method>."""
    write_inputs(tmp_path / "in", 1, "nnunet")
    rc = run(
        main,
        [
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "-m",
            str(ct["m2d"]),
            "-m",
            str(ct["m3d"]),
            "--device",
            "cpu",
        ],
    )
    assert rc == 0, capsys.readouterr().err
    for name in ("gdl", "gdl3d"):
        assert sorted(p.name for p in (tmp_path / "out" / name).iterdir()) == [
            "a.nii.gz",
            "b.nii.gz",
            "labels.ctbl",
            "labels.txt",
        ]


# ------------------------------------------------------------------- nothing to predict
def test_nothing_to_predict_is_one_line_per_method_and_exit_0(ct, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    rc = run(
        main,
        [
            "-i",
            str(tmp_path / "empty"),
            "-o",
            str(tmp_path / "out"),
            "-m",
            str(ct["m2d"]),
            "-m",
            str(ct["m3d"]),
        ],
    )
    cap = capsys.readouterr()
    assert rc == 0 and cap.err == ""
    lines = cap.out.splitlines()
    assert len(lines) == 2 and all("nothing to predict" in ln for ln in lines)
    assert [ln.split(":")[0] for ln in lines] == ["gdl", "gdl3d"]
    assert sorted(p.name for p in (tmp_path / "out" / "gdl").iterdir()) == [
        "labels.ctbl",
        "labels.txt",
    ]


def test_store_without_infer_cases_exits_0(tmp_path: Path, capsys) -> None:
    make_task(tmp_path / "raw", test_ids=[])
    cases = _slice(tmp_path / "raw", tmp_path / "cases")
    m = _method(tmp_path / "res" / "ce", cases, "Dimwit", 1, 2)
    # --out: make's own folder of the store's cases, beside the method
    out = tmp_path / "res" / "predict" / "ce"
    rc = run(main, ["--cases", str(cases), "-m", str(m), "--out", str(out)])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("\n") == 1
    assert out.startswith("ce: nothing to predict:") and "no unlabelled (infer) cases" in out


# ---------------------------------------------------------------------------- refusals
def _refused(argv: list[str], capsys) -> str:
    rc = run(main, argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("segline: "), err
    return err


def test_refusals_are_one_line_and_write_nothing(ct, mr, tmp_path: Path, capsys) -> None:
    def go(folder: Path, method: Path) -> str:
        out = tmp_path / "out" / folder.name
        err = _refused(["-i", str(folder), "-m", str(method), "-o", str(out)], capsys)
        assert not out.exists() and not list((tmp_path / "out").iterdir())
        return err

    (tmp_path / "out").mkdir()
    write_inputs(tmp_path / "one", 1, "plain")
    assert "training data has 2" in go(tmp_path / "one", mr["m2d"])
    write_inputs(tmp_path / "two4d", 2, "plain")
    assert "training data has 1" in go(tmp_path / "two4d", ct["m2d"])
    write_inputs(tmp_path / "three", 2, "nnunet")
    save(
        tmp_path / "three" / "a_0002.nii.gz",
        _hu((20, 13, 9), 0),
        oblique_affine((0.6, 1.1, 3.0), 0.3),
    )
    assert "_0000, _0001, _0002" in go(tmp_path / "three", mr["m2d"])
    write_inputs(tmp_path / "mixed", 1, "nnunet")
    save(tmp_path / "mixed" / "c.nii.gz", _hu((5, 5, 5), 1), np.eye(4))
    assert "mixed naming" in go(tmp_path / "mixed", ct["m2d"])
    write_inputs(tmp_path / "broken", 1, "plain")
    (tmp_path / "broken" / "b.nii.gz").write_bytes(b"not a nifti file at all")
    assert "b.nii.gz" in go(tmp_path / "broken", ct["m2d"])
    write_inputs(tmp_path / "grid", 2, "nnunet")
    save(tmp_path / "grid" / "b_0001.nii.gz", _hu((11, 17, 4), 2), np.eye(4))
    assert "affine differs" in go(tmp_path / "grid", mr["m2d"])
    assert "input folder not found" in go(tmp_path / "missing", ct["m2d"])


def test_a_store_other_than_the_trained_one_is_refused(ct, mr, tmp_path: Path) -> None:
    method = tmp_path / "gdl"
    method.mkdir()
    for name in ("best.pt", "args.json"):
        (method / name).write_bytes((ct["m2d"] / name).read_bytes())
    (method / "lineage.json").write_text(json.dumps({"inputs": {"cases": "0" * 64}}))
    write_inputs(tmp_path / "in", 1, "plain")
    with pytest.raises(InputError, match="not the case store gdl was trained on"):
        predict_folder(tmp_path / "in", method, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_console_script_is_declared() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'segline-predict = "segline.predict:cli"' in text
    proc = subprocess.run(
        [sys.executable, "-c", "from segline.predict import cli; cli()", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--probs" in proc.stdout and "(default:" in proc.stdout


# -------------------------------------------------------------------------- make level
@pytest.mark.make
def test_make_predict_input_output(tmp_path: Path, run_make) -> None:
    """make -f spleen.make TOY=1 predict INPUT=... OUTPUT=... PROBS=1 (Dimwit, 1 epoch,
    METHODS=gdl, the store's own ``predict`` folder built alongside); the raw files of
    the store's unlabelled cases as INPUT give that folder's predictions exactly; an
    empty INPUT: one line, exit 0 (several methods: the CLI test above); OUTPUT in
    results/ or in the case store: refused, nothing changed, nothing retrains."""
    root = copy_project(tmp_path / "p")
    refs = write_inputs(tmp_path / "in", 1, "nnunet")
    args = ("-j2", "-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "METHODS=gdl")
    store_pred = root / "results" / "spleen-toy" / "predict" / "gdl"
    proc = run_make(
        root,
        *args,
        "predict",
        f"INPUT={tmp_path / 'in'}",
        f"OUTPUT={tmp_path / 'out'}",
        "PROBS=1",
        str(store_pred.relative_to(root)),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # one folder per method and the record of what segline wrote; no stage records
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".segline-predictions", "gdl"]
    check_outputs(tmp_path / "out" / "gdl", refs, 2, probs=True)
    check_label_files(tmp_path / "out" / "gdl", {"0": "background", "1": "spleen"})
    assert sorted(p.name for p in store_pred.iterdir()) == [
        "labels.ctbl",
        "labels.txt",
        "spleen_1.nii.gz",
        "spleen_1_probs.nii.gz",
        "spleen_4.nii.gz",
        "spleen_4_probs.nii.gz",
    ]

    # the raw files of the store's unlabelled cases, as a folder: the same predictions
    raw_ts = root / "data" / "spleen-toy" / "raw" / "Task09_Spleen" / "imagesTs"
    proc = run_make(
        root,
        *args,
        "predict",
        f"INPUT={raw_ts}",
        f"OUTPUT={tmp_path / 'again'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for case in ("spleen_1", "spleen_4"):
        a = nib.load(tmp_path / "again" / "gdl" / f"{case}.nii.gz")
        b = nib.load(store_pred / f"{case}.nii.gz")
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)

    (tmp_path / "empty").mkdir()
    proc = run_make(
        root, *args, "predict", f"INPUT={tmp_path / 'empty'}", f"OUTPUT={tmp_path / 'out2'}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [ln for ln in proc.stdout.splitlines() if "nothing to predict" in ln]
    assert [ln.split(":")[0] for ln in said] == ["gdl"], proc.stdout
    assert sorted(p.name for p in (tmp_path / "out2" / "gdl").iterdir()) == [
        "labels.ctbl",
        "labels.txt",
    ]

    # OUTPUT in results/ (the model's own folder would be OUTPUT/gdl) or in the case
    # store (segline.predicting.output; tests/test_predict_safety.py): one line, exit 2,
    # nothing changed, and the next make finds the training up to date (no retraining)
    best = (root / "results" / "spleen-toy" / "gdl" / "best.pt").read_bytes()
    before = snapshot(root / "results"), snapshot(root / "data")
    for out in ("results/spleen-toy", "data/spleen-toy/cases"):
        proc = run_make(root, *args, "predict", f"INPUT={tmp_path / 'in'}", f"OUTPUT={out}")
        said = [ln for ln in proc.stderr.splitlines() if ln.startswith("segline: ")]
        assert proc.returncode == 2 and len(said) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert said[0].startswith(f"segline: {out}: lies inside the project's ")
        assert "Traceback" not in proc.stderr and "segline.train" not in proc.stdout
    assert (snapshot(root / "results"), snapshot(root / "data")) == before
    assert (root / "results" / "spleen-toy" / "gdl" / "best.pt").read_bytes() == best
    plan = run_make(root, *args, "-n", "results/spleen-toy/gdl")
    assert plan.returncode == 0 and "segline" not in plan.stdout, plan.stdout
