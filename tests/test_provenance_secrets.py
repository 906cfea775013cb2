"""No secret reaches a result's provenance (and so the shareable archive).

Unit tests of segline.provenance and segline.repopath: credentials on the command
line and in the ``CC`` prefix are masked (:func:`provenance.mask_command`, a table);
files added to the index but never committed are listed by name and sha256, their
content kept out of ``git.diff``; the lineage and its ``# record:`` file pass the path
checks ``unpack`` applies (one function, :mod:`segline.repopath`) and must hold md5
lines only, else they are left out with one line. The make-level run that packs an
archive with all three in place is in ``tests/test_make_provenance.py``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segline import provenance
from segline.errors import InputError
from segline.lineage import record
from segline.lineage.lineagefile import parse_lineage
from segline.repopath import inside_repository, record_path

SECRET = b"API_TOKEN=hunter2\n"
GIT_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.org"]
PREPROCESS = Path(__file__).resolve().parents[1] / "preprocess"


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (no global config needed) and return stdout."""
    proc = subprocess.run(
        ["git", *GIT_ID, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return proc.stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- command masking
MASK_TABLE: list[tuple[list[str], bool, list[str]]] = [
    # the CC launcher: every environment assignment masked, names kept
    (["env", "API_TOKEN=hunter2", "python"], True, ["env", "API_TOKEN=***", "python"]),
    (["env", "lower=x", "A=1", "python"], True, ["env", "lower=***", "A=***", "python"]),
    (
        ["srun", "--export=ALL,HF_TOKEN=hf1,B=2", "--gres=gpu:1", "python"],
        True,
        ["srun", "--export=ALL,HF_TOKEN=***", "--gres=gpu:1", "python"],
    ),
    (["srun", "-n1", "-c1", ".venv/bin/python"], True, ["srun", "-n1", "-c1", ".venv/bin/python"]),
    # a program's own arguments: upper-case or credential names masked, knobs kept
    (["--net-opt", "base=16", "depth=3"], False, ["--net-opt", "base=16", "depth=3"]),
    (["HF_TOKEN=hf_x", "password=pw"], False, ["HF_TOKEN=***", "password=***"]),
    (["--net-opt", "api_key=k"], False, ["--net-opt", "api_key=***"]),
    # credential options: separate value or "="
    (["--token", "t0p", "--lr", "0.1"], False, ["--token", "***", "--lr", "0.1"]),
    (["--password=pw", "--api-key", "k1"], False, ["--password=***", "--api-key", "***"]),
    (
        ["--api_key=k", "-auth", "a", "--ssh-key", "id"],
        False,
        ["--api_key=***", "-auth", "***", "--ssh-key", "***"],
    ),
    (["--passwd", "-x"], False, ["--passwd", "***"]),  # a value may start with "-"
    (["--token"], False, ["--token"]),  # nothing follows
    # URL user information, also inside another word
    (["https://alice:s3cret@host/x"], False, ["https://***@host/x"]),
    (["--url=https://u:p@ss@host:8080/p?q"], False, ["--url=https://***@host:8080/p?q"]),
    (["http_proxy=http://u:p@proxy:3128"], False, ["http_proxy=http://***@proxy:3128"]),
    (["https://host/path@v1"], False, ["https://host/path@v1"]),  # no user information
    # header values and well-known token formats
    (["-H", "Authorization: Bearer abc.def"], False, ["-H", "Authorization: Bearer ***"]),
    (["ghp_" + "a" * 36, "AKIA" + "B" * 16], False, ["***", "***"]),
    # nothing credential-like: unchanged
    (
        ["-m", "segline.train", "--losses", "boundary:0.01[schedule=rebalance;step=0.01]"],
        False,
        ["-m", "segline.train", "--losses", "boundary:0.01[schedule=rebalance;step=0.01]"],
    ),
    (["--keep", "--monkey", "passes"], False, ["--keep", "--monkey", "passes"]),
]


@pytest.mark.parametrize(("words", "environment", "expected"), MASK_TABLE)
def test_mask_command(words: list[str], environment: bool, expected: list[str]) -> None:
    assert provenance.mask_command(words, environment=environment) == expected


def test_command_text_masks_cc_and_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-O", "-m", "segline.train"])
    monkeypatch.setenv("SEGLINE_CC", f"env API_TOKEN=hunter2 {sys.executable}")
    text = provenance.command_text(["-m", "segline.train", "--token", "hunter2", "--lr", "0.1"])
    name = Path(sys.executable).name
    assert text == (
        f"{name} -O -m segline.train --token *** --lr 0.1\n"
        f"# run by make with CC=env API_TOKEN=*** {sys.executable}\n"
    )
    assert "hunter2" not in text


def test_command_text_keeps_a_clean_cc_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "segline.train"])
    monkeypatch.setenv("SEGLINE_CC", "srun  --comment='a b' python")
    text = provenance.command_text(["-m", "segline.train"])
    assert text.splitlines()[1] == "# run by make with CC=srun  --comment='a b' python"
    monkeypatch.setenv("SEGLINE_CC", "env 'API_TOKEN=hun ter' python")
    assert (
        provenance.command_text([]).splitlines()[1]
        == "# run by make with CC=env API_TOKEN=*** python"
    )
    monkeypatch.setenv("SEGLINE_CC", "env API_TOKEN='hunter2 python")  # an open quote
    text = provenance.command_text([])
    assert text.splitlines()[1] == "# run by make with CC=<left out: not readable as shell words>"
    assert "hunter2" not in text
    monkeypatch.setenv("SEGLINE_CC", "python")  # a bare interpreter: no second line
    assert len(provenance.command_text([]).splitlines()) == 1


