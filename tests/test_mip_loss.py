"""Tests for segline.experiments.vessels.loss: the MIP loss on hand-made volumes."""

from __future__ import annotations

import pytest
import torch

from segline.experiments.vessels.loss import MIPLoss, gather_rays
from segline.losses import CombinedLoss, get_loss, get_loss_class, loss_names, parse_spec

# (D=3, H=2, W=2) foreground probabilities; rays (h, w) look along D
P1 = torch.tensor([
    [[0.8, 0.1], [0.3, 0.6]],   # d = 0
    [[0.2, 0.5], [0.7, 0.4]],   # d = 1
    [[0.4, 0.9], [0.05, 0.25]],  # d = 2
])
DEPTH = torch.tensor([[0, 2], [1, 0]])
VALID = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
LABEL = torch.tensor([[1, 0], [1, 1]])
# valid rays: (0,0) q=0.8 t=1; (0,1) q=0.9 t=0; (1,0) q=0.7 t=1; (1,1) invalid
I, P, T = 0.8 + 0.7, 0.8 + 0.9 + 0.7, 2.0
EXPECTED = 1 - 2 * I / (P + T)  # 1 - 3.0 / 4.4


def probs_of(p1: torch.Tensor) -> torch.Tensor:
    """(D, H, W) class-1 probabilities -> (1, 2, D, H, W) two-class probabilities."""
    return torch.stack([1 - p1, p1])[None]


def batch_of(probs: torch.Tensor, label: torch.Tensor = LABEL, depth: torch.Tensor = DEPTH,
             valid: torch.Tensor = VALID) -> dict[str, torch.Tensor]:
    return {"target": torch.zeros_like(probs), "mip_label": label[None],
            "mip_depth": depth[None], "mip_valid": valid[None]}


def test_value_is_hand_computed_soft_dice() -> None:
    probs = probs_of(P1)
    loss = MIPLoss([1])(None, probs, batch_of(probs))
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(EXPECTED, abs=1e-6)
    assert float(loss) == pytest.approx(1 - 3.0 / 4.4, abs=1e-6)


def test_gradient_only_at_gathered_voxels_of_valid_rays() -> None:
    probs = probs_of(P1).requires_grad_(True)
    MIPLoss([1])(None, probs, batch_of(probs.detach())).backward()
    grad = probs.grad[0]
    s = P + T
    d_pos = -(2 * s - 2 * I) / s**2   # d loss / d q for a ray with t = 1
    d_neg = 2 * I / s**2              # for a ray with t = 0
    want = torch.zeros(2, 3, 2, 2)
    want[1, 0, 0, 0] = d_pos   # ray (0,0) at depth 0
    want[1, 2, 0, 1] = d_neg   # ray (0,1) at depth 2
    want[1, 1, 1, 0] = d_pos   # ray (1,0) at depth 1
    torch.testing.assert_close(grad, want, rtol=1e-5, atol=1e-7)
    assert float(grad[:, :, 1, 1].abs().sum()) == 0.0  # invalid ray: no gradient at all
    assert int((grad != 0).sum()) == 3


@pytest.mark.parametrize("axis", [1, 2])
def test_other_projection_axes_give_the_same_value(axis: int) -> None:
    # put the ray axis (D) at spatial position `axis`; the plane keeps (H, W) order
    p1 = P1.movedim(0, axis)
    probs = probs_of(p1)
    loss = MIPLoss([1], axis=axis)(None, probs, batch_of(probs))
    assert float(loss) == pytest.approx(EXPECTED, abs=1e-6)
    with pytest.raises(ValueError, match=r"mip_label.*expected"):
        MIPLoss([1], axis=0)(None, probs, batch_of(probs))


def test_gather_rays_picks_the_indexed_voxel() -> None:
    vol = torch.arange(24.0).reshape(1, 2, 3, 4)
    idx = torch.tensor([[[0, 1, 2, 0], [1, 1, 0, 2]]])  # (1, D=2, W=4) for axis 1
    out = gather_rays(vol, idx, 1)
    for d in range(2):
        for w in range(4):
            assert float(out[0, d, w]) == float(vol[0, d, int(idx[0, d, w]), w])


