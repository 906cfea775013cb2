"""Tests for segline.preprocess.split (natural-order train/val/test split)."""

from __future__ import annotations

import json

import pytest

from segline.casestore import CaseStore
from segline.errors import InputError
from segline.preprocess.split import make_split, split_of, write_split

IDS = [f"spleen_{i}" for i in (10, 2, 21, 1, 12, 3, 20, 11, 33)]


def test_first_n_test_then_n_val_by_natural_order() -> None:
    s = make_split(IDS, ["spleen_9", "spleen_40"], n_test=3, n_val=2)
    assert s["test"] == ["spleen_1", "spleen_2", "spleen_3"]
    assert s["val"] == ["spleen_10", "spleen_11"]
    assert s["train"] == ["spleen_12", "spleen_20", "spleen_21", "spleen_33"]
    assert s["infer"] == ["spleen_9", "spleen_40"]
    assert s["params"]["n_test"] == 3 and s["params"]["n_val"] == 2


def test_ebp_default_first_20_of_41_are_test() -> None:
    ids = [f"spleen_{i}" for i in range(41, 0, -1)]
    s = make_split(ids)
    assert s["test"] == [f"spleen_{i}" for i in range(1, 21)]
    assert s["val"] == [f"spleen_{i}" for i in range(21, 26)]
    assert len(s["train"]) == 16 and s["infer"] == []


def test_zero_sizes_allowed() -> None:
    s = make_split(["a_2", "a_1"], n_test=0, n_val=0)
    assert s["train"] == ["a_1", "a_2"] and s["test"] == [] and s["val"] == []


def test_too_few_cases_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"too few labelled cases.*3 found, need at least 4"):
        make_split(["a", "b", "c"], n_test=2, n_val=1, where="data/x/raw")
    with pytest.raises(InputError, match="data/x/raw"):
        make_split(["a", "b", "c"], n_test=3, n_val=0, where="data/x/raw")


def test_negative_sizes_and_duplicates_rejected() -> None:
    with pytest.raises(InputError, match=">= 0"):
        make_split(IDS, n_test=-1)
    with pytest.raises(InputError, match="duplicate"):
        make_split(["a", "a", "b"], n_test=0, n_val=0)


def test_split_of_and_written_file_read_by_casestore(tmp_path) -> None:
    s = make_split(IDS, ["spleen_9"], n_test=2, n_val=2)
    assert split_of(s, "spleen_9") == "infer" and split_of(s, "spleen_1") == "test"
    with pytest.raises(KeyError):
        split_of(s, "nope")
    write_split(tmp_path / "split.json", s)
    assert not (tmp_path / "split.json.tmp").exists()
    raw = json.loads((tmp_path / "split.json").read_text())
    assert raw["params"]["rule"].startswith("natural order")
    store = CaseStore(tmp_path)
    assert store.split["train"] == s["train"] and store.case_ids("val") == s["val"]
