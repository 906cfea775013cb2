"""The evaluation stage: a method's test cases scored in each case's source geometry.

``python -m segline.eval_stage --cases data/<ds>/cases --raw data/<ds>/raw --method
results/<ds>/<method> --out results/<ds>/eval/<method>`` (make target
``$(RES)/eval/<method>``, ``$(RES)/eval/<method>/seed<k>`` with seeds) writes, as one
atomic folder:

* ``<case>.nii.gz`` for every test case of the store: the method's ``best.pt``
  applied by the predictor ``segline.predict`` uses
  (:func:`segline.predicting.infer.load_predictor`) and written back to the case's
  source geometry by the same function (``segline.predict._write_case``: softmax
  probabilities resampled to the source grid, then the argmax), so the files scored
  are exactly the files a user receives from ``make predict``;
* ``metrics.csv``: long format ``epoch,split,case,class,metric,value`` (the schema of
  a training's ``test/metrics.csv``, ``epoch`` its best epoch, ``split`` ``test``,
  full precision through :mod:`segline.csvio`), each prediction scored against the
  **original** label file of the raw data (``meta.json`` ``source.label``, relative
  to ``--raw``), in its own geometry and spacing in mm, never resampled or cropped:
  read and checked to share the prediction's grid by
  :func:`segline.labelpairs.read_pair`, the store's label map (``dataset.json``
  ``preprocessing.label_map``) applied as the slicing stage applied it, and scored by
  :func:`segline.metrics.table.case_metrics`, the function of the training and of
  ``segline-evaluate``. The metrics are those of the training's
  ``test/metrics.csv``, in its order; undefined distances (exactly one empty mask)
  are NaN, an empty field, as there;
* ``grid.json``: ``{"grid": "source geometry", "cases": [...], "method": ...,
  "best_epoch": ..., "metrics": [...]}``; ``labels.txt`` / ``labels.ctbl`` as
  ``predict`` writes them.

The report, the statistics, ``report_cases.csv`` and the test box plot read this
``metrics.csv`` (``--eval``, :mod:`segline.plots`); the training grid's numbers stay
in the training's ``test/metrics.csv`` (the report's secondary table). A training
metric this stage cannot compute (not in :mod:`segline.metrics.registry` as a mask or
surface metric, ``mip_dice`` without ``--mip-axis``) is refused with one line (a
dataset makefile of the user's opts out with ``SOURCE_EVAL := no``).

``mip_dice`` (vessels) is computed here when ``--mip-axis`` gives the projection axis
of the stored (Z, Y, X) volume (make ``MIP_AXIS``): the store keeps the source's axes
(only transposed from NIfTI's (X, Y, Z)), so the same axis of the source-geometry
prediction and of the original 3D label is projected, and their Dice is the MIP Dice
on the source grid (:mod:`segline.metrics.projection`; the training scores against
the store's 2D labels, the projection of its resampled, cropped 3D label).

A vertebra method's training (``args.json`` ``method`` iterative or semantic,
:data:`INSTANCE_METHODS`) writes instance maps: its predictions are written back like
any other (the labels mapped to the source grid as they are, no probabilities) and
scored by :func:`score_instances`, the matched-instance metrics of its training
(:func:`segline.metrics.instances.instance_rows`) against the original VerSe mask,
its values mapped to the store's classes; the rows carry the training's class names.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segline import atomic, csvio
from segline.casestore import CaseStore
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.labelpairs import check_values, read_pair
from segline.metrics import projection
from segline.metrics.instances import CASE_METRICS, instance_rows
from segline.metrics.table import METRICS, case_metrics
from segline.predict import _write_case, store_of
from segline.predicting import output
from segline.predicting.infer import load_predictor, read_args
from segline.predicting.labels import write_label_files
from segline.preprocess.slicing import remap_classes

COLUMNS = ["epoch", "split", "case", "class", "metric", "value"]
INSTANCE_METHODS = ("iterative", "semantic")
"""``args.json`` ``method`` of the vertebra trainings (instance maps, scored by
:func:`score_instances`)."""
GRID = "source geometry"


def training_metrics(method: Path, mip_axis: int | None = None) -> tuple[int, list[str]]:
    """The best epoch (``best_epoch.txt``) and the metrics of the training's
    ``test/metrics.csv`` in order of first appearance (``mip_dice`` only with a
    ``mip_axis``; a vertebra method's: the instance metrics, :func:`score_instances`).

    Raises:
        InputError: a file missing or unreadable; a metric this stage cannot compute in
            the source geometry.
    """
    best_path = method / "best_epoch.txt"
    try:
        best = int(best_path.read_text().strip())
    except (OSError, ValueError) as err:
        raise InputError(best_path, f"missing or not an integer ({err}); train first") from err
    path = method / "test" / "metrics.csv"
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        names = [str(m) for m in pd.unique(table["metric"])]
    except (OSError, ValueError, KeyError) as err:
        raise InputError(path, f"unreadable test metrics ({err}); train first") from err
    if instance_names(method) is not None:  # a vertebra method: score_instances's rows
        if [m for m in names if m not in CASE_METRICS] or not names:
            raise InputError(path, f"metrics {', '.join(names) or '(none)'} are not the "
                             "instance metrics " + ", ".join(CASE_METRICS))
        return best, names
    known = (*METRICS, projection.NAME) if mip_axis is not None else METRICS
    other = [m for m in names if m not in known]
    if other or not names:
        raise InputError(
            path, f"metric(s) {', '.join(other) or '(none)'} exist only on the training "
            "grid; this stage computes " + ", ".join(known) + (
                "" if mip_axis is not None else f" ({projection.NAME} with --mip-axis)")
            + " (a dataset makefile opts out with SOURCE_EVAL := no)")  # fmt: skip
    return best, names


def label_lut(store: CaseStore) -> tuple[dict[int, str], np.ndarray]:
    """The source classes and the source value -> stored class table the slicing stage
    applied (``dataset.json``: ``source_labels``, ``preprocessing.label_map``)."""
    ds = store.dataset
    source = {int(k): str(v) for k, v in (ds.get("source_labels") or ds["labels"]).items()}
    label_map = (ds.get("preprocessing") or {}).get("label_map") or {}
    _, lut = remap_classes(source, {int(k): int(v) for k, v in label_map.items()})
    return source, lut


def source_label(raw: Path, store: CaseStore, case: str) -> Path:
    """The original label file of ``case`` in the raw folder (``meta.json``)."""
    rel = (store.meta(case).get("source") or {}).get("label")
    if not isinstance(rel, str) or not rel:
        raise InputError(store.root / case / "meta.json", "no source label file recorded")
    path = raw / rel
    if not path.is_file():
        raise InputError(path, f"original label of test case {case} not found in {raw}")
    return path


def score_file(
    case: str,
    pred: Path,
    label: Path,
    store: CaseStore,
    metrics: Sequence[str],
    epoch: int,
    mip_axis: int | None = None,
) -> list[dict[str, Any]]:
    """Long rows of one written prediction against its original label file: the
    volume metrics of :func:`case_metrics`, then ``mip_dice`` (projections along
    ``mip_axis``) when asked for, the order of the training's rows."""
    ref, got = read_pair(pred, label)
    source, lut = label_lut(store)
    check_values(ref.data, label, source)
    classes = {int(k): str(v) for k, v in store.dataset["labels"].items()}
    check_values(got.data, pred, classes)
    truth = lut[ref.data]
    volume = tuple(m for m in metrics if m != projection.NAME)
    rows = case_metrics(got.data, truth, ref.spacing, classes, metrics=volume)
    if projection.NAME in metrics:
        if mip_axis is None:
            raise InputError(pred, f"{projection.NAME} needs the projection axis (--mip-axis)")
        rows += projection.projection_rows(got.data, truth, classes, mip_axis)
    return [{"epoch": epoch, "split": "test", "case": case, **r} for r in rows]


def instance_names(method: Path) -> dict[int, str] | None:
    """Class index -> vertebra name of a vertebra method's training (``args.json``
    ``method`` iterative or semantic, ``segline.vertebrae.train``): its
    ``classes.json``, the names of its test rows; None for any other training.

    Raises:
        InputError: the training is unfinished, or its ``classes.json`` unreadable.
    """
    if read_args(method).get("method") not in INSTANCE_METHODS:
        return None
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
    value); the store's label map (:func:`label_lut`) then applies. Without
    ``label_values`` the file holds the adapter's class indices.

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


