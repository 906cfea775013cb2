"""Tests for segline.losses: each loss on hand-made cases with hand-computed values."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from segline.losses import (
    CombinedLoss,
    SegLoss,
    get_loss,
    get_loss_class,
    loss_names,
    register_loss,
)
from segline.losses.boundary import Boundary
from segline.losses.crossentropy import CrossEntropy
from segline.losses.dice import Dice, GeneralizedDice
from segline.losses.focal import Focal
from segline.losses.hausdorff import HausdorffDT, HausdorffGT


def one_hot(labels: list[list[int]] | torch.Tensor, k: int = 2) -> torch.Tensor:
    """(B, *spatial) class indices -> (B, K, *spatial) float one-hot."""
    lab = torch.as_tensor(labels).long()
    return F.one_hot(lab, k).movedim(-1, 1).float()


def row(values: list[float]) -> torch.Tensor:
    """Two-class (1, 2, 1, N) probabilities from the class-1 row."""
    p1 = torch.tensor(values)
    return torch.stack([1 - p1, p1]).reshape(1, 2, 1, -1)


# ------------------------------------------------------------------ cross-entropy / focal

LN3, LN9 = math.log(3.0), math.log(9.0)
# pixel 0: p = (1/4, 3/4), target 1; pixel 1: p = (0.9, 0.1), target 0
CE_LOGITS = torch.tensor([[[[0.0, LN9]], [[LN3, 0.0]]]])
CE_TARGET = one_hot([[[1, 0]]])


def test_ce_two_pixels_exact() -> None:
    loss = CrossEntropy([0, 1])(CE_LOGITS, CE_LOGITS.softmax(1), {"target": CE_TARGET})
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx((-math.log(0.75) - math.log(0.9)) / 2, abs=1e-7)


def test_ce_class_selection_counts_only_idc_targets() -> None:
    loss = CrossEntropy([1])(CE_LOGITS, None, {"target": CE_TARGET})
    assert float(loss) == pytest.approx(-math.log(0.75) / 2, abs=1e-7)


def test_ce_gradient_is_softmax_minus_target_over_n() -> None:
    logits = CE_LOGITS.clone().requires_grad_(True)
    CrossEntropy([0, 1])(logits, None, {"target": CE_TARGET}).backward()
    expected = (CE_LOGITS.softmax(1) - CE_TARGET) / 2
    torch.testing.assert_close(logits.grad, expected)


def test_ce_weight_map_scales_each_pixel() -> None:
    ce = CrossEntropy([0, 1], weighted=True)
    batch = {"target": CE_TARGET, "weight": torch.tensor([[[2.0, 0.0]]])}
    assert float(ce(CE_LOGITS, None, batch)) == pytest.approx(-math.log(0.75), abs=1e-7)
    batch["weight"] = torch.tensor([[[4.0, 6.0]]])
    expected = (4 * -math.log(0.75) + 6 * -math.log(0.9)) / 2
    assert float(ce(CE_LOGITS, None, batch)) == pytest.approx(expected, abs=1e-6)
    assert ce.requires == {"target", "weight"}
    with pytest.raises(ValueError, match="weight"):
        ce(CE_LOGITS, None, {"target": CE_TARGET})


def test_ce_mask_ignores_pixels_and_their_gradient() -> None:
    logits = CE_LOGITS.clone().requires_grad_(True)
    batch = {"target": CE_TARGET, "mask": torch.tensor([[[True, False]]])}
    loss = CrossEntropy([0, 1])(logits, None, batch)
    assert loss.item() == pytest.approx(-math.log(0.75), abs=1e-7)
    loss.backward()
    assert torch.all(logits.grad[..., 1] == 0)
    assert torch.all(logits.grad[..., 0] != 0)


def test_ce_and_focal_need_logits() -> None:
    for loss in (CrossEntropy([0, 1]), Focal([0, 1])):
        with pytest.raises(ValueError, match="logits"):
            loss(None, CE_LOGITS.softmax(1), {"target": CE_TARGET})


def test_focal_exact_and_gamma_zero_is_ce() -> None:
    batch = {"target": CE_TARGET}
    focal = Focal([0, 1], gamma=2.0)(CE_LOGITS, None, batch)
    expected = (0.25**2 * -math.log(0.75) + 0.1**2 * -math.log(0.9)) / 2
    assert float(focal) == pytest.approx(expected, abs=1e-7)
    f0 = Focal([0, 1], gamma=0.0)(CE_LOGITS, None, batch)
    ce = CrossEntropy([0, 1])(CE_LOGITS, None, batch)
    assert float(f0) == pytest.approx(float(ce), abs=1e-7)
    with pytest.raises(ValueError, match="gamma"):
        Focal([0, 1], gamma=-1.0)


def test_focal_saturated_prediction_has_finite_gradient() -> None:
    logits = torch.tensor([[[[100.0]], [[-100.0]]]], requires_grad=True)
    Focal([0, 1], gamma=0.5)(logits, None, {"target": one_hot([[[0]]])}).backward()
    assert torch.isfinite(logits.grad).all()


# ------------------------------------------------------------------ Dice / generalised Dice

T_SMALL = row([0, 1, 1, 0, 0, 0, 0, 0])  # class 1: 2 pixels, class 0: 6 pixels
P_HALF = row([0, 1, 0, 0, 0, 0, 0, 0])  # one of the two class-1 pixels missed


@pytest.mark.parametrize("cls", [Dice, GeneralizedDice])
def test_dice_family_perfect_and_disjoint(cls: type[SegLoss]) -> None:
    loss = cls([0, 1])
    assert float(loss(None, T_SMALL, {"target": T_SMALL})) == pytest.approx(0.0, abs=1e-6)
    disjoint = 1.0 - T_SMALL
    assert float(loss(None, disjoint, {"target": T_SMALL})) == pytest.approx(1.0, abs=1e-6)


def test_dice_hand_value_and_mean_over_batch_and_classes() -> None:
    # dice0 = 2*6/(7+6) = 12/13, dice1 = 2*1/(1+2) = 2/3
    loss = Dice([0, 1])(None, P_HALF, {"target": T_SMALL})
    assert float(loss) == pytest.approx(1 - (12 / 13 + 2 / 3) / 2, abs=1e-6)
    probs = torch.cat([P_HALF, T_SMALL])  # second sample perfect
    target = torch.cat([T_SMALL, T_SMALL])
    loss2 = Dice([0, 1])(None, probs, {"target": target})
    assert float(loss2) == pytest.approx((1 - (12 / 13 + 2 / 3) / 2) / 2, abs=1e-6)


def test_dice_empty_target_behaviour() -> None:
    target = row([0, 0, 0, 0])  # class 1 absent
    dice1 = Dice([1])
    # nothing predicted either: Dice(empty, empty) = 1, no loss
    assert float(dice1(None, target, {"target": target})) == pytest.approx(0.0, abs=1e-7)
    # any real mass on the absent class: full loss
    assert float(dice1(None, row([0, 0.5, 0, 0]), {"target": target})) == pytest.approx(
        1.0, abs=1e-5
    )


def test_gdl_weights_hand_value() -> None:
    # w0 = 1/36, w1 = 1/4; 1 - 2(6/36 + 1/4) / (13/36 + 3/4) = 1 - 0.75
    gdl = GeneralizedDice([0, 1])(None, P_HALF, {"target": T_SMALL})
    assert float(gdl) == pytest.approx(0.25, abs=1e-6)
    # unweighted pooled Dice of the same case: 1 - 2*7/16 = 0.125: GDL counts the
    # small-class miss twice as much
    pooled = 1 - 2 * (6 + 1) / (13 + 3)
    assert float(gdl) == pytest.approx(2 * pooled, abs=1e-6)


def test_gdl_small_class_error_does_not_vanish_with_a_large_background() -> None:
    t = row([0, 1, 1] + [0] * 59)  # background 60 pixels, class 1: 2 pixels
    p = row([0, 1, 0] + [0] * 59)
    gdl = GeneralizedDice([0, 1])(None, p, {"target": t})
    # 1 - 2(60/3600 + 1/4) / (121/3600 + 3/4) = 901/2821
    assert float(gdl) == pytest.approx(901 / 2821, abs=1e-6)
    pooled = 1 - 2 * 61 / 124
    assert pooled < 0.02 < 0.3 < float(gdl)


def test_gdl_absent_class_gives_loss_near_one() -> None:
    target = row([0, 0, 0, 0])
    probs = row([0.1, 0.1, 0.1, 0.1])
    gdl = GeneralizedDice([0, 1])(None, probs, {"target": target})
    assert float(gdl) == pytest.approx(1.0, abs=1e-6)
    # a softer eps keeps the sample informative
    soft = GeneralizedDice([0, 1], eps=1.0)(None, probs, {"target": target})
    assert float(soft) < 0.5


def test_dice_mask_equals_cropped_case_and_zero_gradient() -> None:
    t = row([0, 1, 1, 0, 1])
    p = row([0.2, 0.7, 0.6, 0.1, 0.9]).requires_grad_(True)
    mask = torch.tensor([[[1, 1, 1, 1, 0]]])
    for cls in (Dice, GeneralizedDice):
        masked = cls([0, 1])(None, p, {"target": t, "mask": mask})
        cropped = cls([0, 1])(None, p[..., :4], {"target": t[..., :4]})
        assert masked.item() == pytest.approx(cropped.item(), abs=1e-6)
        (grad,) = torch.autograd.grad(masked, p)
        assert torch.all(grad[..., 4] == 0) and torch.any(grad[..., :4] != 0)


# ------------------------------------------------------------------ boundary / Hausdorff

P4 = torch.tensor([[[[0.9, 0.2, 0.1, 0.7]], [[0.1, 0.8, 0.9, 0.3]]]])
T4 = torch.tensor([[[[1.0, 0, 0, 1]], [[0.0, 1, 1, 0]]]])
D4 = torch.tensor([[[[-1.0, 1, 1, -1]], [[2.0, -1, -1, 1]]]])


def test_boundary_hand_value_and_perfect_prediction_negative() -> None:
    loss = Boundary([1])
    batch = {"target": T4, "dist": D4}
    assert float(loss(None, P4, batch)) == pytest.approx((0.2 - 0.8 - 0.9 + 0.3) / 4, abs=1e-7)
    assert float(loss(None, T4, batch)) == pytest.approx(-0.5, abs=1e-7)
    both = Boundary([0, 1])(None, P4, batch)
    class0 = -0.9 + 0.2 + 0.1 - 0.7
    assert float(both) == pytest.approx((class0 + 0.2 - 0.8 - 0.9 + 0.3) / 8, abs=1e-7)


def test_boundary_gradient_is_dist_over_n_and_zero_elsewhere() -> None:
    probs = P4.clone().requires_grad_(True)
    Boundary([1])(None, probs, {"target": T4, "dist": D4}).backward()
    torch.testing.assert_close(probs.grad[:, 1], D4[:, 1] / 4)
    assert torch.all(probs.grad[:, 0] == 0)


def test_boundary_mask() -> None:
    probs = P4.clone().requires_grad_(True)
    batch = {"target": T4, "dist": D4, "mask": torch.tensor([[[1.0, 1, 1, 0]]])}
    loss = Boundary([1])(None, probs, batch)
    assert loss.item() == pytest.approx((0.2 - 0.8 - 0.9) / 3, abs=1e-7)
    loss.backward()
    assert probs.grad[0, 1, 0, 3] == 0


def test_boundary_requires_dist() -> None:
    with pytest.raises(ValueError, match="dist"):
        Boundary([1])(None, P4, {"target": T4})
    assert Boundary([1]).requires == {"target", "dist"}


def test_hausdorff_gt_hand_value_perfect_and_alpha_zero() -> None:
    # the one-sided form (distance to the ground truth only); two-sided: test_losses_hausdorff
    batch = {"target": T4, "dist": D4}
    loss = HausdorffGT([1], alpha=2.0)(None, P4, batch)
    assert float(loss) == pytest.approx((0.01 * 4 + 0.04 + 0.01 + 0.09) / 4, abs=1e-7)
    assert float(HausdorffGT([1])(None, T4, batch)) == 0.0
    mse = HausdorffGT([1], alpha=0.0)(None, P4, batch)
    assert float(mse) == pytest.approx((0.01 + 0.04 + 0.01 + 0.09) / 4, abs=1e-7)


# ------------------------------------------------------------------ shared behaviour


def random_case(shape: tuple[int, ...], k: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, *spatial = shape
    logits = torch.randn(b, k, *spatial, generator=g)
    labels = torch.randint(0, k, (b, *spatial), generator=g)
    return {
        "logits": logits,
        "target": F.one_hot(labels, k).movedim(-1, 1).float(),
        "dist": torch.randn(b, k, *spatial, generator=g) * 5,
        "weight": torch.rand(b, *spatial, generator=g) + 0.5,
        "mask": torch.rand(b, *spatial, generator=g) > 0.3,
        "spacing": torch.tensor([[0.5 + i + j for j in range(len(spatial))] for i in range(b)]),
    }


ALL = [
    CrossEntropy([0, 1, 2]),
    CrossEntropy([1, 2], weighted=True),
    Focal([0, 2]),
    Dice([0, 1, 2]),
    GeneralizedDice([0, 1, 2]),
    Boundary([1, 2]),
    HausdorffGT([1, 2]),
    HausdorffDT([1, 2]),
]
IDS = [repr(loss) for loss in ALL]
# the two-sided Hausdorff-DT loss measures distances on the prediction: its value
# depends on the geometry, so a reshaped batch legitimately gives another value
PER_PIXEL = [loss for loss in ALL if not isinstance(loss, HausdorffDT)]


@pytest.mark.parametrize("loss", PER_PIXEL, ids=[repr(loss) for loss in PER_PIXEL])
def test_3d_equals_2d_reshaped(loss: SegLoss) -> None:
    case = random_case((2, 3, 4, 5))
    logits = case.pop("logits")
    case.pop("spacing")
    v3 = loss(logits, logits.softmax(1), case)
    flat = {k: v.reshape(*v.shape[:-2], -1) for k, v in case.items()}
    l2 = logits.reshape(2, 3, 3, 20)
    v2 = loss(l2, l2.softmax(1), flat)
    assert float(v3) == pytest.approx(float(v2), abs=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_ignored_pixels_get_zero_gradient(loss: SegLoss) -> None:
    case = random_case((2, 6, 6))
    logits = case.pop("logits").requires_grad_(True)
    loss(logits, logits.softmax(1), case).backward()
    ignored = ~case["mask"]
    assert torch.all(logits.grad.movedim(1, -1)[ignored] == 0)
    assert torch.any(logits.grad.movedim(1, -1)[~ignored] != 0)


@pytest.mark.parametrize("cls", [Dice, GeneralizedDice, Boundary, HausdorffGT, HausdorffDT])
def test_idc_one_ignores_class_zero(cls: type[SegLoss]) -> None:
    case = random_case((2, 6, 6), k=2)
    probs = case["logits"].softmax(1)
    other = probs.clone()
    other[:, 0] = torch.rand_like(other[:, 0])  # class-0 channel changed freely
    other = other.requires_grad_(True)
    loss = cls([1])
    a, b = loss(None, probs, case), loss(None, other, case)
    assert a.item() == b.item()
    (grad,) = torch.autograd.grad(b, other)
    assert torch.all(grad[:, 0] == 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_agrees_with_fp32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 3, 3, padding=1)
    x = torch.randn(2, 1, 8, 8)
    case = random_case((2, 8, 8))
    case.pop("logits")
    crit = CombinedLoss.from_spec(
        "ce[weighted=true],focal:0.5,dice,gdl,boundary:0.01,hausdorff:0.001", n_classes=3
    )
    ref, ref_terms = crit(net(x), case, epoch=0)
    try:
        with torch.autocast("cpu", dtype=dtype):
            logits = net(x)
            total, terms = crit(logits, case, epoch=0)
    except RuntimeError as err:  # pragma: no cover - old CPU autocast without fp16
        pytest.skip(f"CPU autocast with {dtype} unsupported: {err}")
    assert logits.dtype == dtype
    assert total.dtype == torch.float32
    assert total.item() == pytest.approx(ref.item(), rel=2e-2, abs=1e-3)
    for key, value in ref_terms.items():
        assert float(terms[key]) == pytest.approx(float(value), rel=3e-2, abs=2e-3), key
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# ------------------------------------------------------------------ registry and checks


def test_registry_names_and_aliases() -> None:
    names = "boundary ce dice focal gdl hausdorff hausdorff_gt".split()
    # an experiment's loss registers itself when its module is imported (the vessel
    # trainer's "mip" and "mip_fused", the vertebrae's "fpfn": this test process may
    # have imported them, a fresh one has not)
    experiments = {"mip", "mip_fused", "fpfn"}
    assert [n for n in loss_names() if n not in experiments] == names
    fresh = subprocess.run(
        [sys.executable, "-c", "from segline.losses import loss_names; print(loss_names())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert fresh.strip() == repr(names)
    assert get_loss_class("surface") is Boundary
    assert get_loss_class("generalized_dice") is GeneralizedDice
    assert isinstance(get_loss("hd", idc=[1], alpha=1.0), HausdorffDT)
    assert get_loss_class("hausdorff_dt") is HausdorffDT
    assert isinstance(get_loss("hausdorff_gt", idc=[1], alpha=1.0), HausdorffGT)
    with pytest.raises(ValueError, match="known losses: boundary, ce, dice"):
        get_loss("lovasz", idc=[1])


def test_register_rejects_duplicates_and_non_losses() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_loss("dice")
        class Again(SegLoss):
            pass

    with pytest.raises(TypeError):
        register_loss("thing")(int)  # type: ignore[arg-type]


@pytest.mark.parametrize("idc", [[], [-1], [1, 1], "1", [1.0], [True]])
def test_bad_idc(idc: object) -> None:
    with pytest.raises(ValueError, match="idc"):
        Dice(idc)  # type: ignore[arg-type]


def test_shape_and_range_errors() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Dice([0, 2])(None, T4, {"target": T4})
    with pytest.raises(ValueError, match="target"):
        Dice([0, 1])(None, T4, {"target": T4[..., :3]})
    with pytest.raises(ValueError, match="mask"):
        Dice([0, 1])(None, T4, {"target": T4, "mask": torch.ones(1, 4)})
    with pytest.raises(ValueError, match="no 'target'"):
        Dice([0, 1])(None, T4, {})
    with pytest.raises(ValueError, match="smooth"):
        Dice([0, 1], smooth=0.0)
    with pytest.raises(ValueError, match="alpha"):
        HausdorffDT([1], alpha=float("nan"))
