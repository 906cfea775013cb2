"""Tests for segline.pack: content-named, deterministic, read-only archives."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from segline import pack
from segline.cli import run
from segline.errors import InputError

COMMIT = "abc12345"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """results/toy/ with plots, report, two methods, checkpoints and in-progress junk."""
    root = tmp_path / "results" / "toy"
    files = {
        "report.md": "# Results: toy\n",
        "report.csv": "method,class\ndice,spleen\n",
        "val_dice.png": "\x89PNG fake",
        "dice/epochs.csv": "epoch,tra_loss\n1,0.5\n",
        "dice/metrics.csv": "epoch,split,case,class,metric,value\n1,val,v1,spleen,dice,0.5\n",
        "dice/best_epoch.txt": "1\n",
        "dice/args.json": "{}\n",
        "dice/provenance/pip-freeze.txt": "numpy==2\n",
        "dice/test/metrics.csv": "epoch,split,case,class,metric,value\n1,test,t1,spleen,dice,0.7\n",
        "dice/test/preds/t1.nii.gz": "nifti bytes",
        "dice/test/preds_zyx/t1.npy": "npy bytes",
        "dice/best.pt": "weights",
        "dice/last.pt": "weights 2",
        "boundary/epochs.csv": "epoch,tra_loss\n1,0.7\n",
        "boundary/best.pt": "weights 3",
        "boundary/report.csv.tmp": "half written",
        "boundary_tmp/epochs.csv": "training in progress",
        ".DS_Store": "junk",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("latin-1"))
    return root


EXPECTED = [
    "boundary/epochs.csv",
    "dice/args.json",
    "dice/best_epoch.txt",
    "dice/epochs.csv",
    "dice/metrics.csv",
    "dice/provenance/pip-freeze.txt",
    "dice/test/metrics.csv",
    "dice/test/preds/t1.nii.gz",
    "report.csv",
    "report.md",
    "val_dice.png",
]


def do_pack(results: Path, outdir: Path, *extra: str) -> int:
    return run(pack.main, ["--ds", "toy", "--results", str(results), "--outdir", str(outdir),
                           "--commit", COMMIT, *extra])  # fmt: skip


def only_archive(outdir: Path) -> Path:
    (archive,) = sorted(outdir.glob("*.tar.gz"))
    return archive


def expected_hash(results: Path, rels: list[str]) -> str:
    """The content hash: every packed file but the volatile ones (here the report)."""
    hashed = [r for r in sorted(rels) if r not in ("report.md", "report.csv")]
    lines = "".join(
        f"{hashlib.sha256((results / r).read_bytes()).hexdigest()}  {r}\n" for r in hashed
    )
    return hashlib.sha256(lines.encode()).hexdigest()[:12]


def test_contents_name_and_member_headers(results: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "archives"
    assert do_pack(results, out) == 0
    archive = only_archive(out)
    assert archive.name == f"toy-{COMMIT}-{expected_hash(results, EXPECTED)}.tar.gz"
    assert capsys.readouterr().out.splitlines()[-1] == str(archive)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["toy/SHA256SUMS"] + [f"toy/{r}" for r in EXPECTED]  # sorted, no .pt
        for m in members:
            assert m.isfile() and m.mtime == 0 and m.uid == 0 and m.gid == 0
            assert m.uname == "" and m.gname == "" and m.mode == 0o644
            assert not m.name.startswith("/") and ".." not in m.name.split("/")
            assert not m.pax_headers  # nothing extra (no times, no names)
        sums = tar.extractfile("toy/SHA256SUMS").read().decode()
        first = hashlib.sha256(b"epoch,tra_loss\n1,0.7\n").hexdigest()
        assert sums.splitlines()[0] == f"{first}  boundary/epochs.csv"
        assert tar.extractfile("toy/dice/test/preds/t1.nii.gz").read() == b"nifti bytes"
    raw = archive.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert raw[3] & 0x08 == 0  # no stored file name
    assert stat.S_IMODE(archive.stat().st_mode) == 0o444
    assert (out / "toy-latest.txt").read_text() == archive.name + "\n"
    assert sorted(p.name for p in out.iterdir()) == sorted([archive.name, "toy-latest.txt"])


def test_same_content_same_name_and_bytes(results: Path, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert do_pack(results, a) == 0
    copy = tmp_path / "elsewhere" / "toy"
    shutil.copytree(results, copy)
    for path in copy.rglob("*"):  # other mtimes and modes must not matter
        os.utime(path, (1_000_000_000, 1_000_000_000))
    os.chmod(copy / "report.md", 0o600)
    assert do_pack(copy, b) == 0
    assert only_archive(a).name == only_archive(b).name
    assert only_archive(a).read_bytes() == only_archive(b).read_bytes()
    # packing again: the existing archive is left as it is, and we are told
    before = os.stat(only_archive(a))
    capsys.readouterr()
    assert do_pack(results, a) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "exists already" in lines[0] and lines[-1] == str(only_archive(a))
    after = os.stat(only_archive(a))
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_changed_content_new_name(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "archives"
    assert do_pack(results, out) == 0
    first = only_archive(out).name
    # the report gives wall times (volatile): a rerun's report keeps the name
    (results / "report.md").write_text("# Results: toy\n\ntraining wall time 41.2 s\n")
    assert do_pack(results, out) == 0
    assert [p.name for p in out.glob("*.tar.gz")] == [first]
    (results / "dice" / "metrics.csv").write_text(
        "epoch,split,case,class,metric,value\n1,val,v1,spleen,dice,0.6\n"
    )
    assert do_pack(results, out) == 0
    names = sorted(p.name for p in out.glob("*.tar.gz"))
    assert len(names) == 2 and first in names
    (second,) = [n for n in names if n != first]
    assert (out / "toy-latest.txt").read_text() == second + "\n"


def test_timings_packed_but_not_in_the_name(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "archives"
    method = next(p for p in sorted(results.iterdir()) if p.is_dir())
    (method / "timing.csv").write_text("epoch,seconds\n1,3.2\n")
    assert do_pack(results, out) == 0
    first = only_archive(out)
    with tarfile.open(first) as tar:
        names = tar.getnames()
        sums = tar.extractfile(f"toy/{pack.MANIFEST}").read().decode()
    assert f"toy/{method.name}/timing.csv" in names and f"{method.name}/timing.csv" in sums
    # a rerun of the same experiment: only the wall times differ -> same name, kept as is
    (method / "timing.csv").write_text("epoch,seconds\n1,4.7\n")
    assert do_pack(results, out) == 0
    assert [p.name for p in out.glob("*.tar.gz")] == [first.name]
    assert pack.manifest_hash(
        [("a/timing.csv", "1" * 64), ("a/x.csv", "0" * 64)]
    ) == pack.manifest_hash([("a/x.csv", "0" * 64)])


def test_models_flag_adds_checkpoints(results: Path, tmp_path: Path) -> None:
    plain, models = tmp_path / "plain", tmp_path / "models"
    assert do_pack(results, plain) == 0
    assert do_pack(results, models, "--models") == 0
    assert only_archive(plain).name != only_archive(models).name
    with tarfile.open(only_archive(models)) as tar:
        names = tar.getnames()
    assert {"toy/dice/best.pt", "toy/dice/last.pt", "toy/boundary/best.pt"} <= set(names)
    rels = sorted([*EXPECTED, "boundary/best.pt", "dice/best.pt", "dice/last.pt"])
    assert only_archive(models).name.endswith(f"-{expected_hash(results, rels)}.tar.gz")


def test_python_gzip_path_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "x.tar"
    src.write_bytes(b"some tar bytes" * 1000)
    one, two = tmp_path / "1.gz", tmp_path / "2.gz"
    pack.gzip_file(src, one, use_pigz=False)
    pack.gzip_file(src, two, use_pigz=False)
    assert one.read_bytes() == two.read_bytes()


def test_python_gzip_whole_archive_deterministic(results: Path, tmp_path: Path) -> None:
    one, _, n_files = pack.pack(results, tmp_path / "1", "toy", COMMIT, use_pigz=False)
    two, created, _ = pack.pack(results, tmp_path / "2", "toy", COMMIT, use_pigz=False)
    assert created and one.name == two.name and n_files == len(EXPECTED)
    raw = one.read_bytes()
    assert raw == two.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and raw[3] & 0x08 == 0  # no time, no name
    with tarfile.open(one) as tar:
        assert tar.getnames()[1:] == [f"toy/{r}" for r in EXPECTED]


@pytest.mark.skipif(shutil.which("pigz") is None, reason="pigz not installed")
def test_pigz_path_is_deterministic(results: Path, tmp_path: Path) -> None:
    src = tmp_path / "x.tar"
    src.write_bytes(b"some tar bytes" * 1000)
    one, two = tmp_path / "1.gz", tmp_path / "2.gz"
    pack.gzip_file(src, one, use_pigz=True)
    os.utime(src, (1_000_000_000, 1_000_000_000))
    pack.gzip_file(src, two, use_pigz=True)
    raw = one.read_bytes()
    assert raw == two.read_bytes() and raw[4:8] == b"\0\0\0\0" and raw[3] & 0x08 == 0


def test_commit_outside_a_repository(tmp_path: Path) -> None:
    assert pack.git_short_commit(cwd=tmp_path) == "nogit"


def test_commit_in_a_repository(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env = {**os.environ, **who, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    subprocess.run([git, "init", "-q", str(tmp_path)], check=True, env=env)
    (tmp_path / "f").write_text("x")
    subprocess.run([git, "-C", str(tmp_path), "add", "f"], check=True, env=env)
    subprocess.run([git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True, env=env)
    assert re.fullmatch(r"[0-9a-f]{8}", pack.git_short_commit(cwd=tmp_path))


def _assert_refused(capsys, outdir: Path, rc: int, needle: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("segline: ") and needle in err
    assert not list(outdir.glob("*.tar.gz")) and not (outdir / "toy-latest.txt").exists()


def test_archive_folder_inside_results_refused(results: Path, capsys) -> None:
    out = results / "archives"
    _assert_refused(capsys, out, do_pack(results, out), "inside the results folder")


def test_missing_results_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "archives"
    rc = do_pack(tmp_path / "results" / "nope", out)
    _assert_refused(capsys, out, rc, "nope: results folder not found")


def test_environment_dump_refused(results: Path, tmp_path: Path, capsys) -> None:
    (results / "dice" / "provenance" / "printenv.txt").write_text("SECRET=1\n")
    out = tmp_path / "archives"
    _assert_refused(
        capsys, out, do_pack(results, out), "printenv.txt: looks like an environment dump"
    )


def test_symlink_refused(results: Path, tmp_path: Path, capsys) -> None:
    (results / "link.csv").symlink_to(results / "report.csv")
    out = tmp_path / "archives"
    _assert_refused(capsys, out, do_pack(results, out), "link.csv: not a regular file")


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--commit", "../x", "not a safe file-name part"),
        ("--commit", "a-b", "not a safe file-name part"),  # '-' separates the name's parts
        ("--ds", "a b", "--ds (DS)='a b': not a valid name (it has a space)"),
        ("--ds", "a.b", "--ds (DS)='a.b': not a valid name"),
        ("--run", "../x", "--run (RUN)='../x': not a valid name"),
    ],
)
def test_unsafe_name_parts_refused(
    results: Path, tmp_path: Path, capsys, flag: str, value: str, needle: str
) -> None:
    out = tmp_path / "archives"
    args = {"--ds": "toy", "--results": str(results), "--outdir": str(out), "--commit": COMMIT}
    args[flag] = value
    rc = run(pack.main, [x for kv in args.items() for x in kv])
    _assert_refused(capsys, out, rc, needle)


def test_methods_trained_on_different_stores_are_not_packed(results: Path, tmp_path: Path) -> None:
    """Each training's lineage.json names the digests of the stores it read."""
    for method, cases in (("dice", "a" * 64), ("boundary", "a" * 64)):
        (results / method / "lineage.json").write_text(
            json.dumps({"inputs": {"cases": cases, "dist": "d" * 64}})
        )
    assert do_pack(results, tmp_path / "ok") == 0
    (results / "boundary" / "lineage.json").write_text(
        json.dumps({"inputs": {"cases": "b" * 64, "dist": "d" * 64}})
    )
    with pytest.raises(InputError, match="trained on another cases store than"):
        pack.pack(results, tmp_path / "mixed", "toy", COMMIT)
    assert not (tmp_path / "mixed").exists()


