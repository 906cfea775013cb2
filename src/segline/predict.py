"""Predict with a trained method's best model: the store's unlabelled cases, or any folder.

Two sources of images, one network path (:mod:`segline.predicting`):

* ``python -m segline.predict --cases data/isles/cases --method results/isles/gdl
  --out results/isles/predict/gdl`` (make target ``predict``): every case of the
  store's ``infer`` split, already preprocessed by the slicing stage;
* ``segline-predict -i <folder> -o <out> -m results/<ds>/<method> [-m ...]`` (make
  ``predict INPUT=<folder> OUTPUT=<out>``): every NIfTI image of a folder (nnU-Net
  channel files ``<case>_0000.nii.gz`` ... or one 3D/4D file per case), preprocessed
  with the parameters the case store recorded (:mod:`segline.predicting.inputs`).
  The case store is the one named in the method's ``args.json`` unless ``--cases``
  gives it; it must be the store the method was trained on (content digest in the
  method's ``lineage.json``).

``best.pt`` and the network settings come from the method's ``args.json``. Each
prediction is written in its image's own geometry (source affine and shape) as
``<case>.nii.gz`` (uint8 class indices), or, for the store's cases, the name the data
set's challenge expects when its adapter module defines ``submission_name(meta,
method_name) -> str`` (ISLES does: ``SMIR.<method>.<id>.nii``). ``--probs`` adds
``<case>_probs.nii.gz``: float32 4D (X, Y, Z, K), the softmax probability of each
class (classes last, in the order of ``labels.txt``), resampled back linearly (they
sum to 1 in every voxel). The labels are the argmax of those probabilities (the
class of highest probability, ties to the lower class), with or without ``--probs``,
so the two files agree in every voxel. Every output folder also gets ``labels.txt`` (ITK-SNAP
label descriptions) and ``labels.ctbl`` (3D Slicer colour table)
(:mod:`segline.predicting.labels`), and is written atomically. A predictor that
describes each prediction in a table (``last_table``: the vertebra methods'
``instances.csv``, :mod:`segline.experiments.vertebrae.instances`) has it written
there too, one row per case and instance.

``-o`` is a folder segline owns (:mod:`segline.predicting.output`): new, empty or one
it wrote before (its record ``.segline-predictions`` lists every file it wrote there),
outside the project's ``results/`` and ``data/``, apart from every input; each method
writes its own sub-folder, named by the method folder's path below ``results/<ds>/``
(``gdl``, ``r2.gdl``, ``seeds.gdl.seed0``), replaced only when it holds nothing but
segline's files. All of it, and every image, is checked before anything is written;
a refusal is one line. ``--out`` is make's own folder of one method's predictions of
the store's unlabelled cases (``results/<ds>/predict/<method>``), nothing else.
Nothing to predict (no ``infer`` case, no image in the folder) is one line per method
and exit code 0, so the other methods are still predicted.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segline import atomic, stage
from segline.casestore import CaseStore
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.predicting import inputs, output
from segline.predicting.infer import (
    fold_trainings,
    load_predictor,
    probabilities_to_source,
    read_args,
)
from segline.predicting.labels import write_label_files
from segline.preprocess.geometry import to_source, write_nifti_like
from segline.seeds import training_label

PROBS_SUFFIX = "_probs.nii.gz"


def naming_hook(store: CaseStore) -> Callable[[dict[str, Any], str], str] | None:
    """The adapter's ``submission_name`` function, if its module has one."""
    source = store.dataset.get("source")
    if not isinstance(source, str) or not source.isidentifier():
        return None
    try:
        module = importlib.import_module(f"segline.datasets.{source}")
    except ImportError:
        return None
    return getattr(module, "submission_name", None)


