"""Predict the unlabelled (``infer``) cases with a trained method's best model.

``python -m segline.predict --cases data/isles/cases --method results/isles/gdl
--out results/isles/predict/gdl`` loads ``best.pt`` and the network settings from the
method's ``args.json``, predicts every case of the store's ``infer`` split and writes
each as NIfTI in the case's source geometry. File names: ``<case_id>.nii.gz``, or
the name the data set's challenge expects when its adapter module defines
``submission_name(meta, method_name) -> str`` (ISLES does: ``SMIR.<method>.<id>.nii``).
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from segline import atomic
from segline.casestore import CaseStore
from segline.errors import InputError
from segline.nets import get_net
from segline.preprocess.geometry import to_source, write_nifti_like
from segline.seeds import training_label
from segline.train import device as dev
from segline.train.evaluate import predict_cases, predict_cases_3d


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


def predict_method(
    cases: Path,
    method: Path,
    out: Path,
    device: str = "auto",
    amp: str = "auto",
    naming: bool = True,
) -> list[Path]:
    """Write the infer-case predictions of ``method`` into ``out`` (atomic folder)."""
    for need in ("best.pt", "args.json"):
        if not (method / need).is_file():
            raise InputError(method / need, "missing: train the method first")
    args = json.loads((method / "args.json").read_text())
    store = CaseStore(cases)
    ids = store.case_ids("infer")
    if not ids:
        raise InputError(cases / "split.json", "no unlabelled (infer) cases to predict")
    precision = dev.choose(device, amp)
    in_ch = store.n_channels * (2 * int(args.get("context", 0)) + 1)
    model = get_net(args["net"], in_ch, store.n_classes, **args.get("net_kwargs", {}))
    model.load_state_dict(torch.load(method / "best.pt", map_location="cpu", weights_only=True))
    model = model.to(precision.device)
    precision = dev.for_model(precision, model)
    dims = int(getattr(model, "dims", 2))
    model = model.to(memory_format=precision.memory_format(dims))
    if dims == 3:
        predictions = predict_cases_3d(
            model,
            store,
            ids,
            precision,
            patch_size=args["patch"],
            overlap=float(args.get("overlap", 0.5)),
            batch_size=int(args["batch_size"]),
        )
    else:
        predictions = predict_cases(
            model,
            store,
            ids,
            precision,
            batch_size=int(args["batch_size"]),
            context=int(args.get("context", 0)),
            with_label=False,
        )
    name_of = naming_hook(store) if naming else None
    written: list[Path] = []
    with atomic.atomic_dir(out) as tmp:
        for case, pred, _ in predictions:
            meta = store.meta(case)
            # a seed's training (SEEDS) is named <method>-seed<k>: dots separate fields
            result = training_label(method).replace("/", "-")
            name = name_of(meta, result) if name_of else f"{case}.nii.gz"
            write_nifti_like(to_source(pred, meta), meta, tmp / name)
            written.append(out / name)
            print(f"{case} -> {out / name}", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m segline.predict", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cases", required=True, type=Path)
    p.add_argument("--method", required=True, type=Path, help="trained method folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"])
    p.add_argument(
        "--plain-names", action="store_true", help="<case_id>.nii.gz instead of challenge names"
    )
    args = p.parse_args(argv)
    predict_method(
        args.cases, args.method, args.out, args.device, args.amp, naming=not args.plain_names
    )
    return 0


if __name__ == "__main__":
    from segline.cli import entry

    entry(main)
