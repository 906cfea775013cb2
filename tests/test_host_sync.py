"""No host synchronisation per batch in the training loop (a GPU would wait on it).

On a GPU every ``float(tensor)``, ``.item()``, ``.cpu()`` or ``bool(tensor)`` makes the
host wait for the device. The CPU proxy: count those calls made by segline's own code
(the optimiser's reads of its step counter, a CPU tensor, are not syncs) while the
trainer runs an epoch of 2 batches and one of 6; the count must not grow with the
batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import segline
from segline.train import device as dev
from segline.train.loop import TrainConfig, Trainer

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")
SEGLINE = str(Path(segline.__file__).parent)


def _trainer(store, tmp_path: Path, **kw) -> Trainer:
    cases, dist = store
    cfg = TrainConfig(
        cases=str(cases),
        dist=str(dist),
        out=str(tmp_path / "gdl_boundary"),
        net="Dimwit",
        batch_size=2,
        losses="gdl:1,boundary:0.01[schedule=rebalance]",
        **kw,
    )
    return Trainer(cfg, dev.choose("cpu", cfg.amp if cfg.amp != "auto" else "off"), [])


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts = dict.fromkeys(READS, 0)
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _orig=original, **k):
            if sys._getframe(1).f_code.co_filename.startswith(SEGLINE):
                counts[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_reads_per_epoch_do_not_grow_with_batches(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(store, tmp_path)
    batches = list(trainer._train_loader(trainer._train_dataset(), 1))
    assert len(batches) >= 6
    totals = []
    for n in (2, 6):
        with monkeypatch.context() as m:
            counts = _count_reads(m)
            loss, dice = trainer._train_epoch(1, batches[:n])
        totals.append(sum(counts.values()))
        assert loss > 0 and 0 <= dice <= 1
    assert totals[0] == totals[1], totals
    assert totals[1] <= 3, totals  # the epoch's loss and Dice: read once each


def test_fp16_trains_with_a_grad_scaler(store, tmp_path: Path) -> None:
    trainer = _trainer(store, tmp_path, amp="fp16")
    assert trainer.precision.amp_dtype is torch.float16 and trainer.scaler.is_enabled()
    batches = list(trainer._train_loader(trainer._train_dataset(), 1))[:2]
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss, _ = trainer._train_epoch(1, batches)
    assert loss == loss and loss > 0  # finite
    # the loss went through the scaler: its scale exists and is fp16's starting 2^16
    # (or half of it after a step it skipped for an overflow)
    assert trainer.scaler.get_scale() in (2.0**16, 2.0**15)
    changed = [
        not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True)
    ]
    assert any(changed), "the optimiser stepped through the scaler"
    assert "scale" in trainer.scaler.state_dict()


def test_bf16_and_fp32_need_no_scaler(store, tmp_path: Path) -> None:
    for amp in ("bf16", "off"):
        trainer = _trainer(store, tmp_path / amp, amp=amp)
        assert not trainer.scaler.is_enabled()
