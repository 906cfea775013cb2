"""Whole-case evaluation of a 2D network: slices in, 3D volumes and metrics out.

Slice predictions of a case are reassembled into its (Z, Y, X) volume so that
metrics are computed per case in 3D with the case's physical spacing (mm), as the
EBP seed does for its 3D reconstruction — not averaged over slices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from segline.casestore import CaseStore
from segline.data.slices import SliceDataset, pad_collate
from segline.metrics.table import case_metrics
from segline.train.device import Precision


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
) -> Iterator[tuple[str, np.ndarray, tuple[float, int]]]:
    """Yield ``(case_id, predicted labels (Z, Y, X) uint8, (loss sum, n slices))`` per case.

    Slices are visited in (case, z) order. With ``loss_fn``, each batch's mean loss
    times its size is added to the case that finishes the batch, so the sums over all
    cases give the exact mean loss over slices (per-case values are approximate when
    a batch straddles two cases).
    """
    model.eval()
    ds = SliceDataset(
        store,
        case_ids,
        dist_kind=dist_kind if loss_fn else None,
        context=context,
        with_label=with_label and loss_fn is not None,
    )
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=pad_collate)
    current: str | None = None
    volume: np.ndarray | None = None
    loss_sum, loss_n = 0.0, 0

    def finish() -> tuple[str, np.ndarray, tuple[float, int]]:
        assert current is not None and volume is not None
        return current, volume, (loss_sum, loss_n)

    with torch.inference_mode():
        for batch in loader:
            image = batch["image"].to(precision.device, non_blocking=True)
            if precision.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with precision.autocast():
                logits = model(image)
            logits = logits.float()
            if loss_fn is not None:
                dev_batch = {
                    k: v.to(precision.device)
                    for k, v in batch.items()
                    if isinstance(v, torch.Tensor)
                }
                loss_val = float(loss_fn(logits, dev_batch))
            pred = logits.argmax(1).to(torch.uint8).cpu().numpy()
            for b, (case, z) in enumerate(zip(batch["case"], batch["z"], strict=True)):
                if case != current:
                    if current is not None:
                        yield finish()
                    current = case
                    shape = store.meta(case)["shape"]
                    volume = np.zeros(shape, dtype=np.uint8)
                    loss_sum, loss_n = 0.0, 0
                assert volume is not None
                h, w = volume.shape[1:]
                volume[z] = pred[b, :h, :w]
            if loss_fn is not None:
                loss_sum += loss_val * len(batch["case"])
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
