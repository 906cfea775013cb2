"""The pseudo-label quality table names each case's split, per fold in a FOLDS store."""

from __future__ import annotations

import json
from pathlib import Path

from segline.casestore import CaseStore
from segline.experiments.vessels.pseudo import split_names


def store(root: Path, split: dict[str, object]) -> CaseStore:
    root.mkdir()
    (root / "split.json").write_text(json.dumps(split))
    return CaseStore(root)


def test_single_split_names_the_split(tmp_path: Path) -> None:
    s = store(tmp_path / "cases", {"train": ["c1", "c4"], "val": ["c2"], "test": ["c3"],
                                    "infer": ["u1"]})
    assert split_names(s) == {"c1": "train", "c4": "train", "c2": "val", "c3": "test",
                              "u1": "infer"}


def test_cross_validation_names_the_test_fold(tmp_path: Path) -> None:
    folds = [{"train": ["c3"], "val": ["c2"], "test": ["c1", "c4"]},
             {"train": ["c1"], "val": ["c4"], "test": ["c2", "c3"]}]
    s = store(tmp_path / "cases", {**folds[0], "infer": ["u1"], "folds": folds})
    assert split_names(s) == {"c1": "test fold0", "c4": "test fold0", "c2": "test fold1",
                              "c3": "test fold1", "u1": "infer"}
