"""``TOY`` is read once, in make/toy.mk (``IS_TOY``): every dataset makefile includes
it before its defaults, and none re-derives the test."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = ["spleen", "isles", "vessels", "vertebrae"]


def test_only_toy_mk_reads_toy_into_a_test() -> None:
    pattern = re.compile(r"filter 1 yes true[^,]*,\$\(TOY\)")
    readers = [
        p.relative_to(REPO).as_posix()
        for p in [*REPO.glob("*.make"), *(REPO / "make").glob("*.mk")]
        if pattern.search(p.read_text())
    ]
    assert readers == ["make/toy.mk"]


@pytest.mark.parametrize("ds", DATASETS)
def test_each_makefile_includes_toy_mk_before_using_is_toy(ds: str) -> None:
    text = (REPO / f"{ds}.make").read_text()
    include = text.index("\ninclude make/toy.mk\n")
    assert include < text.index("$(IS_TOY)") < text.index("\ninclude make/common.mk\n")


@pytest.mark.parametrize(
    ("ds", "toy", "shown", "split"),
    [
        ("spleen", "1", "spleen-toy (embedded toy data)", "(3, 2)"),
        ("spleen", "", "spleen (real data", "(20, 5)"),
        ("vessels", "yes", "vessels-toy (embedded toy data)", "(3, 2)"),
        ("vertebrae", "true", "vertebrae-toy (embedded toy data)", "(5, 2)"),
        ("isles", "hard", "isles-hard-toy (embedded toy data)", "(12, 3)"),
        ("isles", "1", "isles-toy (embedded toy data)", "(2, 2)"),
        ("isles", "0", "isles (real data", "(10, 20)"),
    ],
)
def test_help_names_the_data_the_toy_knob_picks(ds: str, toy: str, shown: str, split: str) -> None:
    """The dataset (make/common.mk) and the makefile's own defaults (its split sizes,
    N_TEST and N_VAL) follow the same IS_TOY."""
    out = subprocess.run(
        ["make", "--no-print-directory", "-f", f"{ds}.make", f"TOY={toy}", "help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    ).stdout  # fmt: skip
    assert f"dataset {shown}" in out
    assert re.search(r"N_TEST=N N_VAL=N .*" + re.escape(split), out), out
