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
``metrics.csv`` (``--eval``, :mod:`segline.results`); the training grid's numbers stay
in the training's ``test/metrics.csv`` (the report's secondary table). A training
metric this stage cannot compute (not in :mod:`segline.metrics.registry` as a mask or
surface metric, nor among its trainer's scorer's metrics, below) is refused with one
line (a dataset makefile of the user's opts out with ``SOURCE_EVAL := no``).

A training whose predictions are no class maps (an experiment's trainer, e.g. the
vertebra methods' instance maps) is scored as its trainer class says: the class its
``args.json`` records (:func:`segline.predicting.infer.recorded_trainer`) returns a
scorer (:meth:`segline.train.loop.Trainer.source_scorer`) whose ``score`` gives the
rows of each written prediction against its original label file and whose
``metrics`` are the metrics the training's ``test/metrics.csv`` may hold; its
predictions are written back like any other (the labels mapped to the source grid as
they are, no probabilities). A scorer may add metrics of its own to the per-class
ones (:func:`score_file`'s ``extra``, e.g. the vessels experiment's ``mip_dice``) and
facts to ``grid.json`` (its optional ``record`` dict).

A predictor with the attribute ``reads_labels = True`` (an oracle variant, e.g. one
told where the structure lies) is called as ``predict(image, label=...)`` with the case
store's label of the case (uint8, (Z, Y, X), the store's grid); its training records
``"oracle": true`` in ``args.json`` so the report marks it (:func:`predict_case`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segline import atomic, csvio
from segline.casestore import CaseStore
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.labelpairs import check_values, read_pair
from segline.metrics.table import METRICS, case_metrics
from segline.predict import _write_case, store_of
from segline.predicting import output
from segline.predicting.infer import load_predictor, recorded_trainer
from segline.predicting.labels import write_label_files
from segline.preprocess.slicing import remap_classes

COLUMNS = ["epoch", "split", "case", "class", "metric", "value"]
GRID = "source geometry"


def reported_test_metrics(method: Path) -> list[str]:
    """The metrics of the training's ``test/metrics.csv``, in order of first
    appearance (one :class:`InputError` line when it is missing or unreadable)."""
    path = method / "test" / "metrics.csv"
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        return [str(m) for m in pd.unique(table["metric"])]
    except (OSError, ValueError, KeyError) as err:
        raise InputError(path, f"unreadable test metrics ({err}); train first") from err


def training_metrics(method: Path) -> tuple[int, list[str]]:
    """The best epoch (``best_epoch.txt``) and the metrics of the training's
    ``test/metrics.csv`` in order of first appearance (a training with a scorer of
    its own, :func:`source_scorer`: the scorer's metrics).

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
    names = reported_test_metrics(method)
    scorer = source_scorer(method)
    if scorer is not None:  # the trainer's own rows (e.g. instance metrics)
        if [m for m in names if m not in scorer.metrics] or not names:
            raise InputError(path, f"metrics {', '.join(names) or '(none)'} are not the "
                             "metrics its trainer scores: " + ", ".join(scorer.metrics))
        return best, names
    other = [m for m in names if m not in METRICS]
    if other or not names:
        raise InputError(
            path, f"metric(s) {', '.join(other) or '(none)'} exist only on the training "
            "grid; this stage computes " + ", ".join(METRICS)
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


ExtraRows = Callable[[np.ndarray, np.ndarray, Mapping[int, str]], list[dict[str, Any]]]
"""A scorer's own rows of one case: ``extra(pred, truth, classes)`` with the written
prediction and the original label as class-index maps of the source grid, and the
store's classes -> ``[{"class", "metric", "value"}, ...]``."""


def score_file(
    case: str,
    pred: Path,
    label: Path,
    store: CaseStore,
    metrics: Sequence[str],
    epoch: int,
    extra: ExtraRows | None = None,
) -> list[dict[str, Any]]:
    """Long rows of one written prediction against its original label file: the
    volume ``metrics`` of :func:`case_metrics`, then the rows of ``extra`` (a
    trainer's scorer's own metrics), the order of the training's rows."""
    ref, got = read_pair(pred, label)
    source, lut = label_lut(store)
    check_values(ref.data, label, source)
    classes = {int(k): str(v) for k, v in store.dataset["labels"].items()}
    check_values(got.data, pred, classes)
    truth = lut[ref.data]
    rows = case_metrics(got.data, truth, ref.spacing, classes, metrics=tuple(metrics))
    if extra is not None:
        rows += extra(got.data, truth, classes)
    return [{"epoch": epoch, "split": "test", "case": case, **r} for r in rows]


def source_scorer(method: Path) -> Any:
    """How the trainer class of ``method`` (its ``args.json``,
    :func:`segline.predicting.infer.recorded_trainer`) scores its predictions here:
    None for class maps (:func:`score_file`), else an object with ``metrics`` and
    ``score(case, pred, label, store, epoch) -> rows``
    (:meth:`segline.train.loop.Trainer.source_scorer`).

    Raises:
        InputError: the training is unfinished, or its trainer class not found.
    """
    return recorded_trainer(method).source_scorer(method)


def extra_metric_names(text: str) -> tuple[str, ...]:
    """``--extra-metrics``: per-class metrics of the registry (mask or surface kinds),
    comma-separated, no repeats; one :class:`InputError` line otherwise."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or len(set(names)) != len(names):
        raise InputError("--extra-metrics", f"{text!r}: each once, among " + ", ".join(METRICS))
    return names


def predict_case(predictor: Any, store: CaseStore, case: str) -> Any:
    """``predictor.predict`` of the case's stored image (what it returns: labels and
    probabilities, :meth:`segline.train.loop.Trainer.predictor`); with ``label=`` the
    case store's label (np.uint8, (Z, Y, X)) when the predictor says ``reads_labels =
    True`` (an oracle: its numbers use the test labels, and its ``args.json`` says so)."""
    image = np.asarray(store.image(case))
    if getattr(predictor, "reads_labels", False) is True:
        label = np.asarray(store.label(case), dtype=np.uint8)
        return predictor.predict(image, label=label)
    return predictor.predict(image)


def evaluate_method(
    method: Path,
    out: Path,
    raw: Path,
    cases: Path | None = None,
    device: str = "auto",
    amp: str = "auto",
    extra_metrics: Sequence[str] = (),
) -> pd.DataFrame:
    """Write the eval folder ``out`` of ``method`` (module docstring); returns its rows.

    ``extra_metrics`` (make ``EVAL_METRICS``): per-class metrics scored here in
    addition to the training's, after them (those the training has are not repeated).
    Only this stage imports their code, so a change to it re-evaluates and never
    retrains. A trainer's own scorer takes them through its ``extend`` method; one
    without it refuses them in one line."""
    store = store_of(method, cases)
    output.check_apart(out, [("method", method), ("case store", store.root), ("raw", raw)])
    best, metrics = training_metrics(method)
    scorer = source_scorer(method)  # the trainer's own scores, else None
    extra = [m for m in extra_metrics if m not in metrics]
    if extra:
        if scorer is not None and not hasattr(scorer, "extend"):
            raise InputError(method, f"its trainer scores its own metrics; extra metrics "
                             f"{', '.join(extra)} cannot be added (EVAL_METRICS)")
        if scorer is not None:
            scorer.extend(extra)
        metrics = [*metrics, *extra]
    ids = store.case_ids("test")
    if not ids:
        raise InputError(store.root, "no test case to evaluate")
    labels = {c: source_label(raw, store, c) for c in ids}  # all found before any work
    predictor = load_predictor(method, store, device, amp)
    rows: list[dict[str, Any]] = []
    with atomic.atomic_dir(out) as tmp:
        for case in ids:
            meta = store.meta(case)
            prediction = predict_case(predictor, store, case)
            name = f"{case}.nii.gz"
            _write_case(tmp, out, name, case, prediction, False, meta)
            if scorer is not None:
                rows += scorer.score(case, tmp / name, labels[case], store, best)
            else:
                rows += score_file(case, tmp / name, labels[case], store, metrics, best)
        write_label_files(tmp, predictor.label_names(store))
        table = pd.DataFrame(rows, columns=COLUMNS)
        atomic.write_text(tmp / "metrics.csv", csvio.csv_text(table))
        grid = {
            "grid": GRID,
            "method": str(method),
            "best_epoch": best,
            "metrics": metrics,
            **(getattr(scorer, "record", None) or {}),
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
        "--extra-metrics", type=extra_metric_names, default=(),
        help="per-class metrics scored here only, in addition to the training's "
        "(comma-separated; make EVAL_METRICS)",
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
    table = evaluate_method(args.method, args.out, args.raw, args.cases, args.device, args.amp,
                            args.extra_metrics)
    dice = table[table["metric"] == "dice"].groupby("case", sort=False)["value"].mean()
    print(f"{args.out}: {len(dice)} test case(s) in {GRID}, mean Dice {dice.mean():.4f}")
    return 0


#: Console script ``segline-eval-stage`` (pyproject.toml ``[project.scripts]``).
cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