def store_of(method: Path, cases: Path | None = None) -> CaseStore:
    """The case store of ``method``: ``cases`` if given, else the one its ``args.json``
    names (relative to the working folder or to a folder above the method's), checked
    against the content digest its ``lineage.json`` recorded, when there is one (a
    cross-validated method: each fold's). A fold training (``args.json`` ``fold``)
    gets the store opened on its fold, so its ``test`` cases are the ones it held out."""
    args = read_args(method)
    if cases is None:
        named = Path(str(args.get("cases", "")))
        tries = (
            [named]
            if named.is_absolute()
            else [named, *(up / named for up in method.resolve().parents)]
        )
        found = next((p for p in tries if str(named) and (p / "split.json").is_file()), None)
        if found is None:
            raise InputError(
                method / "args.json",
                f"its case store {str(named)!r} is not found; give it with --cases",
            )
        cases = found
    # a fold training sees its fold's split (its test cases: the evaluation stage); a
    # cross-validated method's ensemble the store's own (infer is the same in every fold)
    ensemble = fold_trainings(method)
    fold = args.get("fold") if not ensemble else None
    store = CaseStore(cases, fold=fold if isinstance(fold, int) else None)
    for training in ensemble or [method]:  # a cross-validation: every fold
        lineage = training / "lineage.json"
        if not lineage.is_file():
            continue
        try:
            recorded = json.loads(lineage.read_text()).get("inputs", {}).get("cases")
        except (OSError, ValueError) as err:
            raise InputError(lineage, f"unreadable: {err}") from err
        if recorded and stage.content_digest(store.root) != recorded:
            raise InputError(
                store.root,
                f"not the case store {training_label(training)} was "
                "trained on (content digest differs from its lineage.json); "
                "predict with that store or train the method again",
            )
    return store


def _write_case(
    tmp: Path,
    out: Path,
    name: str,
    case: str,
    prediction: tuple[np.ndarray, np.ndarray | None],
    keep: bool,
    meta: dict[str, Any],
) -> list[Path]:
    """Write one case's labels (and, with ``keep``, probabilities) into ``tmp``.

    ``prediction`` is (labels, probabilities) on the stored grid. The labels written
    are the argmax of the probabilities mapped back to the source grid (each class
    resampled linearly), so they agree with the probability file voxel for voxel; a
    method without probabilities (instance maps of the vertebra methods) has its
    labels mapped back as they are. Returns the final paths.
    """
    labels_zyx, probs = prediction
    written = [out / name]
    shown = f"{case} -> {out / name}"
    if probs is None:
        write_nifti_like(to_source(labels_zyx, meta), meta, tmp / name)
        print(shown + (" (no probabilities: instance labels)" if keep else ""), flush=True)
        return written
    if keep:
        pname = f"{case}{PROBS_SUFFIX}"
        source = probabilities_to_source(probs, meta)
        labels = source.argmax(axis=-1).astype(np.uint8)
        write_nifti_like(source, meta, tmp / pname)
        written.append(out / pname)
        shown += f" (+ {pname})"
    else:
        labels = to_source(probs, meta)  # the same argmax, one class at a time
    write_nifti_like(labels, meta, tmp / name)
    print(shown, flush=True)
    return written


def _describe(predictor: Any, case: str, tables: dict[str, Any]) -> None:
    """Add the rows describing ``predictor``'s last prediction (its ``last_table``:
    (file name, columns, rows), as the vertebra predictors keep it) to ``tables``
    (file name -> (columns, rows)), each row with its ``case``."""
    last = getattr(predictor, "last_table", None)
    if last is None:
        return
    name, columns, rows = last
    tables.setdefault(name, (tuple(columns), []))[1].extend({"case": case, **r} for r in rows)


def _write_tables(tmp: Path, out: Path, tables: dict[str, Any]) -> list[Path]:
    """Write each table of ``tables`` (:func:`_describe`) as CSV into ``tmp``; returns
    the final paths (in ``out``)."""
    import pandas as pd

    from segline.csvio import csv_text

    for name, (columns, rows) in tables.items():
        atomic.write_text(tmp / name, csv_text(pd.DataFrame(rows, columns=list(columns))))
    return [out / name for name in tables]


def _nothing(tmp: Path, store: CaseStore, method: Path, why: str) -> list[Path]:
    """Say there is nothing to predict (one line) and write the label files only."""
    print(f"{training_label(method)}: nothing to predict: {why}", flush=True)
    write_label_files(tmp, store.dataset["labels"])
    return []


