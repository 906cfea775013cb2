"""Per-instance flags of vertebra predictions (segline.experiments.vertebrae.instances)
and their table beside segline-predict's predictions (segline.predict)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from segline.experiments.vertebrae.instances import (
    COLUMNS,
    INSTANCES_FILE,
    instance_table,
    instances_csv,
)
from segline.predict import _describe, _write_tables


def instance_map() -> np.ndarray:
    """(20, 16, 16): instance 1 cut by the volume's first slice, 2 whole, 3 cut by the
    edge of the cross-section (x = 15), 5 whole but left incomplete by the network."""
    lab = np.zeros((20, 16, 16), np.uint16)
    lab[0:4, 4:10, 4:10] = 1  # 144 voxels, on z = 0
    lab[6:10, 4:10, 4:10] = 2  # 144 voxels, inside
    lab[12:14, 2:4, 13:16] = 3  # 12 voxels, on x = 15
    lab[15:17, 5:7, 5:7] = 5  # 8 voxels, inside
    return lab


def test_border_and_completeness_flags() -> None:
    rows = instance_table(instance_map(), {1: 0.2, 2: 0.9, 3: 0.7, 5: 0.1})
    got = {r["label"]: (r["voxels"], r["touches_border"], r["partial"]) for r in rows}
    assert got == {1: (144, 1, 1), 2: (144, 0, 0), 3: (12, 1, 1), 5: (8, 0, 1)}
    assert [r["completeness"] for r in rows] == [0.2, 0.9, 0.7, 0.1]


def test_without_completeness_only_the_border_flags() -> None:
    rows = instance_table(instance_map())
    assert all(math.isnan(r["completeness"]) for r in rows)
    assert [r["partial"] for r in rows] == [1, 0, 1, 0]


def test_csv_table_per_case() -> None:
    lab = instance_map()
    text = instances_csv({"a": lab, "b": np.zeros_like(lab)}, {"a": {2: 0.75}})
    frame = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == list(COLUMNS)
    assert frame["case"].tolist() == ["a"] * 4  # case b has no instance
    row = frame[frame["label"] == 2].iloc[0]
    assert (row["voxels"], row["touches_border"], row["completeness"]) == (144, 0, 0.75)
    assert math.isnan(frame[frame["label"] == 1].iloc[0]["completeness"])


class FakePredictor:
    """What segline.predict reads of a vertebra predictor: ``last_table``."""

    last_table: tuple[str, tuple[str, ...], list[dict]] | None = None

    def predict(self, labels: np.ndarray) -> None:
        self.last_table = (INSTANCES_FILE, COLUMNS, instance_table(labels, {1: 0.3}))


def test_predict_writes_the_table_beside_the_predictions(tmp_path: Path) -> None:
    predictor, tables = FakePredictor(), {}
    for case, lab in (("c0", instance_map()), ("c1", instance_map()[6:10])):
        predictor.predict(lab)
        _describe(predictor, case, tables)
    _describe(object(), "none", tables)  # a predictor without a table adds nothing
    written = _write_tables(tmp_path, Path("out"), tables)
    assert written == [Path("out") / INSTANCES_FILE]
    frame = pd.read_csv(tmp_path / INSTANCES_FILE)
    # c1 is slices 6..9 only: instance 2 now lies on the first and last slice
    c1 = frame[frame["case"] == "c1"]
    assert c1[["label", "voxels", "touches_border"]].values.tolist() == [[2, 144, 1]]
    assert frame[frame["case"] == "c0"]["label"].tolist() == [1, 2, 3, 5]