def test_only_the_named_items_are_packed(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "archives"
    assert do_pack(results, out, "report.md", str(results / "dice")) == 0
    with tarfile.open(only_archive(out)) as tar:
        names = sorted(m.name for m in tar.getmembers())
    expected = ["report.md"] + [r for r in EXPECTED if r.startswith("dice/")]
    assert names == sorted(["toy/SHA256SUMS"] + [f"toy/{r}" for r in expected])
    with pytest.raises(InputError, match="not inside the results folder"):
        pack.collect(results, items=[str(tmp_path)])
    with pytest.raises(InputError, match="missing: build it before packing"):
        pack.collect(results, items=["ce"])


def test_seed_folders_trained_on_different_stores_are_not_packed(
    results: Path, tmp_path: Path
) -> None:
    """With SEEDS each training is <method>/seed<k>/: its lineage is compared too."""
    for seed, cases in ((0, "a" * 64), (1, "a" * 64)):
        folder = results / "seeds" / "dice" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "lineage.json").write_text(json.dumps({"inputs": {"cases": cases}}))
    seeds = results / "seeds"
    assert pack.collect(seeds, items=[str(seeds / "dice")])
    pack.check_same_inputs(seeds, ["dice/seed0/lineage.json", "dice/seed1/lineage.json"])
    (seeds / "dice" / "seed1" / "lineage.json").write_text(
        json.dumps({"inputs": {"cases": "b" * 64}})
    )
    with pytest.raises(
        InputError, match=r"dice/seed1.*trained on another cases store than dice/seed0"
    ):
        pack.pack(seeds, tmp_path / "mixed", "toy", COMMIT)
    assert not (tmp_path / "mixed").exists()
