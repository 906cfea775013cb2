"""The evaluation stage's scores of a vertebra method: :class:`InstanceScorer`.

The evaluation stage (:mod:`segline.eval_stage`) writes a training's test predictions
back to each case's source geometry and asks the trainer class its ``args.json``
records how to score them (:meth:`segline.train.loop.Trainer.source_scorer`). A
vertebra method's predictions are instance maps: :func:`score_instances` scores each
with the matched-instance metrics of its training
(:func:`segline.metrics.instances.instance_rows`) against the original VerSe mask, its
values mapped to the store's classes; the rows carry the training's class names
(``classes.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segline.casestore import CaseStore
from segline.errors import InputError
from segline.eval_stage import label_lut
from segline.labelpairs import check_values, read_pair
from segline.metrics.instances import CASE_METRICS, instance_rows

__all__ = ["InstanceScorer", "instance_names", "score_instances", "source_values"]


def instance_names(method: Path) -> dict[int, str]:
    """Class index -> vertebra name of a vertebra method's training: its
    ``classes.json``, the names of its test rows.

    Raises:
        InputError: its ``classes.json`` is missing or unreadable.
    """
    path = method / "classes.json"
    try:
        classes = json.loads(path.read_text())["classes"]
        return {int(k): str(v) for k, v in classes.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(path, f"unreadable vertebra classes ({err}); train again") from err


def source_values(store: CaseStore) -> tuple[dict[int, str], np.ndarray]:
    """The values an original label file of an instance task holds, and the value ->
    stored class table the slicing stage applied.

    The VerSe adapter maps each mask value (VerSe's vertebra number, e.g. 20 for L1) to
    its class index (``dataset.json`` ``source_info.label_values``: class index ->
    value); the store's label map (:func:`segline.eval_stage.label_lut`) then applies.
    Without ``label_values`` the file holds the adapter's class indices.

    Returns:
        ({value: class name}, uint8 table of 256 entries: ``table[value]`` = class).
    """
    source, lut = label_lut(store)
    info = (store.dataset.get("source_info") or {}).get("label_values")
    values = {int(k): int(v) for k, v in info.items()} if info else {k: k for k in source}
    table = np.zeros(256, dtype=np.uint8)
    names: dict[int, str] = {}
    for index, value in values.items():
        if index not in source or not 0 <= value <= 255:
            raise InputError(store.root / "dataset.json", f"label value {value} of class "
                             f"{index}: not a declared class or outside 0..255")
        table[value] = lut[index]
        names[value] = source[index]
    return names, table


def score_instances(
    case: str,
    pred: Path,
    label: Path,
    store: CaseStore,
    names: dict[int, str],
    epoch: int,
) -> list[dict[str, Any]]:
    """Long rows of one written instance map against its original label file.

    The label's values (VerSe's) become the store's class indices as the slicing stage
    mapped them (:func:`source_values`); the prediction's values (instance ids of the
    iterative method, VerSe values of the semantic one) are matched to them by overlap
    whatever they are. :func:`segline.metrics.instances.instance_rows` in the label's
    spacing (mm): per vertebra, named by ``names`` (the training's ``classes.json``, so
    the rows are the classes of its ``test/metrics.csv``), ``dice`` and ``assd``; per
    case (class ``spine``) ``dice``, ``assd``, ``id_rate``, ``false_positives``,
    ``misses``.
    """
    ref, got = read_pair(pred, label)
    values, table = source_values(store)
    check_values(ref.data, label, values)
    check_values(got.data, pred, None)
    try:
        rows = instance_rows(got.data, table[ref.data], ref.spacing, names)
    except ValueError as err:
        raise InputError(label, f"case {case}: {err}") from err
    return [{"epoch": epoch, "split": "test", "case": case, **r} for r in rows]


@dataclass(frozen=True)
class InstanceScorer:
    """The evaluation stage's scorer of a vertebra method's training (the protocol of
    :meth:`segline.train.loop.Trainer.source_scorer`).

    Attributes:
        names: class index -> vertebra name (:func:`instance_names`).
        metrics: the metrics its rows hold (those of the training's test rows).
    """

    names: dict[int, str]
    metrics: tuple[str, ...] = CASE_METRICS

    @classmethod
    def of(cls, method: Path) -> InstanceScorer:
        """The scorer of the trained folder ``method`` (its ``classes.json``)."""
        return cls(instance_names(method))

    def score(
        self, case: str, pred: Path, label: Path, store: CaseStore, epoch: int
    ) -> list[dict[str, Any]]:
        """:func:`score_instances` of one case."""
        return score_instances(case, pred, label, store, self.names, epoch)
