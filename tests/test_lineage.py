"""Tests for segline.lineage.lineagefile: parsing, md5, verification, md5sum compatibility."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segline.errors import InputError
from segline.lineage.lineagefile import md5_of, normalise_path, parse_lineage, verify

PREPROCESS = Path(__file__).resolve().parents[1] / "preprocess"
SPLEEN_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task09_Spleen.tar"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny repository: two archives in data/ and a lineage listing both (cwd = root)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "lineage").mkdir()
    (tmp_path / "data" / "a.tar").write_bytes(b"archive a\n" * 1000)
    (tmp_path / "data" / "b.zip").write_bytes(bytes(range(256)) * 37)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_lineage(repo: Path, body: str, name: str = "x.lineage") -> Path:
    path = repo / "lineage" / name
    path.write_text(body)
    return path


def good_body(repo: Path) -> str:
    a = hashlib.md5((repo / "data" / "a.tar").read_bytes()).hexdigest()
    b = hashlib.md5((repo / "data" / "b.zip").read_bytes()).hexdigest()
    return (
        f"# source: {SPLEEN_URL}\n"
        "# licence: CC-BY-SA 4.0\n"
        "# size: 1.5 GB\n"
        "# a free comment without metadata\n"
        "\n"
        f"{a}  data/a.tar\n"
        f"{b.upper()} *data/b.zip\n"
        "# note: second archive is the test set\n"
    )


def test_parse_entries_and_metadata(repo: Path) -> None:
    lin = parse_lineage(write_lineage(repo, good_body(repo)))
    a = hashlib.md5((repo / "data" / "a.tar").read_bytes()).hexdigest()
    b = hashlib.md5((repo / "data" / "b.zip").read_bytes()).hexdigest()
    assert lin.entries == [(a, "data/a.tar"), (b, "data/b.zip")]  # md5 lower-cased
    assert lin.metadata == {
        "source": SPLEEN_URL,
        "licence": "CC-BY-SA 4.0",
        "size": "1.5 GB",
        "note": "second archive is the test set",
    }
    assert lin.md5_for("./data/a.tar") == a
    assert lin.md5_for(repo / "data" / "b.zip") == b
    assert lin.md5_for("data/c.tar") is None


def test_repeated_sources_and_urls(repo: Path) -> None:
    body = (
        "# source: https://example.org/files/train.zip\n"
        "# source: https://example.org/files/test.zip\n"
        + "1" * 32
        + "  data/train.zip\n"
        + "2" * 32
        + "  data/test.zip\n"
        + "3" * 32
        + "  data/other.zip\n"
    )
    lin = parse_lineage(write_lineage(repo, body))
    assert lin.metadata["source"] == "https://example.org/files/train.zip"
    assert lin.values("source") == [
        "https://example.org/files/train.zip",
        "https://example.org/files/test.zip",
    ]
    assert lin.url_for("data/test.zip") == "https://example.org/files/test.zip"
    assert lin.url_for("data/train.zip") == "https://example.org/files/train.zip"
    assert lin.url_for("data/other.zip") is None  # two archives, no URL naming it


def test_url_rules(repo: Path) -> None:
    single = parse_lineage(
        write_lineage(repo, f"# source: {SPLEEN_URL}\n" + "0" * 32 + "  data/s.tar\n")
    )
    assert single.url_for("data/s.tar") == SPLEEN_URL  # one archive, one URL: taken as is
    folder = parse_lineage(
        write_lineage(
            repo, "# source: https://h.org/d/\n" + "0" * 32 + "  data/x y.tar\n", "f.lineage"
        )
    )
    assert folder.url_for("data/x y.tar") == "https://h.org/d/x%20y.tar"
    reg = parse_lineage(
        write_lineage(
            repo,
            "# source: registration required at https://www.isles-challenge.org/\n"
            + "0" * 32
            + "  data/isles.zip\n",
            "r.lineage",
        )
    )
    assert reg.url_for("data/isles.zip") is None
    assert reg.describe_source("data/isles.zip") == (
        "source: registration required at https://www.isles-challenge.org/"
    )


def test_md5_of_streams_and_matches_hashlib(repo: Path) -> None:
    data = (repo / "data" / "b.zip").read_bytes()
    expected = hashlib.md5(data).hexdigest()
    assert md5_of(repo / "data" / "b.zip") == expected
    assert md5_of(repo / "data" / "b.zip", chunk=7) == expected  # chunking does not matter
    empty = repo / "empty"
    empty.write_bytes(b"")
    assert md5_of(empty) == "d41d8cd98f00b204e9800998ecf8427e"


def test_verify_good(repo: Path) -> None:
    lin = parse_lineage(write_lineage(repo, good_body(repo)))
    assert verify(lin) == ["data/a.tar", "data/b.zip"]
    assert verify(lin, ["./data/b.zip"]) == ["data/b.zip"]
    assert verify(lin, [repo / "data" / "a.tar"]) == ["data/a.tar"]


def test_verify_other_root(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    lin = parse_lineage(write_lineage(repo, good_body(repo)))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert verify(lin, ["data/a.tar"], root=repo) == ["data/a.tar"]


def test_verify_wrong_md5(repo: Path) -> None:
    lin = parse_lineage(write_lineage(repo, good_body(repo)))
    expected = lin.entries[0][0]
    (repo / "data" / "a.tar").write_bytes(b"tampered")
    got = hashlib.md5(b"tampered").hexdigest()
    with pytest.raises(InputError) as exc:
        verify(lin)
    msg = str(exc.value)
    assert msg.startswith(f"data/a.tar: md5 {got} does not match {lin.path} ({expected}); ")
    assert SPLEEN_URL in msg and "TOY=1" in msg and "\n" not in msg


def test_verify_missing_file(repo: Path) -> None:
    lin = parse_lineage(write_lineage(repo, good_body(repo)))
    (repo / "data" / "b.zip").unlink()
    with pytest.raises(InputError) as exc:
        verify(lin, ["data/b.zip"])
    expected = lin.entries[1][0]
    assert str(exc.value) == (
        f"data/b.zip: not found (expected md5 {expected}, source: {SPLEEN_URL}); "
        "for the embedded toy data run with TOY=1"
    )


def test_verify_missing_without_source_uses_note(repo: Path) -> None:
    lin = parse_lineage(
        write_lineage(repo, "# note: ask the PI\n" + "f" * 32 + "  data/gone.tar\n")
    )
    with pytest.raises(InputError) as exc:
        verify(lin)
    assert str(exc.value) == (
        f"data/gone.tar: not found (expected md5 {'f' * 32}, note: ask the PI); "
        "for the embedded toy data run with TOY=1"
    )


def test_verify_unlisted_path(repo: Path) -> None:
    lin = parse_lineage(write_lineage(repo, good_body(repo)))
    with pytest.raises(InputError, match=r"^data/c\.tar: not listed in .*x\.lineage"):
        verify(lin, ["data/c.tar"])


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("   ", 3),  # blanks only: md5sum --strict refuses it
        ("d41d8cd98f00b204e9800998ecf8427  data/a.tar", 3),  # 31 hex digits
        ("  # indented comment", 3),  # md5sum only skips '#' in column 1
        ("g41d8cd98f00b204e9800998ecf8427e  data/a.tar", 3),
    ],
)
def test_malformed_line(repo: Path, line: str, number: int) -> None:
    path = write_lineage(repo, f"# licence: x\n\n{line}\n")
    with pytest.raises(InputError) as exc:
        parse_lineage(path)
    assert str(exc.value).startswith(f"{path}: line {number}: expected '<32-hex md5>  <path>'")


def test_other_lineage_errors(repo: Path) -> None:
    with pytest.raises(InputError, match="lineage file not found"):
        parse_lineage(repo / "lineage" / "nope.lineage")
    with pytest.raises(InputError, match="lists no archive"):
        parse_lineage(write_lineage(repo, "# source: x\n"))
    with pytest.raises(InputError, match="line 2: .*already listed on line 1"):
        parse_lineage(
            write_lineage(repo, "0" * 32 + "  data/a.tar\n" + "1" * 32 + "  ./data/a.tar\n")
        )
    with pytest.raises(InputError, match="line 1: .*relative to the repository root"):
        parse_lineage(write_lineage(repo, "0" * 32 + "  ../a.tar\n"))


def test_normalise_path(repo: Path) -> None:
    assert normalise_path("./data//a.tar") == "data/a.tar"
    assert normalise_path(repo / "data" / "a.tar") == "data/a.tar"
    assert normalise_path("/elsewhere/data/a.tar", root="/elsewhere") == "data/a.tar"


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="md5sum not installed")
def test_md5sum_c_accepts_lineage(repo: Path) -> None:
    path = write_lineage(repo, good_body(repo))
    ok = subprocess.run(
        ["md5sum", "--strict", "-c", str(path)], cwd=repo, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["data/a.tar: OK", "data/b.zip: OK"]
    assert verify(parse_lineage(path)) == ["data/a.tar", "data/b.zip"]
    # and both tools reject the same tampered archive
    (repo / "data" / "a.tar").write_bytes(b"tampered")
    bad = subprocess.run(["md5sum", "-c", str(path)], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "data/a.tar: FAILED" in bad.stdout
    with pytest.raises(InputError, match="does not match"):
        verify(parse_lineage(path))


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="md5sum not installed")
def test_md5sum_generated_lines_parse(repo: Path) -> None:
    out = subprocess.run(
        ["md5sum", "data/a.tar", "data/b.zip"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    path = write_lineage(repo, "# licence: test\n" + out)
    assert [p for _, p in parse_lineage(path).entries] == ["data/a.tar", "data/b.zip"]
    assert verify(parse_lineage(path)) == ["data/a.tar", "data/b.zip"]


# Lines md5sum reads in surprising ways, and what segline must make of them: the
# listed paths, or None where `md5sum -c --strict` fails. {a}, {b}, ... are the md5s of
# the files below; every case is also run through the real md5sum.
MD5SUM_FILES = {
    "a": "data/a.tar",
    "b": "data/b b.tar",
    "c": "data/c\\d.tar",
    "n": "data/n\nl.tar",
    "s": " lead.tar",
}
MD5SUM_CASES: list[tuple[str, list[str] | None]] = [
    ("{a}  data/a.tar\n", ["data/a.tar"]),
    ("{a} *data/a.tar\n", ["data/a.tar"]),
    ("{a}  data/a.tar", ["data/a.tar"]),  # no final newline
    ("{A}  data/a.tar\r\n\r\n", ["data/a.tar"]),  # upper case, CRLF, CR-only line
    ("  {a}  data/a.tar\n", ["data/a.tar"]),  # leading blanks
    ("\t{a}  data/a.tar\n", ["data/a.tar"]),
    ("{a}\tdata/a.tar\n", ["data/a.tar"]),  # TAB, no marker
    ("{a}\t data/a.tar\n", ["data/a.tar"]),  # TAB, then the text marker
    ("{a} data/a.tar\n", ["data/a.tar"]),  # one blank, no marker
    ("{a} \tdata/a.tar\n", None),  # path '\tdata/a.tar'
    ("{a}\t\tdata/a.tar\n", None),
    ("{a}  data/a.tar \n", None),  # trailing blank is part of the path
    ("{a}  *data/a.tar\n", None),  # path '*data/a.tar'
    ("{a}0  data/a.tar\n", None),  # 33 hex digits
    ("{a}\n", None),
    ("# licence: x\n\n{a}  data/a.tar\n#c\n", ["data/a.tar"]),
    (" # indented\n{a}  data/a.tar\n", None),
    ("  \n{a}  data/a.tar\n", None),  # blanks only
    ("{b}  data/b b.tar\n", ["data/b b.tar"]),
    ("{c}  data/c\\d.tar\n", ["data/c\\d.tar"]),  # not escaped: backslash literal
    ("\\{c}  data/c\\\\d.tar\n", ["data/c\\d.tar"]),
    ("\\{n}  data/n\\nl.tar\n", ["data/n\nl.tar"]),
    ("  \\{n}  data/n\\nl.tar\n", ["data/n\nl.tar"]),
    ("\\{a}  data/\\a.tar\n", None),  # unknown escape
    ("\\{a}  data/a.tar\\\n", None),  # lone backslash at the end
    ("{a} *data/a.tar\n{b}  data/b b.tar\n", ["data/a.tar", "data/b b.tar"]),
    ("{a}  data/a.tar\n{b} data/b b.tar\n", None),  # marker, then none: mixed
    ("{a} data/a.tar\n{b}  data/b b.tar\n", None),  # path ' data/b b.tar'
    ("{a} data/a.tar\n{s}  lead.tar\n", ["data/a.tar", " lead.tar"]),
    ("MD5 (data/a.tar) = {a}\n", ["data/a.tar"]),
    ("MD5(data/a.tar)={a}\n", ["data/a.tar"]),
    ("  MD5 (data/b b.tar)\t=\t{b}\n{a}  data/a.tar\n", ["data/b b.tar", "data/a.tar"]),
    ("\\MD5 (data/c\\\\d.tar) = {c}\n", ["data/c\\d.tar"]),
    ("MD5  (data/a.tar) = {a}\n", None),
    ("MD5 data/a.tar) = {a}\n", None),
    ("MD5 (data/a.tar) = {a} \n", None),
    ("md5 (data/a.tar) = {a}\n", None),
    ("{b}  data/a.tar\n", None),  # wrong md5
]


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="md5sum not installed")
@pytest.mark.parametrize(("body", "listed"), MD5SUM_CASES)
def test_lines_read_as_md5sum_reads_them(
    tmp_path: Path, body: str, listed: list[str] | None
) -> None:
    md5s: dict[str, str] = {}
    for key, name in MD5SUM_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(f"archive {key}\n".encode())
        md5s[key] = md5_of(tmp_path / name)
        md5s[key.upper()] = md5s[key].upper()
    path = tmp_path / "x.lineage"
    path.write_bytes(body.format(**md5s).encode())
    gnu = subprocess.run(
        ["md5sum", "-c", "--strict", str(path)], cwd=tmp_path, capture_output=True, text=True
    )
    assert (gnu.returncode == 0) == (listed is not None), gnu.stdout + gnu.stderr
    if listed is None:
        with pytest.raises(InputError):
            verify(parse_lineage(path), root=tmp_path)
    else:
        assert [p for _, p in parse_lineage(path).entries] == listed
        assert verify(parse_lineage(path), root=tmp_path) == [normalise_path(p) for p in listed]


# ---- archive paths with spaces (make splits ARCHIVES at spaces) -----------------------

SPACE_LINE = (
    "segline: data/with space.tar: archive path contains a space; make splits names at "
    "spaces: rename it or link it under a name without spaces"
)


def spaced_repo(repo: Path, listed: str = "data/with space.tar") -> Path:
    (repo / "data" / "with space.tar").write_bytes(b"spaced archive\n")
    md5 = md5_of(repo / "data" / "with space.tar")
    return write_lineage(repo, f"{md5}  {listed}\n", name="ws.lineage")


def test_space_split_pieces_named_as_one_path(repo: Path) -> None:
    lin = parse_lineage(spaced_repo(repo))
    with pytest.raises(InputError) as exc:  # unpack gets every piece
        verify(lin, ["data/with", "space.tar"])
    assert f"segline: {exc.value}" == SPACE_LINE
    with pytest.raises(InputError) as exc:  # fetch gets one piece per make recipe
        lin.require("data/with")
    assert f"segline: {exc.value}" == SPACE_LINE
    (repo / "data" / "with space.tar").unlink()  # not downloaded yet: the lineage tells
    with pytest.raises(InputError) as exc:
        lin.require("space.tar")
    assert f"segline: {exc.value}" == SPACE_LINE
    # the listed path itself is fine, and an unrelated name is plainly "not listed"
    assert lin.require("data/with space.tar") == lin.entries[0][0]
    with pytest.raises(InputError, match=r"^data/other\.tar: not listed in"):
        verify(lin, ["data/other.tar"])


def test_space_split_found_on_disk_when_lineage_lists_another_name(repo: Path) -> None:
    lin = parse_lineage(spaced_repo(repo, listed="data/a.tar"))
    with pytest.raises(InputError) as exc:
        verify(lin, ["data/with", "space.tar"])
    assert f"segline: {exc.value}" == SPACE_LINE


def test_space_split_cli_lines(repo: Path) -> None:
    """fetch.py and unpack.py as make calls them with ARCHIVES='data/with space.tar'."""
    spaced_repo(repo)
    for script, argv in [
        ("unpack.py", ["--out", "data/ws/raw", "data/with", "space.tar"]),
        ("fetch.py", ["data/with"]),
    ]:
        proc = subprocess.run(
            [sys.executable, str(PREPROCESS / script), "--lineage", "lineage/ws.lineage", *argv],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stderr == SPACE_LINE + "\n", proc.stderr
    assert not (repo / "data" / "ws").exists()
    assert sorted(p.name for p in (repo / "data").iterdir()) == ["a.tar", "b.zip", "with space.tar"]
