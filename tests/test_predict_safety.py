"""``predict`` never destroys a user's data or models (segline.predicting.output).

``segline-predict -o OUT`` (make ``predict INPUT=... OUTPUT=OUT``) writes only into a
folder segline owns: new, empty or marked by its record ``.segline-predictions``;
outside the project's ``results/`` and ``data/``; apart from every input. Each method
writes its own sub-folder (named by its path below ``results/<ds>/``), replaced only
when it holds nothing but files segline recorded. Everything else is one line, exit
2, and nothing written: each refusal below compares the whole project (every file's
bytes, every file's and folder's mtime) before and after.

One project-like fixture (module scope): an MSD task sliced into ``data/pg/cases``,
untrained Dimwit methods saved as ``results/pg/gdl`` and ``results/pg/r2/gdl`` (the
approach of tests/test_predict_folder.py), a folder of images ``scans``. The one
make-level check here is parse-time only (no training); the make-level refusals run
on the toy training of tests/test_predict_folder.py::test_make_predict_input_output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_project, make_env
from msd_builder import make_task
from segline import stage
from segline.cli import run
from segline.digest import sha256_file
from segline.predict import main
from segline.predicting import output
from test_predict_folder import _method, _slice, write_inputs

MARKER = output.MARKER
PREDICTED = ["a.nii.gz", "b.nii.gz", "labels.ctbl", "labels.txt"]


def state(root: Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256 of a file, link target or "dir"; mtime_ns)} of everything
    below ``root``, hidden files included: any write, even of a file removed again,
    changes a folder's mtime."""
    out: dict[str, tuple[str, int]] = {".": ("dir", root.stat().st_mtime_ns)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                what = "-> " + os.readlink(p)
            elif p.is_dir():
                what = "dir"
            else:
                what = sha256_file(p)
            out[p.relative_to(root).as_posix()] = (what, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project: data/pg/cases, results/pg/gdl and results/pg/r2/gdl (same name, two
    runs; best.pt, args.json, lineage.json with the store's digest, metrics.csv), and
    a folder of two images, scans/."""
    root = tmp_path_factory.mktemp("proj")
    make_task(root / "data" / "pg" / "raw")
    cases = _slice(root / "data" / "pg" / "raw", root / "data" / "pg" / "cases")
    digest = stage.content_digest(cases)
    for folder in (root / "results" / "pg" / "gdl", root / "results" / "pg" / "r2" / "gdl"):
        _method(folder, cases, "Dimwit", 1, 2)
        (folder / "lineage.json").write_text(json.dumps({"inputs": {"cases": digest}}))
        (folder / "metrics.csv").write_text("epoch,val_dice\n1,0.5\n")
    write_inputs(root / "scans", 1, "plain")
    return root


def refused(argv: list[str], capsys) -> str:
    """Run the CLI; assert one line on stderr, nothing on stdout, exit code 2."""
    rc = run(main, argv)
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == "", (rc, cap.out, cap.err)
    assert cap.err.count("\n") == 1 and cap.err.startswith("segline: "), cap.err
    return cap.err


def predict(argv: list[str], capsys) -> str:
    rc = run(main, argv)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return cap.out


def record(out: Path) -> dict:
    return json.loads((out / MARKER).read_text())


def files_of(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


# ------------------------------------------------- 1. OUTPUT in results/: the model
@pytest.mark.parametrize(
    "out",
    [
        "results/pg",  # the run's folder: the method's folder would be OUT/gdl
        "results/pg/gdl",  # the method itself
        "results/pg/new",  # a new folder, but inside results/
        "scans/../results/pg",  # '..' folded
        "link",  # a symlink to results/pg
        "link/new",  # a new folder through that symlink
        ".",  # the project: holds results/ and data/
    ],
)
def test_output_in_results_is_refused_and_the_model_kept(
    proj: Path, out: str, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(proj)
    if not os.path.lexists("link"):
        os.symlink(proj / "results" / "pg", "link")
    best = (proj / "results" / "pg" / "gdl" / "best.pt").read_bytes()
    before = state(proj)
    err = refused(["-i", "scans", "-o", out, "-m", "results/pg/gdl"], capsys)
    assert f"segline: {out}: " in err
    assert "the project's results/" in err or "the project's data/" in err
    assert state(proj) == before
    assert (proj / "results" / "pg" / "gdl" / "best.pt").read_bytes() == best


# ------------------------------------------------- 2. OUTPUT holds INPUT
@pytest.mark.parametrize(
    ("out", "why"),
    [
        ("x", "holds the input folder"),
        ("x/gdl", "is the input folder"),
        ("x/gdl/preds", "lies inside the input folder"),
    ],
)
def test_output_overlapping_the_input_is_refused(
    proj: Path, tmp_path: Path, out: str, why: str, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(proj / "scans", "x/gdl")
    Path("x/notes.txt").write_text("my notes\n")
    before = state(tmp_path)
    err = refused(["-i", "x/gdl", "-o", out, "-m", str(proj / "results/pg/gdl")], capsys)
    assert err.startswith(f"segline: {out}: {why} x/gdl;"), err
    assert state(tmp_path) == before
    assert Path("x/notes.txt").read_text() == "my notes\n"


# ------------------------------------------------- 3. OUTPUT in the case store / data/
@pytest.mark.parametrize("out", ["data/pg/cases", "data/pg/preds", "data"])
def test_output_in_data_is_refused_and_the_store_kept(
    proj: Path, out: str, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(proj)
    before = state(proj)
    err = refused(["-i", "scans", "-o", out, "-m", "results/pg/gdl"], capsys)
    where = "is" if out == "data" else "lies inside"
    assert err.startswith(f"segline: {out}: {where} the project's data/ ("), err
    assert state(proj) == before


def test_input_inside_the_output_is_refused(proj: Path, tmp_path: Path, capsys) -> None:
    """A case store (given with --cases) inside OUT: refused, whatever the project."""
    store = tmp_path / "out" / "cases"
    shutil.copytree(proj / "data" / "pg" / "cases", store)
    before = state(tmp_path)
    argv = ["-i", str(proj / "scans"), "-o", str(tmp_path / "out"), "--cases", str(store)]
    err = refused([*argv, "-m", str(proj / "results/pg/gdl")], capsys)
    assert f"holds the case store {store}" in err
    assert state(tmp_path) == before


# ------------------------------------------------- 4. two methods named gdl
def test_two_methods_named_gdl_land_in_two_subfolders(proj: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "preds"
    gdl, r2 = proj / "results/pg/gdl", proj / "results/pg/r2/gdl"
    said = predict(
        ["-i", str(proj / "scans"), "-o", str(out), "-m", str(gdl), "-m", str(r2)], capsys
    )
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "gdl", "r2.gdl"]
    for name in ("gdl", "r2.gdl"):
        assert sorted(p.name for p in (out / name).iterdir()) == PREDICTED
        assert f"a -> {out / name / 'a.nii.gz'}" in said
    folders = record(out)["folders"]
    assert {k: v["method"] for k, v in folders.items()} == {"gdl": str(gdl), "r2.gdl": str(r2)}
    assert folders["gdl"]["files"] == files_of(out / "gdl")
    assert folders["r2.gdl"]["files"] == files_of(out / "r2.gdl")


def test_subfolder_names() -> None:
    names = {
        "results/pg/gdl": "gdl",
        "results/pg/r2/gdl": "r2.gdl",
        "results/pg/seeds/gdl/seed0": "seeds.gdl.seed0",
        "elsewhere/gdl": "gdl",
        "elsewhere/gdl/seed3": "gdl.seed3",
    }
    assert {m: output.subfolder_name(Path(m)) for m in names} == names


@pytest.mark.parametrize("which", ["twice", "two projects"])
def test_two_methods_in_one_subfolder_are_refused(
    proj: Path, tmp_path: Path, which: str, capsys
) -> None:
    gdl = proj / "results/pg/gdl"
    other = gdl
    if which == "two projects":
        other = tmp_path / "other" / "results" / "pg" / "gdl"
        shutil.copytree(gdl, other)
    before = state(tmp_path)
    argv = ["-i", str(proj / "scans"), "-o", str(tmp_path / "out"), "-m", str(gdl)]
    err = refused([*argv, "-m", str(other)], capsys)
    if which == "twice":
        assert err == f"segline: {other}: given twice (-m)\n"
    else:
        assert f"same sub-folder 'gdl' as those of {gdl}" in err
    assert state(tmp_path) == before and not (tmp_path / "out").exists()


# ------------------------------------------------- 5. a user's file in OUTPUT/gdl
@pytest.mark.parametrize("change", ["annotations.csv", "edited prediction", "folder"])
def test_a_file_segline_did_not_write_is_named_and_kept(
    proj: Path, tmp_path: Path, change: str, capsys
) -> None:
    out = tmp_path / "preds"
    argv = ["-i", str(proj / "scans"), "-o", str(out), "-m", str(proj / "results/pg/gdl")]
    predict(argv, capsys)
    if change == "annotations.csv":
        mine = out / "gdl" / "annotations.csv"
        mine.write_text("case,label\na,1\n")
        why = "not written by segline"
    elif change == "edited prediction":
        mine = out / "gdl" / "a.nii.gz"
        mine.write_bytes(mine.read_bytes() + b"\0")  # a hand correction saved over it
        why = "changed since segline wrote it"
    else:
        mine = out / "gdl" / "checked"
        mine.mkdir()
        why = "a folder segline did not write"
    before = state(tmp_path)
    err = refused(argv, capsys)
    assert err.startswith(f"segline: {mine}: {why}"), err
    assert f"{out / 'gdl'} is replaced only when it holds nothing but" in err
    assert state(tmp_path) == before


# ------------------------------------------------- the folder must be segline's
def test_new_empty_and_marked_folders_are_written(proj: Path, tmp_path: Path, capsys) -> None:
    """New (with missing parents) and empty folders are taken and marked; a re-run into
    a marked folder replaces segline's sub-folder (the --probs files of the first run
    go) and leaves everything else in the folder as it was."""
    scans, gdl = str(proj / "scans"), str(proj / "results/pg/gdl")
    new = tmp_path / "a" / "b" / "new"
    predict(["-i", scans, "-o", str(new), "-m", gdl], capsys)
    assert sorted(p.name for p in new.iterdir()) == [MARKER, "gdl"]
    (tmp_path / "empty").mkdir()
    predict(["-i", scans, "-o", str(tmp_path / "empty"), "-m", gdl], capsys)
    assert sorted((tmp_path / "empty" / "gdl").iterdir()) != []

    out = tmp_path / "preds"
    predict(["-i", scans, "-o", str(out), "-m", gdl, "--probs"], capsys)
    assert "a_probs.nii.gz" in record(out)["folders"]["gdl"]["files"]
    (out / "notes.txt").write_text("my notes\n")
    (out / "mine").mkdir()
    (out / "mine" / "seg.nii.gz").write_bytes(b"hand-made")
    kept = {k: v for k, v in state(out).items() if k in ("notes.txt", "mine", "mine/seg.nii.gz")}
    predict(["-i", scans, "-o", str(out), "-m", gdl], capsys)
    assert sorted(p.name for p in (out / "gdl").iterdir()) == PREDICTED
    assert record(out)["folders"] == {"gdl": {"files": files_of(out / "gdl"), "method": gdl}}
    assert {k: v for k, v in state(out).items() if k in kept} == kept
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "gdl", "mine", "notes.txt"]


@pytest.mark.parametrize("content", ["notes", "bad record", "a file"])
def test_a_folder_not_segline_s_is_refused(
    proj: Path, tmp_path: Path, content: str, capsys
) -> None:
    out = tmp_path / "mine"
    if content == "a file":
        out.write_text("not a folder\n")
        why = "not a folder"
    else:
        out.mkdir()
        (out / "notes.txt").write_text("my notes\n")
        why = "not empty and not a prediction folder segline wrote"
        if content == "bad record":
            (out / MARKER).write_text("{}")
            why = "not a record segline-predict wrote"
    before = state(tmp_path)
    err = refused(
        ["-i", str(proj / "scans"), "-o", str(out), "-m", str(proj / "results/pg/gdl")], capsys
    )
    assert why in err
    assert state(tmp_path) == before


def test_out_is_only_make_s_own_folder(proj: Path, monkeypatch, capsys) -> None:
    """--out (replaced as a whole) is make's results/<ds>/predict/<method> only."""
    monkeypatch.chdir(proj)
    before = state(proj)
    for out in ("results/pg/gdl", "results/pg", "results/pg/predict", "../elsewhere"):
        err = refused(["-m", "results/pg/gdl", "--out", out], capsys)
        assert f"segline: {out}: --out writes make's own folder" in err
    assert state(proj) == before


# ------------------------------------------------- 17. a space: one line at parse time
@pytest.mark.make
def test_a_space_in_input_or_output_is_one_line_at_parse_time(tmp_path: Path) -> None:
    """make refuses INPUT or OUTPUT with a space when it reads the makefiles: one line
    naming the knob, nothing planned; and predict INPUT=... is one CLI call."""
    root = copy_project(tmp_path / "p")
    base = ["make", "--no-print-directory", "-n", "-f", "spleen.make", "TOY=1", "predict"]
    base.append(f"CC={sys.executable}")

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], cwd=root, env=make_env(), capture_output=True, text=True, timeout=120
        )

    for knob, args in (("OUTPUT", ("INPUT=scans", "OUTPUT=my preds")),
                       ("INPUT", ("INPUT=my scans", "OUTPUT=preds"))):  # fmt: skip
        proc = make(*args)
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout[-2000:]
        lines = proc.stderr.splitlines()
        value = args[0 if knob == "INPUT" else 1].split("=")[1]
        assert len(lines) == 1 and f"{knob}='{value}': a path with a space" in lines[0], lines
    proc = make("INPUT=scans", "OUTPUT=preds", "METHODS=gdl ce")
    calls = [ln for ln in proc.stdout.splitlines() if "segline.predict" in ln]
    assert proc.returncode == 0 and len(calls) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--input 'scans' --output 'preds'" in calls[0]
    assert "--method results/spleen-toy/gdl --method results/spleen-toy/ce " in calls[0]


