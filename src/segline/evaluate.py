"""Score a folder of predicted label maps against a folder of reference labels.

``segline-evaluate --pred <predictions> --labels <labelsTr> [-j dataset.json]
[--out cases.csv] [--summary summary.json|summary.md]`` (segline's counterpart of
``nnUNetv2_evaluate_folder``) pairs ``<case><file_ending>`` of both folders (nnU-Net's
naming; ``--file-ending``, else dataset.json's ``file_ending``, else ``.nii.gz``) and
scores each prediction in its label's own geometry: the voxel spacing in mm from the
label's NIfTI header, with the same metric functions, conventions and undefined-case
rule as the trainer's test metrics and the report:

* per case and foreground class, :func:`segline.metrics.table.case_metrics` (Dice,
  HD95, ASSD by default; also HD and clDice). The volume is read as NIfTI (X, Y, Z) and
  scored as (Z, Y, X) with the spacing (z, y, x), the layout of the case store the
  trainer scores, so a prediction of a stored case gives the trainer's numbers;
* a distance with exactly one empty mask is undefined (NaN, an empty field in the
  CSV): means and sds are over the defined cases and the number of undefined cases is
  given next to them, never dropped; ``value_for_statistics`` (CSV) and
  ``mean_for_statistics`` (summary) count an undefined distance as the worst possible
  value, the case's field-of-view diagonal in mm
  (:func:`segline.report.statistics.fov_diagonal` of the label's shape and spacing),
  as the report's statistics do;
* the mean over classes is, per case, the mean over the foreground classes (undefined
  when any class is), then mean ± sd over cases, as the report's ``mean`` row.

Classes: ``labels`` of ``dataset.json`` (nnU-Net's {name: int} or MSD's
{"index": name}); without it, every non-zero value found in a label or a prediction,
named by its value. Background (0) is not scored.

Refused with one line and exit code 2, before anything is written: a prediction whose
shape or affine differs from its label's (no resampling), a label without prediction
(all of them are named), a prediction without label, a file of either folder that is
not ``<case><file_ending>`` (hidden files, the viewer files ``segline-predict``
writes, ``<case>_probs<ending>``, and nnU-Net's own files beside its predictions are
allowed in the predictions folder), a value outside the classes of dataset.json, a
non-integer label. ``--out`` (per case, long format, sorted by case id, full-precision
floats) and ``--summary`` are written atomically; the summary is also printed.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from segline import atomic, csvio
from segline.casestore import sorted_cases
from segline.cli import HelpFormatter, cli_of, entry, positive_int, prog
from segline.datasets.nnunet import READABLE_ENDINGS, parse_labels, read_dataset_json
from segline.errors import InputError
from segline.labelpairs import check_values, read_pair
from segline.metrics.table import METRICS, case_metrics, class_name_map
from segline.report.model import TEST_METRICS
from segline.report.statistics import fov_diagonal
from segline.report.tables import fmt_number, fmt_stat
from segline.results import METRIC_INFO, Stat, class_mean, is_distance, metric_label

#: Files beside the predictions that are not predictions: segline-predict's viewer
#: files and nnU-Net's records of a prediction run.
SIDE_FILES = frozenset(
    {
        "labels.txt",
        "labels.ctbl",
        "dataset.json",
        "plans.json",
        "predict_from_raw_data_args.json",
        "summary.json",
    }
)
#: Per-case side files of a prediction (probabilities): ``<case><suffix>``.
CASE_SIDE_SUFFIXES = (".npz", ".pkl")
PROBS = "_probs"
CSV_COLUMNS = ["case", "class", "metric", "value", "value_for_statistics"]
SUMMARY_SUFFIXES = (".json", ".md")
SHOWN = 10


def parse_metrics(text: str) -> list[str]:
    """The ``--metrics`` list: names :func:`~segline.metrics.table.case_metrics` knows,
    in the order given, no repeats.

    Raises:
        InputError: empty, unknown or repeated names.

    Example:
        >>> parse_metrics("dice, hd95")
        ['dice', 'hd95']
    """
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if not metrics or unknown:
        raise InputError(
            "--metrics", f"unknown metric(s) {', '.join(unknown) or repr(text)} "
            f"(known: {', '.join(METRICS)})")  # fmt: skip
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise InputError("--metrics", f"{', '.join(repeated)} given more than once")
    return metrics


def dataset_classes(path: Path) -> tuple[dict[int, str], str | None]:
    """Class index -> name and ``file_ending`` (or None) of a ``dataset.json``.

    nnU-Net v2 ``labels`` ({"background": 0, "spleen": 1}) and MSD ``labels``
    ({"0": "background", "1": "spleen"}) are both understood.

    Raises:
        InputError: unreadable file, no ``labels``, region-based or non-integer labels.
    """
    meta = read_dataset_json(path)
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(path, "no 'labels' object (class index -> name)")
    if all(isinstance(v, str) for v in labels.values()):  # MSD: {"0": "background"}
        try:
            names = class_name_map(labels)
        except ValueError:
            raise InputError(path, f"'labels' keys {list(labels)} are not integers") from None
    else:
        names = parse_labels(labels, path)
    if 0 not in names:
        raise InputError(path, "'labels' must name the background 0")
    ending = meta.get("file_ending")
    return names, ending if isinstance(ending, str) else None


# ------------------------------------------------------------------ the two folders
def _case_files(folder: Path, ending: str, what: str) -> tuple[dict[str, Path], list[Path]]:
    """``{case: file}`` of the visible ``<case><ending>`` files, and the other entries."""
    if not folder.is_dir():
        raise InputError(folder, f"not a folder ({what})")
    cases: dict[str, Path] = {}
    others: list[Path] = []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_file() and f.name.endswith(ending) and len(f.name) > len(ending):
            cases[f.name[: -len(ending)]] = f
        else:
            others.append(f)
    return cases, others


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def pair_files(
    pred_dir: Path, label_dir: Path, ending: str, skip: Sequence[Path] = ()
) -> list[tuple[str, Path, Path]]:
    """``(case, prediction, label)`` for every label, in the canonical case order.

    Args:
        pred_dir: the predictions, ``<case><ending>``.
        label_dir: the reference labels, ``<case><ending>`` (nnU-Net's ``labelsTr``).
        ending: the file ending (``.nii.gz`` or ``.nii``).
        skip: files never taken for inputs (the outputs, when written there).

    Raises:
        InputError: an unexpected file, no label, labels without prediction (all
            named), predictions without label.
    """
    skipped = {p.resolve() for p in skip}
    labels, other_labels = _case_files(label_dir, ending, "--labels")
    preds, other_preds = _case_files(pred_dir, ending, "--pred")
    stray = [f for f in other_labels if f.resolve() not in skipped]
    if stray:
        raise InputError(stray[0], f"unexpected file in the labels folder: not a <case>{ending}")
    for f in other_preds:
        stem = f.name[: -len(f.suffix)] if f.suffix else f.name
        side = f.name in SIDE_FILES or (f.suffix in CASE_SIDE_SUFFIXES and stem in labels)
        if not side and f.resolve() not in skipped:
            raise InputError(f, f"unexpected file in the predictions folder: not a <case>{ending}")
    for case in list(preds):
        if case not in labels and case.endswith(PROBS) and case[: -len(PROBS)] in labels:
            del preds[case]  # segline-predict --probs: <case>_probs<ending>
    if not labels:
        raise InputError(label_dir, f"no <case>{ending} label file")
    missing = sorted_cases([c for c in labels if c not in preds])
    if missing:
        raise InputError(
            pred_dir, f"no prediction for {len(missing)} of {len(labels)} label(s): "
            f"{_listed([c + ending for c in missing])}")  # fmt: skip
    extra = sorted_cases([c for c in preds if c not in labels])
    if extra:
        raise InputError(
            pred_dir, f"{len(extra)} prediction(s) without a label in {label_dir}: "
            f"{_listed([c + ending for c in extra])}")  # fmt: skip
    return [(c, preds[c], labels[c]) for c in sorted_cases(list(labels))]


# ------------------------------------------------------------------ one case
def case_values(pred_path: Path, label_path: Path) -> list[int]:
    """The class values present in a prediction or its label (first pass without
    dataset.json)."""
    label, pred = read_pair(pred_path, label_path)
    return sorted(
        check_values(label.data, label_path, None) | check_values(pred.data, pred_path, None)
    )


def score_case(
    case: str,
    pred_path: Path,
    label_path: Path,
    classes: dict[int, str],
    metrics: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Long-format rows of one case: case, class, metric, value, value_for_statistics.

    ``value`` is :func:`~segline.metrics.table.case_metrics`'s; an undefined distance
    (NaN) has the FOV diagonal of the label as ``value_for_statistics``.
    """
    label, pred = read_pair(pred_path, label_path)
    check_values(label.data, label_path, classes)
    check_values(pred.data, pred_path, classes)
    rows = case_metrics(pred.data, label.data, pred.spacing, classes, metrics=metrics)
    diagonal = fov_diagonal(label.data.shape, label.spacing)
    out = []
    for row in rows:
        value = float(row["value"])
        worst = diagonal if math.isnan(value) and is_distance(row["metric"]) else value
        out.append({"case": case, **row, "value_for_statistics": worst})
    return out


# ------------------------------------------------------------------ all cases
@dataclass
class Evaluation:
    """Per-case rows and the summary of one folder of predictions."""

    metrics: list[str]
    classes: dict[int, str]
    table: pd.DataFrame

    def _stats(self, column: str, cls: str | None, metric: str) -> Stat:
        t = self.table[self.table["metric"] == metric]
        wide = t.pivot(index="case", columns="class", values=column)
        wide = wide[[n for i, n in self.classes.items() if i != 0]]
        return Stat.of(class_mean(wide) if cls is None else wide[cls])

    def summary(self) -> dict[str, Any]:
        """Per foreground class and for the mean over classes, per metric: mean, sd, n,
        n_defined, n_undefined and mean_for_statistics (undefined as the FOV diagonal)."""

        def block(cls: str | None) -> dict[str, Any]:
            out = {}
            for m in self.metrics:
                s = self._stats("value", cls, m)
                worst = self._stats("value_for_statistics", cls, m)
                out[m] = {
                    "mean": s.mean, "sd": s.sd, "n": s.n, "n_defined": s.n - s.n_undefined,
                    "n_undefined": s.n_undefined, "mean_for_statistics": worst.mean,
                }  # fmt: skip
            return out

        return {
            "cases": int(self.table["case"].nunique()),
            "metrics": list(self.metrics),
            "classes": [
                {"index": i, "class": n, "metrics": block(n)}
                for i, n in self.classes.items()
                if i != 0
            ],
            "mean_over_classes": block(None),
        }

    def summary_json(self) -> str:
        """The summary as JSON (NaN as null, floats at full precision)."""
        return json.dumps(_no_nan(self.summary()), indent=2, sort_keys=True) + "\n"

    def summary_markdown(self) -> str:
        """The summary as a markdown table in the report's format."""
        s = self.summary()
        header = ["class", "n"] + [metric_label(m) for m in self.metrics]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        blocks = [(c["class"], c["metrics"]) for c in s["classes"]]
        if len(blocks) > 1:
            blocks.append(("mean over classes", s["mean_over_classes"]))
        for name, block in blocks:
            cells = [name, str(s["cases"])]
            for m in self.metrics:
                b = block[m]
                stat = Stat(b["mean"], b["sd"], b["n"], b["n_undefined"])
                cells.append(fmt_stat(stat, METRIC_INFO[m].digits))
            lines.append("| " + " | ".join(cells) + " |")
        distances = [m for m in self.metrics if is_distance(m)]
        note = (
            "\nmean ± sd over cases (sd: n − 1); distances in mm, undefined (exactly one "
            "mask empty) cases left out of the mean and counted. Undefined counted as the "
            "field-of-view diagonal: "
            + ", ".join(
                f"{METRIC_INFO[m].title} "
                + fmt_number(
                    s["mean_over_classes"][m]["mean_for_statistics"], METRIC_INFO[m].digits
                )
                for m in distances
            )  # fmt: skip
            + " (mean over classes).\n"
            if distances
            else "\nmean ± sd over cases (sd: n − 1).\n"
        )
        return f"# Evaluation: {s['cases']} case(s)\n\n" + "\n".join(lines) + "\n" + note


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def evaluate_folder(
    pred_dir: str | Path,
    label_dir: str | Path,
    *,
    dataset_json: str | Path | None = None,
    file_ending: str | None = None,
    metrics: Sequence[str] = TEST_METRICS,
    jobs: int = 1,
    skip: Sequence[Path] = (),
) -> Evaluation:
    """Score every prediction of ``pred_dir`` against its label in ``label_dir``.

    Args:
        pred_dir: predictions ``<case><ending>`` (uint class indices).
        label_dir: reference labels ``<case><ending>``.
        dataset_json: class names (``labels``) and the default ``file_ending``.
        file_ending: ``.nii.gz`` or ``.nii`` (default: dataset.json's, else ``.nii.gz``).
        metrics: names of :data:`segline.metrics.table.METRICS`.
        jobs: worker processes.
        skip: files never taken for inputs (outputs written into a folder).

    Raises:
        InputError: any refusal of the module docstring.
    """
    pred_dir, label_dir = Path(pred_dir), Path(label_dir)
    classes: dict[int, str] | None = None
    ending_json = None
    if dataset_json is not None:
        classes, ending_json = dataset_classes(Path(dataset_json))
    ending = file_ending or ending_json or ".nii.gz"
    if ending not in READABLE_ENDINGS:
        where = "--file-ending" if file_ending else str(dataset_json)
        readable = " or ".join(READABLE_ENDINGS)
        raise InputError(where, f"file ending {ending!r}: segline reads {readable}")
    pairs = pair_files(pred_dir, label_dir, ending, skip)
    from segline.parallel import map_cases

    if classes is None:
        found = map_cases(case_values, [(p, lab) for _, p, lab in pairs], jobs)
        values = sorted({v for vs in found for v in vs} | {0})
        classes = {v: ("background" if v == 0 else str(v)) for v in values}
    if len(classes) < 2:
        raise InputError(label_dir, "no foreground class: every label and prediction is empty")
    wanted = tuple(metrics)
    rows = map_cases(score_case, [(c, p, lab, classes, wanted) for c, p, lab in pairs], jobs)
    table = pd.DataFrame([r for case_rows in rows for r in case_rows], columns=CSV_COLUMNS)
    return Evaluation(list(metrics), classes, table)


# ------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog=prog("python -m segline.evaluate"),
        description=__doc__.split("\n")[0].rstrip(".")
        + ": the counterpart of nnUNetv2_evaluate_folder (README: Score a folder of "
        "predictions).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--pred", type=Path, required=True, help="folder of predictions <case><ending>")
    p.add_argument(
        "--labels", type=Path, required=True,
        help="folder of reference labels <case><ending> (nnU-Net: labelsTr)",
    )  # fmt: skip
    p.add_argument(
        "-j", "--dataset-json", type=Path,
        help="dataset.json: class names (labels) and file_ending (default: every value "
        "found, named by its value)",
    )  # fmt: skip
    p.add_argument(
        "--file-ending",
        help="file ending of both folders, .nii.gz or .nii (default: dataset.json's "
        "file_ending, else .nii.gz)",
    )
    p.add_argument(
        "--metrics", default=",".join(TEST_METRICS),
        help=f"comma-separated, in output order (known: {', '.join(METRICS)}); default "
        "%(default)s, the report's",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="per-case CSV to write (long format)")
    p.add_argument(
        "--summary", type=Path,
        help="summary to write: .json (machine-readable) or .md (the printed table)",
    )  # fmt: skip
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Score the folder, write ``--out`` / ``--summary`` atomically, print the summary."""
    args = build_parser().parse_args(argv)
    if args.summary is not None and args.summary.suffix not in SUMMARY_SUFFIXES:
        raise InputError(args.summary, "--summary must end in .json or .md")
    outputs = [p for p in (args.out, args.summary) if p is not None]
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise InputError(args.out, "--out and --summary name the same file")
    metrics = parse_metrics(args.metrics)
    result = evaluate_folder(
        args.pred, args.labels, dataset_json=args.dataset_json, file_ending=args.file_ending,
        metrics=metrics, jobs=args.jobs, skip=outputs,
    )  # fmt: skip
    if args.out is not None:
        atomic.write_text(args.out, csvio.csv_text(result.table))
    if args.summary is not None:
        json_out = args.summary.suffix == ".json"
        text = result.summary_json() if json_out else result.summary_markdown()
        atomic.write_text(args.summary, text)
    print(result.summary_markdown(), end="")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
