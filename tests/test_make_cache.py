"""Make-level tests of the result cache (``CACHE``, src/segline/cache.py) on the spleen toy.

One project copy (a git repository with an untracked file, and a secret in the
environment) builds the toy with ``NET=Dimwit EPC=1``, one method, into a cache folder
outside it. Then, each on its own copy:

* a second checkout sharing the cache builds everything with no training run, and its
  archive has the same content hash;
* no cache file holds the environment variable's value or the untracked file's content;
* the typo undone: EPC=2 trains, back to EPC=1 is restored, not trained;
* a corrupted entry is discarded with one line and the training built again;
* ``make cache-verify`` builds the sample again and finds the same content.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_project, make_env
from segline.digest import tree_digest

pytestmark = pytest.mark.make

BASE = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "DEBUG=--debug",
        "METHODS=gdl")  # fmt: skip
RES = "results/spleen-toy/debug"
SECRET_ENV = "SEGLINE_TEST_API_TOKEN"
SECRET_VALUE = "tok-4f1c9e7a-never-in-a-cache"
UNTRACKED_SECRET = "untracked-9b2d-private-content"
TRAINED = re.compile(r"^\[gdl\] epoch ", re.M)
"""A training's epoch line (segline.train.voice): printed only when a training runs."""


def make(root: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """make in ``root`` with the result cache ``cache`` and the secret in the environment."""
    cmd = ["make", "--no-print-directory", *BASE, *args, f"CACHE={cache}",
           f"CC={sys.executable}"]  # fmt: skip
    env = {**make_env(), SECRET_ENV: SECRET_VALUE}
    return subprocess.run(
        cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def archive_hash(root: Path) -> str:
    """The content hash of the run's archive (the last part of its name)."""
    name = (root / "archives" / "spleen-toy.debug-latest.txt").read_text().strip()
    return name.removesuffix(".tar.gz").rsplit("-", 1)[1]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the project that every checkout of this module is copied from, so
    all have the same code even while the repository is being edited."""
    return copy_project(tmp_path_factory.mktemp("pristine") / "p")


def checkout(pristine: Path, dest: Path) -> Path:
    """A copy of the pristine project (mtimes kept)."""
    shutil.copytree(pristine, dest)
    return dest


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, pristine: Path) -> tuple[Path, Path]:
    """(the first checkout, the cache it filled): a git repository with an untracked
    file holding private text, built with a secret in the environment."""
    base = tmp_path_factory.mktemp("cache")
    root = checkout(pristine, base / "a")
    shutil.copy2(REPO / ".gitignore", root / ".gitignore")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "copy")
    (root / "notes.txt").write_text(UNTRACKED_SECRET + "\n")
    proc = make(root, base / "cache")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert TRAINED.search(proc.stdout), proc.stdout[-2000:]
    return root, base / "cache"


def _own_cache(cache: Path, dest: Path) -> Path:
    """A private copy of the cache (its files copied, not linked: a test may damage it)."""
    shutil.copytree(cache, dest)
    return dest


def test_second_checkout_trains_nothing_and_archives_the_same(
    first: tuple[Path, Path], pristine: Path, tmp_path: Path
) -> None:
    a, cache = first
    b = checkout(pristine, tmp_path / "b")
    proc = make(b, cache)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not TRAINED.search(proc.stdout), proc.stdout  # zero trainings
    restored = re.findall(r"^\[(\S+)\] restored from the cache \([0-9a-f]{12}\): not rebuilt$",
                          proc.stdout, re.M)  # fmt: skip
    # toy archive, raw, cases, dist, training, evaluation, figures, overlays, report
    assert len(restored) == 9 and restored.count("gdl") == 2, proc.stdout
    assert archive_hash(b) == archive_hash(a)
    assert tree_digest(b / RES / "gdl") == tree_digest(a / RES / "gdl")
    # up to date now: nothing planned
    assert "segline" not in make(b, cache, "-n").stdout


def test_no_secret_enters_the_cache(first: tuple[Path, Path]) -> None:
    a, cache = first
    provenance = (a / RES / "gdl" / "provenance" / "untracked.sha256").read_text()
    assert "notes.txt" in provenance  # the untracked file was there, listed by hash
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        texts = [data]
        if path.name.endswith(".gz"):
            texts.append(gzip.decompress(data))
        for text in texts:
            assert SECRET_VALUE.encode() not in text, path
            assert UNTRACKED_SECRET.encode() not in text, path


def test_typo_undone_is_restored_not_trained(
    first: tuple[Path, Path], pristine: Path, tmp_path: Path
) -> None:
    _, shared = first
    cache = _own_cache(shared, tmp_path / "cache")
    c = checkout(pristine, tmp_path / "c")
    one = make(c, cache, "train")
    assert one.returncode == 0 and not TRAINED.search(one.stdout), one.stdout
    digest = tree_digest(c / RES / "gdl")
    typo = make(c, cache, "train", "EPC=2")
    assert typo.returncode == 0, typo.stderr[-2000:]
    assert TRAINED.search(typo.stdout) and "restored" not in typo.stdout.split("segline.train")[-1]
    back = make(c, cache, "train")
    assert back.returncode == 0, back.stderr[-2000:]
    assert not TRAINED.search(back.stdout), back.stdout
    assert "[gdl] restored from the cache" in back.stdout
    assert tree_digest(c / RES / "gdl") == digest


def test_corrupted_entry_is_discarded_and_rebuilt(
    first: tuple[Path, Path], pristine: Path, tmp_path: Path
) -> None:
    _, shared = first
    cache = _own_cache(shared, tmp_path / "cache")
    (entry,) = [p.parent.parent for p in cache.glob("v1/*/*/*/t0/best_epoch.txt")]
    (entry / "t0" / "metrics.csv").write_text("case,dice\nx,1.0\n")
    d = checkout(pristine, tmp_path / "d")
    proc = make(d, cache, "train")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if "corrupted" in ln]
    assert len(lines) == 1 and entry.name in lines[0] and "discarded" in lines[0], proc.stderr
    assert TRAINED.search(proc.stdout)  # built as usual
    # the good entry stored in its place, under the same variant: the failed restore
    # imported no module that the build's .d would list
    (fresh,) = [p.parent.parent for p in cache.glob("v1/*/*/*/t0/best_epoch.txt")]
    assert fresh == entry
    assert (fresh / "t0" / "metrics.csv").read_text() != "case,dice\nx,1.0\n"
    assert tree_digest(fresh / "t0") == tree_digest(d / RES / "gdl")
    assert "segline/pack.py" not in (d / RES / ".gdl.d").read_text()


def test_cache_verify_builds_the_sample_again_and_agrees(
    first: tuple[Path, Path], pristine: Path, tmp_path: Path
) -> None:
    _, shared = first
    cache = _own_cache(shared, tmp_path / "cache")
    e = checkout(pristine, tmp_path / "e")
    proc = make(e, cache, "cache-verify")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "lineage bug" not in proc.stderr
    verified = re.findall(r"^\[(\S+)\] cache entry [0-9a-f]{12} verified", proc.stdout, re.M)
    assert sorted(verified) == ["cases", "dist", "gdl", "raw", "spleen-toy.tar"], proc.stdout
    assert TRAINED.search(proc.stdout)