def test_store_cases_into_an_owned_folder(proj: Path, tmp_path: Path, capsys) -> None:
    """Without -i: the store's unlabelled cases, into the owned folder as well."""
    out = tmp_path / "preds"
    predict(["-o", str(out), "-m", str(proj / "results/pg/gdl")], capsys)
    assert sorted(p.name for p in (out / "gdl").iterdir()) == [
        "labels.ctbl",
        "labels.txt",
        "spleen_5.nii.gz",
        "spleen_7.nii.gz",
    ]
    assert record(out)["folders"]["gdl"]["files"] == files_of(out / "gdl")


def test_a_failed_method_leaves_its_old_folder(
    proj: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """An error while a sub-folder is written (here: loading the network) removes the
    temporary folder; the previous predictions and the record stay as they were."""
    out = tmp_path / "preds"
    argv = ["-i", str(proj / "scans"), "-o", str(out), "-m", str(proj / "results/pg/gdl")]
    predict(argv, capsys)
    before = state(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no network today")

    monkeypatch.setattr("segline.predict.load_predictor", broken)
    with pytest.raises(RuntimeError, match="no network today"):
        main(argv)
    after = state(tmp_path)
    assert {k: v for k, v in after.items() if k != "preds"} == {
        k: v for k, v in before.items() if k != "preds"
    }  # the folder's own mtime: a temporary folder came and went
    assert not [p for p in out.iterdir() if p.name.startswith(output.TMP_PREFIX)]