def test_batch_mean_and_empty_conventions() -> None:
    probs = torch.cat([probs_of(P1), probs_of(P1)])
    b = {"target": torch.zeros_like(probs), "mip_label": torch.stack([LABEL, LABEL]),
         "mip_depth": torch.stack([DEPTH, DEPTH]),
         "mip_valid": torch.stack([VALID, torch.zeros(2, 2)])}
    # second sample has no valid ray: dice 1 (loss 0), still counted in the mean
    assert float(MIPLoss([1])(None, probs, b)) == pytest.approx(EXPECTED / 2, abs=1e-6)
    # no foreground label and (almost) no foreground predicted on valid rays: no loss
    empty = probs_of(torch.zeros(3, 2, 2))
    bz = batch_of(empty, label=torch.zeros(2, 2, dtype=torch.long))
    assert float(MIPLoss([1])(None, empty, bz)) == pytest.approx(0.0, abs=1e-6)
    # no foreground label but foreground predicted: full loss
    full = probs_of(torch.ones(3, 2, 2))
    assert float(MIPLoss([1])(None, full, batch_of(full, label=torch.zeros(2, 2)))) == \
        pytest.approx(1.0, abs=1e-6)


def test_invalid_rays_may_hold_out_of_range_depths() -> None:
    probs = probs_of(P1)
    depth = DEPTH.clone()
    depth[1, 1] = 99  # outside the patch, but the ray is invalid
    assert float(MIPLoss([1])(None, probs, batch_of(probs, depth=depth))) == \
        pytest.approx(EXPECTED, abs=1e-6)


def test_multi_class_foreground_is_the_union_of_idc() -> None:
    p = torch.full((1, 3, 3, 2, 2), 1 / 3)
    label = torch.tensor([[2, 0], [1, 1]])
    loss = MIPLoss([1, 2])(None, p, batch_of(p, label=label))
    # q = 2/3 on every valid ray; t = 1, 0, 1 -> I = 4/3, P = 2, T = 2
    assert float(loss) == pytest.approx(1 - (8 / 3) / 4, abs=1e-6)
    only2 = MIPLoss([2])(None, p, batch_of(p, label=label))
    # q = 1/3; t = 1, 0, 0 -> I = 1/3, P = 1, T = 1
    assert float(only2) == pytest.approx(1 - (2 / 3) / 2, abs=1e-6)


def test_autocast_bf16_matches_fp32_of_the_same_inputs() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, 2, 1)
    x = torch.randn(2, 1, 3, 2, 2)
    b = {"target": torch.zeros(2, 2, 3, 2, 2), "mip_label": torch.stack([LABEL, LABEL]),
         "mip_depth": torch.stack([DEPTH, DEPTH]), "mip_valid": torch.stack([VALID, VALID])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(x)
        assert logits.dtype == torch.bfloat16
        probs = logits.softmax(1)
        loss = MIPLoss([1])(None, probs, b)
    assert loss.dtype == torch.float32
    ref = MIPLoss([1])(None, probs.detach().float(), b)
    assert float(loss.detach()) == pytest.approx(float(ref), abs=1e-6)
    loss.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert float(conv.weight.grad.abs().sum()) > 0


def test_registry_spec_and_requires() -> None:
    assert "mip" in loss_names() and get_loss_class("mip") is MIPLoss
    assert get_loss("mip", idc=[1], axis=2).axis == 2
    assert MIPLoss.default_idc(2) == [1] and MIPLoss.default_idc(3) == [1, 2]
    term = parse_spec("ce:1,dice:1,mip:0.5[axis=1]", n_classes=2)[2]
    assert (term.name, term.weight, term.idc, dict(term.options)) == ("mip", 0.5, (1,), {"axis": 1})
    crit = CombinedLoss.from_spec("ce:1,dice:1,mip:1", n_classes=2)
    assert crit.requires == {"target", "mip_label", "mip_depth", "mip_valid"}
    assert not crit.needs_dist
    with pytest.raises(ValueError, match="axis"):
        MIPLoss([1], axis=3)
    with pytest.raises(ValueError, match="smooth"):
        MIPLoss([1], smooth=0)


def test_input_checks() -> None:
    probs = probs_of(P1)
    with pytest.raises(ValueError, match="mip_valid"):
        MIPLoss([1])(None, probs, {k: v for k, v in batch_of(probs).items() if k != "mip_valid"})
    with pytest.raises(ValueError, match="axis"):
        MIPLoss([1])(None, probs, {**batch_of(probs), "mip_axis": torch.tensor([1])})
    assert float(MIPLoss([1])(None, probs, {**batch_of(probs), "mip_axis": torch.tensor([0])})) \
        == pytest.approx(EXPECTED, abs=1e-6)
    with pytest.raises(ValueError, match="integer"):
        MIPLoss([1])(None, probs, {**batch_of(probs), "mip_depth": DEPTH[None].float()})
    with pytest.raises(ValueError, match="D, H, W"):
        flat = probs[:, :, 0]
        MIPLoss([1])(None, flat, {"target": torch.zeros_like(flat), "mip_label": LABEL[None],
                                  "mip_depth": DEPTH[None], "mip_valid": VALID[None]})
    with pytest.raises(ValueError, match="out of range"):
        MIPLoss([2])(None, probs, batch_of(probs))
