"""Apply a trained vertebra method folder to one image: :func:`predict_volume`.

Used by ``segline.predict`` for the folders written by
``python -m segline.vertebrae.train``: their ``args.json`` names the method, network
and patch, ``best.pt`` holds the weights and ``classes.json`` the label values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from segline.errors import InputError
from segline.nets import get_net
from segline.train import device as dev
from segline.train.labels import class_index
from segline.train.sliding import sliding_window_predict
from segline.vertebrae.inference import MIN_VOXELS, iterative_segment, net_step
from segline.vertebrae.postprocess import largest_component_per_class

__all__ = ["predict_volume"]


def predict_volume(
    method_dir: Path, image: np.ndarray, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Labels (Z, Y, X) of ``image`` (C, Z, Y, X, the case store's geometry) by the
    method in ``method_dir``: instance ids 1, 2, ... (iterative) or VerSe label values
    (semantic), as in its ``test/preds``. Computed on ``device`` with the training's
    ``amp`` choice and thread count (``args.json``), so on the training's device the
    labels are its ``test/preds_zyx`` ones.

    Raises:
        InputError: the folder lacks ``args.json``, ``classes.json`` or ``best.pt``,
            or is not a vertebra method's.
    """
    folder = Path(method_dir)
    for name in ("args.json", "classes.json", "best.pt"):
        if not (folder / name).is_file():
            raise InputError(folder, f"no {name}: not a trained vertebra method folder")
    args = json.loads((folder / "args.json").read_text())
    classes = json.loads((folder / "classes.json").read_text())
    method = args.get("method")
    if method not in ("iterative", "semantic"):
        raise InputError(folder / "args.json", "not a vertebra method (no 'method')")
    if image.ndim != 4:
        raise InputError(folder, f"image must be (C, Z, Y, X), got shape {image.shape}")
    n_out = 1 if method == "iterative" else len(classes["classes"]) + 1
    n_in = image.shape[0] + (1 if method == "iterative" else 0)
    dev.use_threads(dev.recorded_threads(args))  # the training's, as its test predictions
    model = get_net(args["net"], n_in, n_out, **args.get("net_kwargs", {}))
    state = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    # the training's AMP knob on this device, adjusted per net as the trainer does
    precision = dev.for_model(dev.choose(str(device), str(args.get("amp", "auto"))), model)
    model.to(precision.device).eval()
    patch = tuple(int(p) for p in args["patch"])
    volume = np.asarray(image, dtype=np.float32)
    if method == "iterative":
        labels, _ = iterative_segment(
            net_step(model, precision, (patch[1], patch[2])),
            volume,
            patch[0],
            min_voxels=MIN_VOXELS,
        )
        return labels
    probs = sliding_window_predict(
        model,
        torch.from_numpy(volume),
        patch,
        overlap=float(args.get("overlap", 0.5)),
        batch_size=int(args.get("batch_size", 2)),
        precision=precision,
    )
    pred = largest_component_per_class(class_index(probs, 0).numpy())
    lut = np.zeros(len(classes["label_values"]), dtype=np.uint8)
    for i, v in classes["label_values"].items():
        lut[int(i)] = int(v)
    return lut[pred]