def evaluate_method(
    method: Path,
    out: Path,
    raw: Path,
    cases: Path | None = None,
    device: str = "auto",
    amp: str = "auto",
    mip_axis: int | None = None,
) -> pd.DataFrame:
    """Write the eval folder ``out`` of ``method`` (module docstring); returns its rows.
    ``mip_axis``: the projection axis of ``mip_dice`` (a training that reports it)."""
    store = store_of(method, cases)
    output.check_apart(out, [("method", method), ("case store", store.root), ("raw", raw)])
    if mip_axis is not None and mip_axis not in (0, 1, 2):
        raise InputError(method, f"--mip-axis {mip_axis}: an axis of (Z, Y, X) is 0, 1 or 2")
    best, metrics = training_metrics(method, mip_axis)
    names = instance_names(method)  # a vertebra method's classes, else None
    ids = store.case_ids("test")
    if not ids:
        raise InputError(store.root, "no test case to evaluate")
    labels = {c: source_label(raw, store, c) for c in ids}  # all found before any work
    predictor = load_predictor(method, store, device, amp)
    rows: list[dict[str, Any]] = []
    with atomic.atomic_dir(out) as tmp:
        for case in ids:
            meta = store.meta(case)
            prediction = predictor.predict(np.asarray(store.image(case)))
            name = f"{case}.nii.gz"
            _write_case(tmp, out, name, case, prediction, False, meta)
            if names is not None:
                rows += score_instances(case, tmp / name, labels[case], store, names, best)
            else:
                rows += score_file(case, tmp / name, labels[case], store, metrics, best, mip_axis)
        write_label_files(tmp, predictor.label_names(store))
        table = pd.DataFrame(rows, columns=COLUMNS)
        atomic.write_text(tmp / "metrics.csv", csvio.csv_text(table))
        grid = {
            "grid": GRID,
            "method": str(method),
            "best_epoch": best,
            "metrics": metrics,
            **({} if mip_axis is None else {"mip_axis": mip_axis}),
            "cases": ids,
            "labels": {c: str(p.relative_to(raw)) for c, p in labels.items()},
        }
        atomic.write_text(tmp / "grid.json", json.dumps(grid, indent=2) + "\n")
    return table


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog=prog("python -m segline.eval_stage"),
        description=__doc__.split("\n")[0].rstrip("."),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--method", type=Path, required=True, help="trained method folder")
    p.add_argument("--out", type=Path, required=True, help="the eval folder to write")
    p.add_argument(
        "--raw", type=Path, required=True, help="the raw data folder (data/<ds>/raw)"
    )
    p.add_argument(
        "--cases", type=Path, default=None,
        help="the case store (default: the one of the method's args.json)",
    )  # fmt: skip
    p.add_argument(
        "--mip-axis", type=int, default=None,
        help="projection axis of the stored (Z, Y, X) volume for mip_dice (vessels)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--amp", default="auto", choices=["auto", "off", "bf16", "fp16"],
        help="mixed precision of the forward passes",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Predict and score the test cases; print one line per case's Dice."""
    args = build_parser().parse_args(argv)
    table = evaluate_method(
        args.method, args.out, args.raw, args.cases, args.device, args.amp, args.mip_axis
    )
    dice = table[table["metric"] == "dice"].groupby("case", sort=False)["value"].mean()
    print(f"{args.out}: {len(dice)} test case(s) in {GRID}, mean Dice {dice.mean():.4f}")
    return 0


#: Console script ``segline-eval-stage`` (pyproject.toml ``[project.scripts]``).
cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
