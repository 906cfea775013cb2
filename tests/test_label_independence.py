"""No test case is cropped, resampled or normalised using its labels.

For each toy dataset (spleen, ISLES, vessels, vertebrae) the slicing stage runs as its
makefile runs it (``make -f <ds>.make TOY=1 data/<ds>-toy/cases``, the command line
taken from make's output), then once more, with the same command line, on a copy of
the raw folder in which one TEST case's label file is changed: its foreground moved
along x and enlarged. Everything the network reads must be byte-identical: every
case's ``image.npy`` (the 2D pipelines read their axial slices from it: the case-store
layout, :mod:`segline.casestore`), every ``meta.json`` (crop and geometry, the crop
used), ``dataset.json`` and ``split.json``; only that case's ``label.npy`` may differ
(and must: the change took effect). With ``CROP=label`` (vertebrae's default, and a
spleen variant) the test case is cropped from its image alone; the vertebrae test
failed while the label crop also applied to test cases. A cross-validation variant
(``FOLDS=3``) changes a case that is top-level *training* (fold 0) but a test case of
another fold: it must not be label-cropped either. The vessels test also compares the
MIP stage's images (``mip.npy``, ``depth.npy``), the input of its 2D MIP methods.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import copy_project

pytestmark = pytest.mark.make

PY = sys.executable


def _run(root: Path, *argv: str) -> None:
    """Run a stage's CLI in the project copy ``root``, with its ``src`` first on the path
    (as make runs it)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    proc = subprocess.run([PY, *argv], cwd=root, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _slice_command(stdout: str) -> list[str]:
    """The slicing stage's command line as make printed it (the interpreter dropped)."""
    lines = [ln for ln in stdout.splitlines() if "preprocess/slice.py" in ln]
    assert len(lines) == 1, stdout[-3000:]
    argv = shlex.split(lines[0])
    return argv[argv.index("preprocess/slice.py"):]


def _with(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


def _change_label(path: Path) -> None:
    """Move the foreground 3 voxels along x (wrapping) and grow it by one voxel along
    x: the same label values, another bounding box; same header and affine."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    moved = np.roll(data, 3, axis=0)
    grown = moved.copy()
    grown[1:] = np.where(moved[1:] == 0, moved[:-1], moved[1:])
    assert not np.array_equal(grown, data)
    out = nib.Nifti1Image(grown.astype(data.dtype), img.affine, img.header)
    out.set_data_dtype(data.dtype)
    nib.save(out, str(path))


def _sliced_twice(root: Path, make_file: str, run_make, pick: str,
                  knobs: tuple[str, ...] = ()) -> tuple[Path, Path, str]:
    """Slice ``make_file``'s toy (``knobs`` added), then again with one case's label
    changed; ``pick``: ``test`` (top-level test case) or ``fold-test`` (a top-level
    training case that is a test case of another fold). Returns (store, store with
    the changed label, the case)."""
    ds = make_file.removesuffix(".make")
    data = root / "data" / f"{ds}-toy"
    proc = run_make(root, "-f", make_file, "TOY=1", *knobs, f"data/{ds}-toy/cases")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    argv = _slice_command(proc.stdout)
    cases = data / "cases"
    split = json.loads((cases / "split.json").read_text())
    if pick == "test":
        case = split["test"][0]
    else:
        case = next(c for c in split["train"] if any(c in f["test"] for f in split["folds"]))
    label_file = json.loads((cases / case / "meta.json").read_text())["source"]["label"]
    raw2 = data / "raw-changed"
    shutil.copytree(data / "raw", raw2, symlinks=True)
    _change_label(raw2 / label_file)
    argv2 = _with(_with(argv, "--raw", str(raw2)), "--out", str(data / "cases-changed"))
    _run(root, *argv2)
    return cases, data / "cases-changed", case


def _assert_same_input(a: Path, b: Path, case: str) -> dict:
    """Every case's image and meta, dataset.json and split.json byte-identical; only
    ``case``'s label differs. Returns the case's meta."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in ("dataset.json", "split.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for folder in (a / n for n in names if (a / n).is_dir()):
        for name in ("image.npy", "meta.json"):
            assert (folder / name).read_bytes() == (b / folder.name / name).read_bytes(), (
                folder.name, name)
        if (folder / "label.npy").exists():
            label = (folder / "label.npy").read_bytes()
            same = label == (b / folder.name / "label.npy").read_bytes()
            assert same == (folder.name != case), folder.name
    return json.loads((a / case / "meta.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the project for the module (each test slices its own dataset)."""
    return copy_project(tmp_path_factory.mktemp("labels"))


def test_spleen_label_crop_uses_only_the_image(project: Path, run_make) -> None:
    """Spleen (2D pipeline) with CROP=label: the test case is cropped to the body."""
    a, b, case = _sliced_twice(project, "spleen.make", run_make, "test", ("CROP=label",))
    assert _assert_same_input(a, b, case)["crop"] == "body (image only)"
    split = json.loads((a / "split.json").read_text())
    assert {json.loads((a / c / "meta.json").read_text())["crop"]
            for c in split["train"] + split["val"]} == {"label"}


def test_isles_test_input_independent_of_its_label(project: Path, run_make) -> None:
    a, b, case = _sliced_twice(project, "isles.make", run_make, "test")
    assert "crop" not in _assert_same_input(a, b, case)


def test_vessels_test_input_and_mips_independent_of_its_label(project: Path,
                                                              run_make) -> None:
    a, b, case = _sliced_twice(project, "vessels.make", run_make, "test")
    assert _assert_same_input(a, b, case)["crop"] == "body"
    for store in (a, b):
        _run(project, "preprocess/mip.py", "--cases", str(store), "--out",
             str(store.parent / f"{store.name}-mip"))
    for name in ("mip.npy", "depth.npy"):
        assert (a.parent / "cases-mip" / case / name).read_bytes() == (
            b.parent / "cases-changed-mip" / case / name).read_bytes(), name


def test_vertebrae_test_case_not_cropped_to_its_label(project: Path, run_make) -> None:
    """Vertebrae's CROP=label: the test case's box comes from its CT (the body), so
    moving its vertebrae in the mask moves nothing the network sees."""
    a, b, case = _sliced_twice(project, "vertebrae.make", run_make, "test")
    meta = _assert_same_input(a, b, case)
    assert meta["crop"] == "body (image only)"
    split = json.loads((a / "split.json").read_text())
    crops = {c: json.loads((a / c / "meta.json").read_text())["crop"]
             for c in split["train"] + split["val"] + split["test"] + split["infer"]}
    assert crops == {**{c: "label" for c in split["train"] + split["val"]},
                     **{c: "body (image only)" for c in split["test"]},
                     **{c: "body (no label)" for c in split["infer"]}}
    preprocessing = json.loads((a / "dataset.json").read_text())["preprocessing"]
    assert preprocessing["crop"] == "label" and preprocessing["crop_test"].startswith("body")


def test_vertebrae_folds_no_label_crop_for_any_fold_test(project: Path, run_make) -> None:
    """FOLDS=3: every labelled case is a test case of one fold, so none is cropped to
    its label; a top-level training case's changed mask changes no image."""
    root = copy_project(project.parent / "folds")
    a, b, case = _sliced_twice(root, "vertebrae.make", run_make, "fold-test", ("FOLDS=3",))
    assert _assert_same_input(a, b, case)["crop"] == "body (image only)"
    split = json.loads((a / "split.json").read_text())
    assert case in split["train"]
    labelled = split["train"] + split["val"] + split["test"]
    assert {json.loads((a / c / "meta.json").read_text())["crop"] for c in labelled} == {
        "body (image only)"}


def test_report_names_the_test_cases_crop(tmp_path: Path) -> None:
    """The report's configuration section says how the test cases were cropped (their
    meta ``crop``); a store whose test cases were cropped to their label says so."""
    from segline.report.config import config_section, cropped_tests_line

    for case, crop in (("a", "body (image only)"), ("b", "body (image only)"),
                       ("c", "label"), ("d", None)):
        (tmp_path / case).mkdir()
        meta = {} if crop is None else {"crop": crop}
        (tmp_path / case / "meta.json").write_text(json.dumps(meta))
    assert cropped_tests_line(tmp_path, ["a", "b"]) == (
        "Test cases cropped: body (image only), 2 cases.\n")
    assert cropped_tests_line(tmp_path, ["d"]) == (
        "Test cases cropped: none (whole volume), 1 case.\n")
    mixed = cropped_tests_line(tmp_path, ["a", "c"])
    assert mixed.startswith("Test cases cropped: body (image only): 1 case, label (the box "
                            "of the case's own ground truth")
    assert cropped_tests_line(tmp_path, ["missing"]) == ""
    assert "Test cases cropped: body (image only), 2 cases." in config_section(
        [], cropped_tests_line(tmp_path, ["a", "b"]))
