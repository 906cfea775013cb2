"""Make-level test: no secret of the checkout or the command line reaches the archive.

One toy run (spleen, one Dimwit method, one epoch) from a project copy made a git
repository, with every way a secret used to travel in place:

* ``CC='env API_TOKEN=hunter2 <python>'``: the command is recorded with the
  assignment masked (``API_TOKEN=***``);
* an untracked ``.env`` and a ``secrets.txt`` added to the index but never committed:
  listed by name and sha256 (``untracked.sha256``, ``staged.sha256``), never their
  content (not in ``git.diff`` either);
* a ``# record: lineage/spleen-toy.local.lineage`` line whose file is a symbolic link
  to a private file outside the checkout, made after the data was built (``unpack``
  refuses it with the same check): the provenance leaves it out with one line.

Every member of the archive is then read and searched for each secret.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, copy_project, make_env

pytestmark = pytest.mark.make

TOKEN = b"SECRET_TOKEN=fake-7f3a9c21d4e8b605"
STAGED = b"STAGED_PASSWORD=fake-c0ffee5ea7e5"
PRIVATE = b"PRIVATE_KEY=fake-0b5e55ed1dea"
RECORD = "lineage/spleen-toy.local.lineage"
SECRETS = (
    b"hunter2",
    TOKEN,
    b"7f3a9c21d4e8b605",
    STAGED,
    b"c0ffee5ea7e5",
    PRIVATE,
    b"0b5e55ed1dea",
)
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org"]
OUT_LINK = "a symbolic link leads out of the repository"


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The toy make with ``CC`` setting a token in the environment (``run_make`` would
    put its own ``CC`` last)."""
    cc = f"env API_TOKEN=hunter2 {sys.executable}"
    knobs = ["TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl", "BS=16", f"CC={cc}"]
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "spleen.make", *knobs, *args],
        cwd=root,
        env=make_env(),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )


def test_no_secret_reaches_the_archive(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    shutil.copy2(REPO / ".gitignore", root / ".gitignore")  # data/, results/ ... ignored
    lineage = root / "lineage" / "spleen-toy.lineage"
    lineage.write_text(lineage.read_text() + f"# record: {RECORD}\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)
    (root / ".env").write_bytes(TOKEN + b"\n")
    (root / "secrets.txt").write_bytes(STAGED + b"\n")
    subprocess.run([*GIT, "add", "secrets.txt"], cwd=root, check=True, capture_output=True)

    data = make(root, "data")  # the record file does not exist yet: unpack accepts
    assert data.returncode == 0, data.stdout[-3000:] + data.stderr[-3000:]
    private = tmp_path / "private.lineage"
    private.write_bytes(b"0" * 32 + b"  data/spleen-toy.tar\n" + PRIVATE + b"\n")
    (root / RECORD).symlink_to(private)

    proc = make(root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = [ln for ln in proc.stderr.splitlines() if OUT_LINK in ln]
    assert said == [
        f"segline: {RECORD}: {OUT_LINK}; copy the file into the checkout instead "
        "(a file outside it is never read into a result)"
    ]

    archives = sorted((root / "archives").glob("*.tar.gz"))
    assert len(archives) == 1
    prov: dict[str, bytes] = {}
    with tarfile.open(archives[0], "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        assert len(members) > 10
        for member in members:
            # the stage records (.name.cmd, exact for make) are hidden files: never packed
            assert not any(part.startswith(".") for part in Path(member.name).parts), member.name
            handle = tar.extractfile(member)
            assert handle is not None
            data_bytes = handle.read()
            for secret in SECRETS:
                assert secret not in data_bytes, (member.name, secret)
            if "/gdl/provenance/" in member.name:
                prov[Path(member.name).name] = data_bytes
    command = prov["command.txt"].decode()
    assert f"# run by make with CC=env API_TOKEN=*** {sys.executable}\n" in command
    digest = hashlib.sha256(TOKEN + b"\n").hexdigest()
    link = hashlib.sha256(str(private).encode()).hexdigest()  # a link: its target's path
    # only the untracked, not-ignored files: the .env and the link (results/, data/ ignored)
    assert prov["untracked.sha256"].decode() == f"{digest}  .env\n{link}  {RECORD}\n"
    staged = hashlib.sha256(STAGED + b"\n").hexdigest()
    assert prov["staged.sha256"].decode() == f"{staged}  secrets.txt\n"
    assert b"secrets.txt" not in prov["git.diff"]
    assert "A  secrets.txt\n" in prov["git-status.txt"].decode()  # the name only
    md5s = prov["lineage.md5"].decode().splitlines()
    assert md5s[0] == "8eecdfe5ca50a285c50d93fc5ece9cd1  data/spleen-toy.tar"
    assert md5s[1:] == [
        f"# not recorded: {RECORD}: {OUT_LINK}; copy the file into the "
        "checkout instead (a file outside it is never read into a result)"
    ]
