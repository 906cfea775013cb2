"""Training on labels that lack foreground: one warning line, never an error.

A declared class that no training case holds (here: ``lesion``, only in the test
cases) and a training split whose labels are all background each give one
``warning:`` line naming the case store, the training split and the class; training
goes on. The check reads labels only until every class has been seen.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from conftest import train_cli
from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.data.foreground import classes_present, missing_classes, warn_if_no_foreground
from segline.distmaps import write_dist_store
from segline.preprocess.geometry import from_source

SHAPE_XYZ = (24, 20, 6)
LABELS = {"0": "background", "1": "organ", "2": "lesion"}
IDS = [f"c_{i}" for i in range(6)]  # test c_0 c_1, val c_2 c_3, train c_4 c_5


def label_xyz(i: int, lesion: bool) -> np.ndarray:
    lab = np.zeros(SHAPE_XYZ, np.uint8)
    lab[4 + i : 12 + i, 5:13, 1:5] = 1
    if lesion:
        lab[6 + i : 8 + i, 7:9, 2:3] = 2
    return lab


def build_store(root: Path, lesion_cases: set[str], organ: bool = True) -> tuple[Path, Path]:
    """Six cases of three classes; ``lesion_cases`` hold class 2; ``organ=False``: every
    label empty."""
    cases = root / "cases"
    with atomic.atomic_dir(cases) as tmp:
        for i, cid in enumerate(IDS):
            img = np.random.default_rng(i).normal(0.2, 0.05, SHAPE_XYZ).astype(np.float32)
            lab = label_xyz(i, cid in lesion_cases) if organ else np.zeros(SHAPE_XYZ, np.uint8)
            img[lab > 0] += 0.6
            image, label, meta = from_source(
                [img], lab, np.diag([-0.8, -0.8, 5.0, 1.0]), (0.8, 0.8, 5.0),
                case_id=cid, channels=["CT"],
            )  # fmt: skip
            write_case(tmp, cid, image, label, meta)
        atomic.write_json(tmp / "dataset.json", {"name": "three", "labels": LABELS,
                                                 "channels": ["CT"]})  # fmt: skip
        atomic.write_json(
            tmp / "split.json", {"test": IDS[:2], "val": IDS[2:4], "train": IDS[4:], "infer": []}
        )
    write_dist_store(cases, root / "dist")
    return cases, root / "dist"


@pytest.fixture(scope="module")
def no_lesion_in_training(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The lesion class only in the two test cases."""
    return build_store(tmp_path_factory.mktemp("nolesion"), {"c_0", "c_1"})


def warning_of(cases: Path, ids: list[str]) -> str:
    stream = io.StringIO()
    warn_if_no_foreground(CaseStore(cases), ids, stream=stream)
    return stream.getvalue()


def test_class_absent_from_every_training_case_is_named(
    no_lesion_in_training: tuple[Path, Path],
) -> None:
    cases, _ = no_lesion_in_training
    store = CaseStore(cases)
    assert missing_classes(store, store.case_ids("train")) == ([2], True)
    assert warning_of(cases, store.case_ids("train")) == (
        f"warning: {cases}: class 2 (lesion) is in none of the 2 training case(s) (train "
        "split); training goes on without an example of it\n"
    )
    assert warning_of(cases, store.case_ids("test")) == ""  # the test cases hold it


def test_all_empty_labels_give_the_empty_line(tmp_path: Path) -> None:
    cases, _ = build_store(tmp_path, set(), organ=False)
    ids = CaseStore(cases).case_ids("train")
    assert warning_of(cases, ids) == (
        f"warning: {cases}: every training label is empty (no foreground in 2 case(s)); "
        "training goes on, but the network can only learn background and Dice is 1 on "
        "empty cases by convention\n"
    )


def test_check_stops_reading_once_every_class_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases, _ = build_store(tmp_path, set(IDS))
    reads: list[str] = []
    original = CaseStore.label

    def counting(self: CaseStore, case_id: str, mmap: bool = True) -> np.ndarray:
        reads.append(case_id)
        return original(self, case_id, mmap)

    monkeypatch.setattr(CaseStore, "label", counting)
    assert warning_of(cases, IDS) == "" and reads == ["c_0"]  # one label read, no warning
    assert classes_present(np.array([[0, 2], [255, 2]], np.uint8)) == {0, 2, 255}


def test_trainer_prints_and_logs_the_line_and_trains(
    no_lesion_in_training: tuple[Path, Path], tmp_path: Path
) -> None:
    cases, _ = no_lesion_in_training
    out = tmp_path / "gdl"
    proc = train_cli(no_lesion_in_training, out, "--epochs", "1", "--losses", "gdl:1")
    assert proc.returncode == 0, proc.stderr
    expected = (
        f"[gdl] warning: {cases}: class 2 (lesion) is in none of the 2 training case(s) "
        "(train split); training goes on without an example of it"
    )
    assert [ln for ln in proc.stderr.splitlines() if "warning:" in ln] == [expected]
    assert expected in (out / "train.log").read_text().splitlines()
    assert (out / "best_epoch.txt").read_text().strip() == "1"
