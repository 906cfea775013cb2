"""EBP's OHEM mean squared error: per-sample MSE, mean of the hardest ceil(keep·B)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segline.experiments.ebp.loss import OhemMSE


def _four() -> tuple[torch.Tensor, torch.Tensor]:
    """pred (4, 2, 2) all 1; targets giving per-sample MSEs 1, 2, 9, 0.25."""
    pred = torch.ones(4, 2, 2)
    target = torch.ones(4, 2, 2)
    target[0] += 1.0  # every error 1 → 1
    target[1] = torch.tensor([[3.0, 3.0], [1.0, 1.0]])  # (4 + 4) / 4 → 2
    target[2] -= 3.0  # every error 9 → 9
    target[3, 0, 0] = 2.0  # one error 1 of 4 → 0.25
    return pred, target


def test_ohem_averages_the_three_hardest_of_four() -> None:
    pred, target = _four()
    loss, values = OhemMSE()(pred, target)  # keep 0.7: ceil(2.8) = 3
    assert float(loss) == pytest.approx((9 + 2 + 1) / 3)
    assert set(values) == {"ohem_mse"}
    assert torch.equal(values["ohem_mse"], loss.detach())
    assert not values["ohem_mse"].requires_grad
    half, _ = OhemMSE(keep=0.5)(pred, target)
    assert float(half) == pytest.approx((9 + 2) / 2)


def test_keep_one_is_plain_mse() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(5, 16, 16, generator=gen), torch.randn(5, 16, 16, generator=gen)
    loss, _ = OhemMSE(keep=1.0)(pred, target)
    assert float(loss) == pytest.approx(float(F.mse_loss(pred, target)), rel=1e-6)


def test_gradient_only_through_the_kept_samples() -> None:
    pred, target = _four()
    pred.requires_grad_(True)
    loss, _ = OhemMSE()(pred, target)
    loss.backward()
    assert pred.grad is not None
    assert torch.equal(pred.grad[3], torch.zeros(2, 2))  # the easiest sample: dropped
    # d/dpred of mean over 3 samples of mean over 4 pixels of (pred - target)²
    expected = 2 * (pred.detach() - target)[:3] / (3 * 4)
    assert torch.allclose(pred.grad[:3], expected)


@pytest.mark.parametrize(
    ("keep", "batch", "kept"),
    [(0.7, 4, 3), (0.7, 10, 7), (0.7, 30, 21), (0.7, 1, 1), (0.5, 4, 2), (1.0, 7, 7),
     (0.01, 3, 1)],
)
def test_kept_count_is_the_ceiling(keep: float, batch: int, kept: int) -> None:
    assert OhemMSE(keep).kept(batch) == kept


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5, math.nan])
def test_keep_outside_unit_interval_refused(keep: float) -> None:
    with pytest.raises(ValueError, match=r"OHEM keep must be in \(0, 1\]"):
        OhemMSE(keep)


def test_interface_of_a_training_loss() -> None:
    loss = OhemMSE()
    assert loss.requires == frozenset({"target"})
    assert loss.needs_dist is False
    assert math.isnan(loss.alpha_at(0)) and math.isnan(loss.alpha_at(7))


def test_bad_shapes_refused() -> None:
    with pytest.raises(ValueError, match=r"OhemMSE needs pred and target of one shape"):
        OhemMSE()(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        OhemMSE()(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


def test_reduction_in_float32_under_autocast() -> None:
    pred, target = _four()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = OhemMSE()(pred.bfloat16(), target)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(4.0)
