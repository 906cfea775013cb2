"""Make-level test: a secret in an untracked ``.env`` never reaches the archive.

The project copy is made a git repository (committed), then gets an untracked ``.env``
with a fake token in its root, as a user's checkout often has. One method of the
spleen toy is trained and packed; every member of the archive is searched for the
token, and the result's provenance lists ``.env`` by name and sha256 only.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, copy_project

pytestmark = pytest.mark.make

TOKEN = b"SECRET_TOKEN=fake-7f3a9c21d4e8b605"
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org"]


def test_untracked_secret_not_in_archive(tmp_path: Path, run_make) -> None:
    root = copy_project(tmp_path / "p")
    shutil.copy2(REPO / ".gitignore", root / ".gitignore")  # data/, results/ ... ignored
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)
    env_file = root / ".env"
    env_file.write_bytes(TOKEN + b"\n")

    proc = run_make(
        root, "-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl", "BS=16"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    archives = sorted((root / "archives").glob("*.tar.gz"))
    assert len(archives) == 1
    listing = None
    with tarfile.open(archives[0], "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        assert len(members) > 10
        for member in members:
            handle = tar.extractfile(member)
            assert handle is not None
            data = handle.read()
            assert TOKEN not in data and b"7f3a9c21d4e8b605" not in data, member.name
            if member.name == "spleen-toy/gdl/provenance/untracked.sha256":
                listing = data.decode()
    assert listing is not None, "no untracked listing in the archive"
    digest = hashlib.sha256(TOKEN + b"\n").hexdigest()
    assert f"{digest}  .env\n" in listing.splitlines(keepends=True)
    # only the untracked, not-ignored files: the .env (results/ and data/ are ignored)
    assert listing == f"{digest}  .env\n"
