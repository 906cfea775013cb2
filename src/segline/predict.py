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
(:mod:`segline.predicting.labels`), and is written atomically. With several methods,
``-o`` holds one folder per method (``<out>/<method>``, ``<out>/<method>/seed<k>`` for
a seed's training). Nothing to predict (no ``infer`` case, no image in the folder)
is one line per method and exit code 0, so the other methods are still predicted.
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
from segline.predicting import inputs
from segline.predicting.infer import load_predictor, probabilities_to_source, read_args
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
    against the content digest its ``lineage.json`` recorded, when there is one."""
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
    store = CaseStore(cases)
    lineage = method / "lineage.json"
    if lineage.is_file():
        try:
            recorded = json.loads(lineage.read_text()).get("inputs", {}).get("cases")
        except (OSError, ValueError) as err:
            raise InputError(lineage, f"unreadable: {err}") from err
        if recorded and stage.content_digest(store.root) != recorded:
            raise InputError(
                store.root,
                f"not the case store {training_label(method)} was "
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


def _nothing(out: Path, store: CaseStore, method: Path, why: str) -> list[Path]:
    """Say there is nothing to predict (one line) and write the label files only."""
    print(f"{training_label(method)}: nothing to predict: {why}", flush=True)
    with atomic.atomic_dir(out) as tmp:
        write_label_files(tmp, store.dataset["labels"])
    return []


def predict_method(
    cases: Path,
    method: Path,
    out: Path,
    device: str = "auto",
    amp: str = "auto",
    naming: bool = True,
    probs: bool = False,
) -> list[Path]:
    """Write the infer-case predictions of ``method`` into ``out`` (atomic folder).

    Returns the files written (none when the store has no ``infer`` case).
    """
    store = store_of(method, cases)
    ids = store.case_ids("infer")
    if not ids:
        return _nothing(out, store, method, f"{store.root} has no unlabelled (infer) cases")
    predictor = load_predictor(method, store, device, amp)
    name_of = naming_hook(store) if naming else None
    # a seed's training (SEEDS) is named <method>-seed<k>: dots separate fields
    result = training_label(method).replace("/", "-")
    written: list[Path] = []
    with atomic.atomic_dir(out) as tmp:
        for case in ids:
            meta = store.meta(case)
            prediction = predictor.predict(np.asarray(store.image(case)))
            name = name_of(meta, result) if name_of else f"{case}.nii.gz"
            written += _write_case(tmp, out, name, case, prediction, probs, meta)
        write_label_files(tmp, predictor.label_names(store))
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


def predict_folder(
    folder: Path,
    method: Path,
    out: Path,
    cases: Path | None = None,
    device: str = "auto",
    amp: str = "auto",
    probs: bool = False,
) -> list[Path]:
    """Predict every image of ``folder`` with ``method`` into ``out`` (atomic folder),
    each in its own geometry. Returns the files written (none for an image-less folder).

    Every case is read and checked before the network is loaded, so a bad file stops
    the run before any work (and nothing is written).
    """
    store = store_of(method, cases)
    channels = [str(c) for c in store.dataset["channels"]]
    found = inputs.find_inputs(folder, len(channels))
    if not found:
        return _nothing(out, store, method, f"no NIfTI image (.nii, .nii.gz) in {folder}")
    params = inputs.params_from_store(store)
    for case in found:  # check every file first: refuse a bad folder before any work
        inputs.read_case(case, channels)
    print(
        f"{training_label(method)}: {len(found)} case(s) of {folder}, preprocessed as "
        f"{store.root} ({inputs.describe(params, channels)})",
        flush=True,
    )
    predictor = load_predictor(method, store, device, amp)
    written: list[Path] = []
    with atomic.atomic_dir(out) as tmp:
        for case, image, meta in _preprocessed(found, store):
            prediction = predictor.predict(image)
            written += _write_case(tmp, out, f"{case}.nii.gz", case, prediction, probs, meta)
        write_label_files(tmp, predictor.label_names(store))
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
        help="output folder: one sub-folder per method, <output>/<method> "
        "(<output>/<method>/seed<k> for a seed's training)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="exact output folder of a single method (instead of -o)",
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
    if args.out is not None and len(args.method) > 1:
        p.error("--out takes one method; use -o/--output for several")
    for method in args.method:
        out = args.out or args.output / training_label(method)
        if args.input is not None:
            predict_folder(args.input, method, out, args.cases, args.device, args.amp, args.probs)
        else:
            predict_method(
                args.cases,
                method,
                out,
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