def write_store_cases(
    tmp: Path,
    out: Path,
    method: Path,
    store: CaseStore,
    device: str = "auto",
    amp: str = "auto",
    naming: bool = True,
    probs: bool = False,
) -> list[Path]:
    """Write the infer-case predictions of ``method`` into the folder ``tmp``, which
    becomes ``out`` (the paths returned and shown). Returns the files written (none
    when the store has no ``infer`` case: the label files only)."""
    ids = store.case_ids("infer")
    if not ids:
        return _nothing(tmp, store, method, f"{store.root} has no unlabelled (infer) cases")
    predictor = load_predictor(method, store, device, amp)
    name_of = naming_hook(store) if naming else None
    # a seed's training (SEEDS) is named <method>-seed<k>: dots separate fields
    result = training_label(method).replace("/", "-")
    written: list[Path] = []
    tables: dict[str, Any] = {}
    for case in ids:
        meta = store.meta(case)
        prediction = predictor.predict(np.asarray(store.image(case)))
        _describe(predictor, case, tables)
        name = name_of(meta, result) if name_of else f"{case}.nii.gz"
        written += _write_case(tmp, out, name, case, prediction, probs, meta)
    write_label_files(tmp, predictor.label_names(store))
    return written + _write_tables(tmp, out, tables)


def predict_method(
    cases: Path | None,
    method: Path,
    out: Path,
    device: str = "auto",
    amp: str = "auto",
    naming: bool = True,
    probs: bool = False,
) -> list[Path]:
    """Write the infer-case predictions of ``method`` into ``out`` (atomic folder,
    replaced as a whole: ``out`` must be apart from the method and its case store).

    Returns the files written (none when the store has no ``infer`` case).
    """
    store = store_of(method, cases)
    output.check_apart(out, [("method", method), ("case store", store.root)])
    with atomic.atomic_dir(out) as tmp:
        written = write_store_cases(tmp, out, method, store, device, amp, naming, probs)
    return written


def _preprocessed(
    found: list[inputs.InputCase], store: CaseStore
) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    params = inputs.params_from_store(store)
    channels = [str(c) for c in store.dataset["channels"]]
    for case in found:
        record = inputs.read_case(case, channels)
        image, meta = inputs.preprocess(record, store, params)
        yield case.case_id, image, meta


def check_folder(folder: Path, store: CaseStore) -> list[inputs.InputCase]:
    """The cases of ``folder``, every file read and checked against ``store``'s
    channels, so a bad file stops the run before any work (and nothing is written)."""
    channels = [str(c) for c in store.dataset["channels"]]
    found = inputs.find_inputs(folder, len(channels))
    for case in found:
        inputs.read_case(case, channels)
    return found


def write_folder_cases(
    tmp: Path,
    out: Path,
    folder: Path,
    found: list[inputs.InputCase],
    method: Path,
    store: CaseStore,
    device: str = "auto",
    amp: str = "auto",
    probs: bool = False,
) -> list[Path]:
    """Predict the checked cases ``found`` of ``folder`` (:func:`check_folder`) with
    ``method`` into the folder ``tmp``, which becomes ``out``, each in its own
    geometry. Returns the files written (none for an image-less folder)."""
    if not found:
        return _nothing(tmp, store, method, f"no NIfTI image (.nii, .nii.gz) in {folder}")
    channels = [str(c) for c in store.dataset["channels"]]
    print(
        f"{training_label(method)}: {len(found)} case(s) of {folder}, preprocessed as "
        f"{store.root} ({inputs.describe(inputs.params_from_store(store), channels)})",
        flush=True,
    )
    predictor = load_predictor(method, store, device, amp)
    written: list[Path] = []
    tables: dict[str, Any] = {}
    for case, image, meta in _preprocessed(found, store):
        prediction = predictor.predict(image)
        _describe(predictor, case, tables)
        written += _write_case(tmp, out, f"{case}.nii.gz", case, prediction, probs, meta)
    write_label_files(tmp, predictor.label_names(store))
    return written + _write_tables(tmp, out, tables)


def predict_folder(
    folder: Path,
    method: Path,
    out: Path,
    cases: Path | None = None,
    device: str = "auto",
    amp: str = "auto",
    probs: bool = False,
) -> list[Path]:
    """Predict every image of ``folder`` with ``method`` into ``out`` (atomic folder,
    replaced as a whole: ``out`` must be apart from the image folder, the method and
    its case store), each in its own geometry. Returns the files written (none for an
    image-less folder).

    Every case is read and checked before the network is loaded, so a bad file stops
    the run before any work (and nothing is written).
    """
    store = store_of(method, cases)
    found = check_folder(folder, store)
    output.check_apart(
        out, [("input folder", folder), ("method", method), ("case store", store.root)]
    )
    with atomic.atomic_dir(out) as tmp:
        written = write_folder_cases(tmp, out, folder, found, method, store, device, amp, probs)
    return written


