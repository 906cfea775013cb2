"""The iterative method's loss (segline.experiments.vertebrae.loss) on a hand case."""

from __future__ import annotations

import math

import pytest
import torch

from segline.experiments.vertebrae.loss import IterativeLoss


def bce(logit: float, target: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(target * math.log(p) + (1.0 - target) * math.log(1.0 - p))


def test_weighted_bce_plus_completeness_by_hand() -> None:
    # one patch of 1x1x2 voxels: logits (0, 2), target (1, 0), weights (6, 1);
    # completeness logit -1 for a complete vertebra (1)
    mask = torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 1, 2)
    batch = {
        "target": torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 1, 2),
        "weight": torch.tensor([6.0, 1.0]).reshape(1, 1, 1, 1, 2),
        "complete": torch.tensor([1.0]),
    }
    loss = IterativeLoss.from_spec("wbce:1,complete:0.5")
    total, parts = loss((mask, torch.tensor([-1.0])), batch)
    mask_term = (6 * math.log(2) + 1 * bce(2.0, 0.0)) / 2  # mean over the 2 voxels
    complete_term = bce(-1.0, 1.0)
    assert float(parts["wbce"]) == pytest.approx(mask_term, rel=1e-6)
    assert float(parts["complete"]) == pytest.approx(complete_term, rel=1e-6)
    assert float(total) == pytest.approx(mask_term + 0.5 * complete_term, rel=1e-6)


@pytest.mark.parametrize("spec", ["gdl:1", "wbce:1", "wbce:-1,complete:1", "wbce:x,complete:1"])
def test_other_specs_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="wbce:A,complete:B|finite"):
        IterativeLoss.from_spec(spec)
