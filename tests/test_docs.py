"""The project stands alone: docs and code cite only files inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ["src", "preprocess", "make", "docs", "tests", "bench"]
# Built from parts so that this file does not match itself.
SHARED = "sha" + "red"
OUTSIDE = re.compile("design" + r"\.md|\.\./" + SHARED + r"|(?<![\w/])" + SHARED + "/")
PATH = re.compile(r"`((?:src|tests|preprocess|make|docs|lineage|bench)/[A-Za-z0-9_./]+)`")


def scanned_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "Makefile", *REPO.glob("*.make")]
    for top in SCANNED:
        files += [
            p
            for p in (REPO / top).rglob("*")
            if p.is_file() and p.suffix in {".py", ".md", ".mk", ".txt", ".sh"}
        ]
    return sorted(files)


def test_no_citation_outside_the_repository() -> None:
    files = scanned_files()
    assert len(files) > 50
    hits = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in files
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert hits == []


def test_architecture_names_files_that_exist() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    paths = sorted(set(PATH.findall(text)))
    assert "src/segline/losses/registry.py" in paths and len(paths) > 15
    missing = [p for p in paths if not (REPO / p).exists()]
    assert missing == []
    assert "## Lineage: code dependencies, records, locks" in text
    assert "docs/ARCHITECTURE.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_code_and_docs_cite_no_issue_numbers() -> None:
    """Code and docs say what the code does and why; which ticket asked for it is
    history (git, bench/RESULTS.md), so bench/RESULTS.md alone may name one."""
    ticket = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
    hits = [
        f"{p.relative_to(REPO)}:{n}"
        for p in scanned_files()
        if p != REPO / "bench" / "RESULTS.md"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if ticket.search(line)
    ]
    assert not hits, hits
