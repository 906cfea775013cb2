"""Whole-case evaluation pieces of the trainer: metric rows and validation losses.

Images become labels in one place, the predictor of
:mod:`segline.predicting.infer` (:meth:`segline.train.loop.Trainer._model_predictor`),
for the test cases and a 3D network's validation cases; :func:`volume_loss` is the
validation loss of a 3D network from its stitched probabilities. The validation of a
2D network is the exception, :func:`predict_cases`: its loss is a mean over slice
batches that run across consecutive cases, so it keeps its own loop over the same
forward pass.

Slice predictions of a case are reassembled into its (Z, Y, X) volume so that
metrics are computed per case in 3D with the case's physical spacing (mm), as the
EBP reference implementation does for its 3D reconstruction — not averaged over
slices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from segline.casestore import CaseStore
from segline.data.patches import BatchInputs
from segline.data.slices import SliceDataset, one_hot, pad_collate
from segline.metrics.table import case_metrics
from segline.train.device import Precision
from segline.train.labels import class_index


def predict_cases(
    model: torch.nn.Module,
    store: CaseStore,
    case_ids: list[str],
    precision: Precision,
    *,
    batch_size: int,
    context: int = 0,
    dist_kind: str | None = None,
    with_label: bool = True,
    loss_fn: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor] | None = None,
    weight_map: tuple[float, float] | None = None,
) -> Iterator[tuple[str, np.ndarray, tuple[float, int]]]:
    """Yield ``(case_id, predicted labels (Z, Y, X) uint8, (loss sum, n slices))`` per case.

    The validation of a 2D network (the trainer's other predictions go through its
    predictor, :mod:`segline.predicting.infer`). Slices are visited in (case, z)
    order, ``batch_size`` per forward pass across case boundaries (a batch of slices of
    different in-plane sizes zero-padded, :func:`segline.data.slices.pad_collate`).
    With ``loss_fn``, each batch's mean loss times its size is added to the case that
    finishes the batch, so the sums over all cases give the exact mean loss over
    slices (per-case values are approximate when a batch straddles two cases).
    """
    model.eval()
    ds = SliceDataset(
        store,
        case_ids,
        dist_kind=dist_kind if loss_fn else None,
        context=context,
        with_label=with_label and loss_fn is not None,
        weight_map=weight_map if loss_fn else None,
    )
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=pad_collate,
        pin_memory=precision.device.type == "cuda",
    )
    device = precision.device
    current: str | None = None
    volume: torch.Tensor | None = None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    loss_n = 0

    def finish() -> tuple[str, np.ndarray, tuple[float, int]]:
        # the one host synchronisation per case: its labels and its loss sum
        assert current is not None and volume is not None
        return current, volume.cpu().numpy(), (float(loss_sum), loss_n)

    with torch.inference_mode():
        for batch in loader:
            image = batch["image"].to(device, non_blocking=True)
            if precision.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with precision.autocast():
                logits = model(image)
            logits = logits.float()
            loss_val = None
            if loss_fn is not None:
                dev_batch = {
                    k: v.to(device, non_blocking=True)
                    for k, v in batch.items()
                    if isinstance(v, torch.Tensor)
                }
                loss_val = loss_fn(logits, dev_batch).detach().double()
            pred = class_index(logits).to(torch.uint8)
            for b, (case, z) in enumerate(zip(batch["case"], batch["z"], strict=True)):
                if case != current:
                    if current is not None:
                        yield finish()
                    current = case
                    shape = tuple(int(v) for v in store.meta(case)["shape"])
                    volume = torch.zeros(shape, dtype=torch.uint8, device=device)
                    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
                    loss_n = 0
                assert volume is not None
                h, w = volume.shape[1:]
                volume[int(z)] = pred[b, :h, :w]
            if loss_val is not None:
                loss_sum = loss_sum + loss_val * len(batch["case"])
                loss_n += len(batch["case"])
    if current is not None:
        yield finish()


def metric_rows(
    store: CaseStore, case: str, pred: np.ndarray, metrics: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Long-format metric rows (class, metric, value) of one predicted case."""
    gt = np.asarray(store.label(case))
    spacing = tuple(float(s) for s in store.meta(case)["spacing"])
    names = {int(k): v for k, v in store.dataset["labels"].items()}
    return case_metrics(pred, gt, spacing, names, metrics=metrics)


def volume_batch(
    store: CaseStore,
    case: str,
    needs: frozenset[str],
    *,
    dist_kind: str | None = "3d",
    inputs: BatchInputs | None = None,
) -> dict[str, Any]:
    """A batch of one whole case (B = 1) for a validation loss of a 3D network.

    Holds the one-hot true label, a mask of ones, the 3D distance maps and the
    (z, y, x) spacing in mm when a loss needs them, and the keys of a trainer's extra
    ``inputs`` (:class:`segline.data.patches.BatchInputs`) for the whole volume when a
    loss needs one of them: arrays with a batch dimension added, integers as int64
    tensors (1,).
    """
    label = np.asarray(store.label(case))
    batch: dict[str, Any] = {
        "target": torch.from_numpy(one_hot(label, store.n_classes))[None],
        "mask": torch.ones(1, *label.shape),
    }
    if "spacing" in needs:
        spacing = [float(s) for s in store.meta(case)["spacing"]]
        batch["spacing"] = torch.tensor([spacing], dtype=torch.float32)  # (1, 3) mm
    if "dist" in needs and dist_kind:
        batch["dist"] = torch.from_numpy(np.array(store.dist(case, dist_kind)))[None]
    if inputs is not None and needs & inputs.keys:
        for key, value in inputs.window(case, (0, 0, 0), label.shape, label.shape).items():
            if isinstance(value, np.ndarray):
                batch[key] = torch.from_numpy(value)[None]
            else:
                batch[key] = torch.tensor([value], dtype=torch.int64)
    return batch


def volume_loss(
    probs: np.ndarray,
    batch: dict[str, Any],
    loss_fn: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor],
    device: torch.device,
) -> float:
    """The validation loss of one whole case of a 3D network: ``loss_fn`` of the log
    of its stitched probabilities (K, Z, Y, X) (floored at 1e-12, so the softmax of
    the loss's input gives them back) against ``batch`` (:func:`volume_batch`), on
    ``device``."""
    with torch.inference_mode():
        on_device = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
        }
        logits = torch.from_numpy(probs).to(device).clamp_min(1e-12).log()[None]
        return float(loss_fn(logits, on_device))
