"""Tests for segline.provenance: what a result records about the code it came from,
and that untracked files (an ``.env`` with a token) reach it by name and hash only."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from segline import provenance

TOKEN = "SECRET_TOKEN=abc123"
GIT_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.org"]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (no global config needed) and return stdout."""
    proc = subprocess.run(
        ["git", *GIT_ID, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return proc.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository, then: a tracked file modified, an untracked ``.env``
    with a token, an untracked file in a sub-folder and an ignored results folder."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text("lr = 0.1\n")
    (root / ".gitignore").write_text("/results/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    (root / "train.py").write_text("lr = 0.01\n")
    (root / ".env").write_text(TOKEN + "\n")
    (root / "notes").mkdir()
    (root / "notes" / "b.txt").write_bytes(b"\x00\x01 binary\n")
    (root / "results").mkdir()
    (root / "results" / "ignored.csv").write_text("a,b\n")
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_diff_holds_tracked_change_only(repo: Path) -> None:
    state = provenance.git_state(repo)
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()
    diff = state.diff.decode()
    assert "-lr = 0.1\n+lr = 0.01\n" in diff
    assert "diff --git a/train.py b/train.py" in diff
    assert ".env" not in diff and "notes/b.txt" not in diff and "abc123" not in diff


def test_untracked_listed_by_name_and_sha256(repo: Path) -> None:
    listing = provenance.git_state(repo).untracked.decode()
    assert listing == (
        f"{sha256(repo / '.env')}  .env\n{sha256(repo / 'notes' / 'b.txt')}  notes/b.txt\n"
    )
    assert sha256(repo / ".env") == hashlib.sha256((TOKEN + "\n").encode()).hexdigest()


def test_listing_is_checked_by_sha256sum(repo: Path, tmp_path: Path) -> None:
    (repo / "odd\\name.txt").write_text("x\n")
    listing = provenance.untracked_listing(repo)
    odd = hashlib.sha256(b"x\n").hexdigest()
    # sha256sum's escape: the line starts with a backslash, the name's backslash doubled
    assert listing.endswith(f"\\{odd}  odd\\\\name.txt\n".encode())
    sums = tmp_path / "sums"
    sums.write_bytes(listing)
    proc = subprocess.run(["sha256sum", "-c", str(sums)], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == 3


def test_listing_same_from_a_subfolder(repo: Path) -> None:
    assert provenance.untracked_listing(repo / "notes") == provenance.untracked_listing(repo)


def test_token_in_no_provenance_file(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in provenance.SLURM_FACTS:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "prov"
    lineage = repo / "x.md5"
    lineage.write_text("# comment\n" + "0" * 32 + "  data/x.tar\n")
    provenance.write_provenance(folder, ["-m", "segline.train"], lineage, "cpu", repo=repo)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "command.txt",
        "git-commit.txt",
        "git-status.txt",
        "git.diff",
        "lineage.md5",
        "pip-freeze.txt",
        "runtime.json",
        provenance.SCHEDULER,
        provenance.STAGED,
        provenance.UNTRACKED,
    ]
    for path in folder.iterdir():
        assert b"abc123" not in path.read_bytes(), path.name
    listing = (folder / provenance.UNTRACKED).read_text()
    assert f"{sha256(repo / '.env')}  .env\n" in listing
    assert "results" not in listing  # ignored files are not listed
    status = (folder / "git-status.txt").read_text()
    assert " M train.py\n" in status and "?? .env\n" in status
    assert (folder / "lineage.md5").read_text() == "0" * 32 + "  data/x.tar\n"
    assert json.loads((folder / "runtime.json").read_text())["device"] == "cpu"
    assert (folder / provenance.SCHEDULER).read_text() == "none\n"
    assert (folder / provenance.STAGED).read_bytes() == b""  # nothing added uncommitted


def test_outside_git(tmp_path: Path) -> None:
    state = provenance.git_state(tmp_path)
    assert state == provenance.GitState("nogit", "", b"", b"")
    assert provenance.untracked_listing(tmp_path) == b""


def test_symlink_hashed_as_its_target_path(repo: Path) -> None:
    (repo / "link").symlink_to(".env")
    lines = provenance.untracked_listing(repo).decode().splitlines()
    assert f"{hashlib.sha256(b'.env').hexdigest()}  link" in lines


# ---------------------------------------------------------------- scheduler.txt
SLURM_ENV = {
    "SLURM_JOB_ID": "4711",
    "SLURM_STEP_ID": "0",
    "SLURM_JOB_NODELIST": "gpu[01-02]",
    "SLURM_CLUSTER_NAME": "hpc",
    "SLURM_JOB_NAME": "python",
    "SLURM_JOB_PARTITION": "gpu",
    "SLURM_RESTART_COUNT": "2",
    "SLURM_JOB_ACCOUNT": "lab-secret",
    "SLURM_SUBMIT_DIR": "/home/alice/project",
    "HF_TOKEN": "hf_abc123",
    "HOME": "/home/alice",
}


def test_scheduler_none_outside_slurm() -> None:
    assert provenance.scheduler_text({"HOME": "/root", "SLURM_CONF": "/etc/slurm.conf"}) == "none\n"
    assert provenance.scheduler_text({"SLURM_JOB_ID": "  "}) == "none\n"


def test_scheduler_records_whitelisted_slurm_facts_only() -> None:
    text = provenance.scheduler_text(SLURM_ENV)
    assert text == (
        "scheduler=slurm\n"
        "SLURM_CLUSTER_NAME=hpc\n"
        "SLURM_JOB_ID=4711\n"
        "SLURM_JOB_NAME=python\n"
        "SLURM_JOB_PARTITION=gpu\n"
        "SLURM_STEP_ID=0\n"
        "SLURM_JOB_NODELIST=gpu[01-02]\n"
        "SLURM_RESTART_COUNT=2\n"
    )
    for leaked in ("lab-secret", "alice", "hf_abc123", "SLURM_JOB_ACCOUNT", "SUBMIT"):
        assert leaked not in text


def test_scheduler_value_kept_to_one_clean_line() -> None:
    env = {"SLURM_JOB_ID": "12\nHF_TOKEN=hf_abc123", "SLURM_JOB_NODELIST": "n1\x1b[2J"}
    assert provenance.scheduler_text(env) == (
        "scheduler=slurm\nSLURM_JOB_ID=12\nSLURM_JOB_NODELIST=n1[2J\nSLURM_RESTART_COUNT=0\n"
    )


def test_scheduler_file_written_from_the_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SLURM_ENV.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "prov"
    provenance.write_provenance(folder, ["-m", "segline.train"], None, "cpu", repo=repo)
    record = (folder / provenance.SCHEDULER).read_text()
    assert record.startswith("scheduler=slurm\nSLURM_CLUSTER_NAME=hpc\nSLURM_JOB_ID=4711\n")
    for path in folder.iterdir():
        assert b"hf_abc123" not in path.read_bytes(), path.name