# ---------------------------------------------------------------- git: staged files
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository (``train.py``, ``old.py``, ``keep.txt``), then: a secret
    ``.env`` added but not committed, an intent-to-add file, ``old.py`` renamed with a
    secret appended, a copy of ``train.py`` with a secret, and ``train.py`` changed."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text("lr = 0.1\n")
    (root / "old.py").write_text("".join(f"x{i} = {i}\n" for i in range(20)))
    (root / "keep.txt").write_text("kept\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    (root / ".env").write_bytes(SECRET)
    git(root, "add", ".env")
    (root / "notes.txt").write_bytes(b"intent " + SECRET)
    git(root, "add", "-N", "notes.txt")
    git(root, "mv", "old.py", "new.py")
    with open(root / "new.py", "ab") as fh:
        fh.write(b"# " + SECRET)
    (root / "copy.py").write_bytes(b"lr = 0.1\n# " + SECRET)
    git(root, "add", "copy.py", "new.py")
    (root / "train.py").write_text("lr = 0.01\n")
    return root


def test_staged_files_listed_by_hash_not_diffed(repo: Path) -> None:
    state = provenance.git_state(repo)
    assert b"hunter2" not in state.diff
    diff = state.diff.decode()
    assert "-lr = 0.1\n+lr = 0.01\n" in diff  # a change to a committed file
    assert "diff --git a/old.py b/old.py\ndeleted file mode" in diff  # rename: its deletion
    for name in (".env", "notes.txt", "new.py", "copy.py"):
        assert f"b/{name}" not in diff, name
    listing = state.staged.decode()
    assert listing == "".join(
        f"{sha256((repo / name).read_bytes())}  {name}\n"
        for name in (".env", "copy.py", "new.py", "notes.txt")
    )
    assert state.untracked == b""  # all of them are in the index
    status = state.status
    assert "A  .env\n" in status and "R  old.py -> new.py\n" in status


def test_committed_file_with_a_staged_secret_stays_in_the_diff(repo: Path) -> None:
    (repo / "keep.txt").write_bytes(b"kept\n" + SECRET)
    git(repo, "add", "keep.txt")
    state = provenance.git_state(repo)
    assert b"+API_TOKEN=hunter2\n" in state.diff  # documented: keep secrets out of commits
    assert "keep.txt" not in state.staged.decode()


def test_staged_listing_is_checked_by_sha256sum(repo: Path, tmp_path: Path) -> None:
    sums = tmp_path / "sums"
    sums.write_bytes(provenance.staged_listing(repo))
    proc = subprocess.run(["sha256sum", "-c", str(sums)], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == 4


def test_write_provenance_keeps_staged_content_out(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGLINE_CC", "env API_TOKEN=hunter2 python")
    folder = tmp_path / "prov"
    provenance.write_provenance(folder, ["-m", "segline.train"], None, "cpu", repo=repo)
    for path in folder.iterdir():
        assert b"hunter2" not in path.read_bytes(), path.name
    staged = (folder / provenance.STAGED).read_text()
    assert f"{sha256(SECRET)}  .env\n" in staged
    assert "API_TOKEN=***" in (folder / "command.txt").read_text()


# ---------------------------------------------------------------- repository paths
def test_inside_repository(tmp_path: Path) -> None:
    root, private = tmp_path / "root", tmp_path / "private"
    (root / "lineage").mkdir(parents=True)
    private.mkdir()
    (private / "netrc").write_bytes(SECRET)
    (root / "lineage" / "out.lineage").symlink_to(private / "netrc")
    (root / "lineage" / "in.lineage").symlink_to("../x.lineage")
    (root / "lineage" / "dir").symlink_to(private)
    (root / "lineage" / "loop1").symlink_to("loop2")
    (root / "lineage" / "loop2").symlink_to("loop1")
    assert inside_repository("lineage/x.lineage", root) == Path("lineage/x.lineage")
    assert inside_repository("lineage/in.lineage", root) == Path("lineage/in.lineage")
    assert inside_repository(root / "a.md5", root) == root / "a.md5"
    refused = {
        "lineage/out.lineage": "a symbolic link leads out of the repository",
        "lineage/dir/netrc": "a symbolic link leads out of the repository",
        "lineage/dir/../../x": "a symbolic link leads out of the repository",
        "../x.lineage": "outside the repository",
        str(private / "netrc"): "outside the repository",
        "lineage/loop1": "symbolic links loop",
    }
    for path, problem in refused.items():
        with pytest.raises(InputError) as err:
            inside_repository(path, root)
        assert err.value.where == path and err.value.problem.startswith(problem), path
        assert str(private) not in err.value.problem  # never the link's target


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a checkout with ``lineage/x.lineage`` naming ``lineage/x.local.lineage``, a
    symbolic link to a private file outside the checkout, and ``data/a.tar``."""
    root = tmp_path / "project"
    (root / "lineage").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "a.tar").write_bytes(b"archive")
    private = tmp_path / "private.txt"
    private.write_bytes(b"0" * 32 + b"  data/hunter2.tar\n" + SECRET)
    (root / "lineage" / "x.lineage").write_text(
        "# source: put it in data/\n# record: lineage/x.local.lineage\n"
    )
    (root / "lineage" / "x.local.lineage").symlink_to(private)
    monkeypatch.chdir(root)
    return root


def test_unpack_and_provenance_refuse_the_same_record_link(project: Path) -> None:
    lineage = Path("lineage/x.lineage")
    with pytest.raises(InputError) as by_unpack:
        record.record_file(parse_lineage(lineage))
    with pytest.raises(InputError) as by_provenance:
        provenance._recorded_lines(lineage)
    with pytest.raises(InputError) as shared:
        record_path("lineage/x.local.lineage", lineage)
    assert str(by_unpack.value) == str(by_provenance.value) == str(shared.value)
    assert str(shared.value).startswith(
        "lineage/x.local.lineage: a symbolic link leads out of the repository"
    )
    lines, refused = provenance.lineage_md5_lines(lineage)
    assert lines == [] and refused == [str(shared.value)]


def test_unpack_cli_refuses_the_record_link_in_one_line(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, str(PREPROCESS / "unpack.py"), "--lineage", "lineage/x.lineage"]
        + ["--out", "data/raw", "data/a.tar"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "segline: lineage/x.local.lineage: a symbolic link leads out of the repository"
    )
    assert proc.stderr.count("\n") == 1 and "hunter2" not in proc.stderr + proc.stdout
    assert not (project / "data" / "raw").exists()


def test_write_provenance_leaves_the_private_record_out(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lineage = project / "lineage" / "x.lineage"
    lineage.write_text(lineage.read_text() + f"{'1' * 32}  data/a.tar\n")
    folder = tmp_path / "prov"
    provenance.write_provenance(folder, ["-m", "segline.train"], Path("lineage/x.lineage"), "cpu")
    for path in folder.iterdir():
        assert b"hunter2" not in path.read_bytes(), path.name
    problem = (
        "lineage/x.local.lineage: a symbolic link leads out of the repository; copy the "
        "file into the checkout instead (a file outside it is never read into a result)"
    )
    assert (folder / "lineage.md5").read_text() == (
        f"{'1' * 32}  data/a.tar\n# {provenance.NOT_RECORDED}: {problem}\n"
    )
    assert capsys.readouterr().err == f"segline: {problem}\n"


def test_lineage_itself_checked(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.lineage"
    outside.write_bytes(b"0" * 32 + b"  data/a.tar\n" + SECRET)
    link = project / "lineage" / "linked.lineage"
    link.symlink_to(outside)
    lines, refused = provenance.lineage_md5_lines(Path("lineage/linked.lineage"))
    assert lines == []
    assert refused == [
        "lineage/linked.lineage: a symbolic link leads out of the repository; copy the file "
        "into the checkout instead (a file outside it is never read into a result)"
    ]
    lines, refused = provenance.lineage_md5_lines(outside)
    assert lines == [] and refused[0].endswith(
        ": outside the repository; name a file inside the checkout"
    )


def test_only_md5_files_are_copied(project: Path) -> None:
    """A file inside the checkout that is no lineage (an ``.env`` named by ``# record:``
    or given as the lineage) is left out whole: not one of its lines is copied."""
    (project / ".env").write_bytes(b"0" * 32 + b"  data/a.tar\n" + SECRET)
    (project / "lineage" / "x.local.lineage").unlink()
    (project / "lineage" / "x.local.lineage").symlink_to("../.env")
    lines, refused = provenance.lineage_md5_lines(Path("lineage/x.lineage"))
    assert lines == []
    assert refused == ["lineage/x.local.lineage: line 2 is no md5 line, so no lineage; left out"]
    lines, refused = provenance.lineage_md5_lines(Path(".env"))
    assert lines == [] and refused == [".env: line 2 is no md5 line, so no lineage; left out"]
    # md5 lines of every form md5sum reads are kept; comments are not copied
    (project / "lineage" / "x.local.lineage").unlink()
    good = (
        "# recorded\n"
        f"{'a' * 32}  data/a.tar\n"
        f"{'b' * 32} *data/b.tar\r\n"
        f"\\{'c' * 32}  data/c\\\\d.tar\n"
        f"MD5 (data/e.tar) = {'e' * 32}\n"
    )
    (project / "lineage" / "x.local.lineage").write_text(good)
    lines, refused = provenance.lineage_md5_lines(Path("lineage/x.lineage"))
    assert refused == []
    assert lines == [
        f"{'a' * 32}  data/a.tar",
        f"{'b' * 32} *data/b.tar",
        f"\\{'c' * 32}  data/c\\\\d.tar",
        f"MD5 (data/e.tar) = {'e' * 32}",
    ]


def test_non_utf8_name_in_a_manifest_is_recorded_escaped(project: Path) -> None:
    """A manifest listing a file name that is not UTF-8 still goes into the UTF-8
    ``lineage.md5``: the byte as a ``\\xNN`` escape (README, file names); binary
    content that is no md5 line is still left out whole."""
    (project / "data" / "manifest.md5").write_bytes(b"a" * 32 + b"  data/junk\xff.txt\n")
    lines, refused = provenance.lineage_md5_lines(Path("data/manifest.md5"))
    assert lines == ["a" * 32 + "  data/junk\\xff.txt"] and refused == []
    (project / "data" / "manifest.md5").write_bytes(b"\xff\xfe secret\n")
    lines, refused = provenance.lineage_md5_lines(Path("data/manifest.md5"))
    why = "data/manifest.md5: line 1 is no md5 line, so no lineage; left out"
    assert lines == [] and refused == [why]