def predict_into(
    out: Path,
    methods: Sequence[Path],
    folder: Path | None = None,
    cases: Path | None = None,
    device: str = "auto",
    amp: str = "auto",
    naming: bool = True,
    probs: bool = False,
) -> dict[str, list[Path]]:
    """Predict ``folder``'s images (None: each store's unlabelled cases) with every
    method into its own sub-folder of ``out``, a folder segline owns
    (:mod:`segline.predicting.output`). Returns {sub-folder: files written}.

    Everything is checked before anything is written: the methods and their case
    stores, the sub-folder names, ``out`` (new, empty or marked; outside the project's
    results/ and data/; apart from every input) and every image of ``folder``.
    """
    stores = [store_of(m, cases) for m in methods]
    names = output.subfolders(methods)
    watched: list[output.Watched] = [("input folder", folder)] if folder is not None else []
    watched += [("method", m) for m in methods]
    watched += [("case store", s.root) for s in stores]
    output.check_output(out, names, methods, watched)
    found = [check_folder(folder, s) if folder is not None else [] for s in stores]
    written: dict[str, list[Path]] = {}
    with output.PredictionFolder.open(out, names, methods, watched) as owned:
        for method, store, name, cases_found in zip(methods, stores, names, found, strict=True):
            final = out / name
            with owned.replace(name, method) as tmp:
                if folder is not None:
                    files = write_folder_cases(
                        tmp, final, folder, cases_found, method, store, device, amp, probs
                    )
                else:
                    files = write_store_cases(tmp, final, method, store, device, amp, naming, probs)
            written[name] = files
    return written


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``segline-predict`` / ``python -m segline.predict``."""
    p = argparse.ArgumentParser(
        prog=prog("python -m segline.predict"),
        description="Predict a folder of NIfTI images (-i), or a case store's unlabelled "
        "cases, with trained methods; predictions in each image's own geometry.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "-m",
        "--method",
        required=True,
        type=Path,
        action="append",
        help="trained method folder (results/<ds>/<method>, with best.pt and "
        "args.json); repeat for several methods",
    )
    p.add_argument(
        "-i",
        "--input",
        type=Path,
        default=None,
        help="folder of NIfTI images to predict (<case>_0000.nii.gz ... per "
        "channel, or one 3D/4D <case>.nii.gz per case); without it: the case "
        "store's unlabelled (infer) cases",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="output folder, new, empty or one segline-predict wrote (it holds "
        f"{output.MARKER}), outside the project's results/ and data/ and apart from "
        "every input: one sub-folder per method, named by the method folder's path "
        "below results/<ds>/ with '.' for '/' (gdl, r2.gdl, seeds.gdl.seed0)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="make's own folder of one method's predictions of the store's "
        "unlabelled cases, inside the predict/ folder beside the method "
        "(results/<ds>/predict/<method>); replaced as a whole (instead of -o)",
    )
    p.add_argument(
        "--cases",
        type=Path,
        default=None,
        help="the case store the method was trained on; None: the one named in "
        "the method's args.json",
    )
    p.add_argument(
        "--probs",
        action="store_true",
        help="also write <case>_probs.nii.gz: float32 softmax probabilities, 4D (X, Y, Z, classes)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "off", "bf16", "fp16"],
        help="mixed precision of the forward passes",
    )
    p.add_argument(
        "--plain-names",
        action="store_true",
        help="store cases: <case_id>.nii.gz instead of challenge names",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if (args.out is None) == (args.output is None):
        p.error("give exactly one of -o/--output and --out")
    if args.out is None:
        predict_into(
            args.output,
            args.method,
            args.input,
            args.cases,
            args.device,
            args.amp,
            naming=not args.plain_names,
            probs=args.probs,
        )
        return 0
    if len(args.method) > 1:
        p.error("--out takes one method; use -o/--output for several")
    if args.input is not None:
        p.error(
            "-i/--input writes to -o/--output (a folder of its own); --out is make's "
            "folder of the store's unlabelled cases"
        )
    (method,) = args.method
    output.check_store_folder(args.out, method, store_of(method, args.cases).root)
    predict_method(
        args.cases,
        method,
        args.out,
        args.device,
        args.amp,
        naming=not args.plain_names,
        probs=args.probs,
    )
    return 0


#: Console script ``segline-predict`` (pyproject.toml ``[project.scripts]``).
cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
