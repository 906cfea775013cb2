"""Tests for segline.losses.spec, .schedule and .combined."""

from __future__ import annotations

import math

import pytest
import torch

from segline.losses import CombinedLoss, Schedule, parse_spec, terms_to_json
from segline.losses.spec import LossTerm

# ------------------------------------------------------------------ compact form


def test_compact_defaults() -> None:
    terms = parse_spec("gdl:1,boundary:0.01", n_classes=3)
    assert [(t.name, t.weight, t.idc, t.schedule) for t in terms] == [
        ("gdl", 1.0, (0, 1, 2), None),
        ("boundary", 0.01, (1, 2), None),
    ]


def test_compact_weight_optional_whitespace_and_aliases() -> None:
    terms = parse_spec("  generalized_dice , surface : 1e-2 ,hd:.5 ", n_classes=2)
    assert [(t.name, t.weight, t.idc) for t in terms] == [
        ("gdl", 1.0, (0, 1)),
        ("boundary", 0.01, (1,)),
        ("hausdorff", 0.5, (1,)),
    ]


def test_compact_options() -> None:
    terms = parse_spec(
        "dice:2[idc=0, 2;smooth=1e-5],ce[weighted=true],focal:0[gamma=1],hausdorff[alpha=1]",
        n_classes=3,
    )
    dice, ce, focal, hd = terms
    assert dice.idc == (0, 2) and dice.options == {"smooth": 1e-5} and dice.weight == 2.0
    assert ce.options == {"weighted": True} and ce.build().weighted is True
    assert focal.weight == 0.0 and focal.build().gamma == 1.0
    assert hd.build().alpha == 1.0


def test_compact_schedule_weight_is_start() -> None:
    (t,) = parse_spec("boundary:0.05[idc=1;schedule=increase;step=0.1;cap=2]", n_classes=2)
    assert t.schedule == Schedule("increase", start=0.05, step=0.1, cap=2.0)
    assert t.weight == 0.05
    (t,) = parse_spec("boundary[schedule=rebalance]", n_classes=2)
    assert t.schedule == Schedule("rebalance", 0.01, 0.01, 0.99) and t.weight == 0.01


# ------------------------------------------------------------------ JSON form


def test_json_equals_compact() -> None:
    js = (
        '[{"name": "gdl", "weight": 1, "idc": [0, 1]},'
        ' {"name": "boundary", "weight": 0.01, "idc": [1], "schedule": "rebalance"}]'
    )
    compact = "gdl:1[idc=0,1],boundary:0.01[idc=1;schedule=rebalance]"
    assert parse_spec(js, n_classes=2) == parse_spec(compact, n_classes=2)


def test_json_options_and_roundtrip() -> None:
    terms = parse_spec('[{"name": "dice", "smooth": 1}, {"name": "focal", "gamma": 3}]', 2)
    assert terms[0].options == {"smooth": 1} and terms[1].build().gamma == 3.0
    spec = "gdl,boundary:0.02[schedule=increase;cap=0.5],ce[idc=1;weighted=true]"
    terms = parse_spec(spec, n_classes=2)
    assert parse_spec(terms_to_json(terms), n_classes=2) == terms


# ------------------------------------------------------------------ bad specs


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (",", "expected name"),
        ("gdl,", "expected name"),
        ("gdl:", "weight"),
        ("gdl:-1", "weight"),
        ("gdl:abc", "weight"),
        ("gdl:1e999", "finite"),
        ("gdl:1:2", "weight"),
        ("gdl:1;boundary:1", "weight"),
        ("nope:1", "known losses: boundary, ce, dice"),
        ("GDL", "bad loss name"),
        ("__import__('os')", "bad loss name"),
        ("__import__('os').system('true')", "bad loss name"),
        ("gdl[idc=5]", "out of range"),
        ("gdl[idc=]", "expected key=value"),
        ("gdl[idc=-1]", "idc must be integers"),
        ("gdl[idc=1;idc=1]", "repeated"),
        ("gdl[idc=1,1]", "repeat"),
        ("gdl[weight=2]", "not allowed"),
        ("gdl[foo=1]", "unknown option"),
        ("gdl[smooth=1]", "unknown option"),
        ("gdl[[idc=1]]", "nested"),
        ("gdl[idc=1", "without"),
        ("gdl]", "without"),
        ("gdl[idc=1]x", "expected name"),
        ("gdl[idc 1]", "key=value"),
        ("dice[smooth=-1]", "smooth"),
        ("dice[smooth=x(1)]", "bad value"),
        ("focal[gamma=abc]", "gamma"),
        ("ce[weighted=1]", "weighted"),
        ("boundary[step=0.1]", "without a schedule"),
        ("boundary[schedule=sometimes]", "unknown schedule"),
        ("boundary:0.5[schedule=rebalance;cap=1.5]", "cap"),
        ("boundary:0.5[schedule=rebalance;cap=0.2]", "cap"),
        ("dice[schedule=increase],boundary[schedule=rebalance]", "share one schedule"),
        ("dice:0.1[schedule=rebalance],boundary:0.2[schedule=rebalance]", "share one schedule"),
        ("[]", "non-empty list"),
        ("[1]", "expected an object"),
        ("[{}]", "'name' must be a string"),
        ('[{"name": "gdl", "weight": NaN}]', "NaN is not allowed"),
        ('[{"name": "gdl", "weight": "1"}]', "weight must be a number"),
        ('[{"name": "gdl", "weight": true}]', "weight must be a number"),
        ('[{"name": "gdl", "idc": "1"}]', "idc must be a list"),
        ('[{"name": "gdl", "eps": [1]}]', "must be a number, string or boolean"),
        ('[{"name": "gdl"}', "not valid JSON"),
        ('[{"name": "__import__(\'os\')"}]', "bad loss name"),
        ('{"name": "gdl"}', "must be a list"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_spec(spec, n_classes=2)


def test_bad_n_classes_and_no_default_foreground() -> None:
    for n in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n_classes"):
            parse_spec("gdl", n_classes=n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no default classes"):
        parse_spec("boundary", n_classes=1)
    assert parse_spec("boundary[idc=0]", n_classes=1)[0].idc == (0,)
    with pytest.raises(ValueError, match="must be a string"):
        parse_spec(["gdl"], n_classes=2)  # type: ignore[arg-type]


# ------------------------------------------------------------------ schedule


def test_rebalance_schedule_values() -> None:
    s = Schedule("rebalance")
    assert [s.alpha_at(e) for e in range(5)] == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert s.alpha_at(29) == 0.3  # not 0.30000000000000004
    assert s.alpha_at(97) == 0.98
    assert s.alpha_at(98) == 0.99  # the cap is reached at epoch 98
    assert s.alpha_at(99) == 0.99 and s.alpha_at(10_000) == 0.99
    assert s.factors_at(0) == (0.99, 0.01)
    assert s.factors_at(49) == (0.5, 0.5)
    assert s.factors_at(500) == (0.01, 0.99)


def test_increase_and_constant_schedules() -> None:
    inc = Schedule("increase", start=0.01, step=0.05, cap=0.2)
    assert [inc.alpha_at(e) for e in range(6)] == [0.01, 0.06, 0.11, 0.16, 0.2, 0.2]
    assert inc.factors_at(2) == (1.0, 0.11)
    assert Schedule("increase", start=1.0, step=1.0, cap=3.0).alpha_at(5) == 3.0
    const = Schedule("constant", start=0.3, step=5.0, cap=0.0)  # step/cap unused
    assert {const.alpha_at(e) for e in range(10)} == {0.3}
    assert const.factors_at(7) == (1.0, 0.3)


@pytest.mark.parametrize("epoch", [-1, 1.5, True, "3"])
def test_schedule_bad_epoch(epoch: object) -> None:
    with pytest.raises(ValueError, match="epoch"):
        Schedule().alpha_at(epoch)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "linear"},
        {"start": -0.1},
        {"step": -0.01},
        {"start": 0.5, "cap": 0.1},
        {"cap": 1.01},
        {"start": float("nan")},
        {"step": "0.1"},
    ],
)
def test_schedule_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Schedule(**kwargs)


# ------------------------------------------------------------------ CombinedLoss


def small_batch() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 5, 5, generator=g)
    labels = (torch.rand(2, 5, 5, generator=g) > 0.7).long()
    target = torch.nn.functional.one_hot(labels, 2).movedim(-1, 1).float()
    dist = torch.randn(2, 2, 5, 5, generator=g)
    return logits, {"target": target, "dist": dist}


def test_combined_rebalance_total_matches_terms() -> None:
    crit = CombinedLoss.from_spec("gdl:1,boundary:0.01[schedule=rebalance]", n_classes=2)
    logits, batch = small_batch()
    assert crit.needs_dist and crit.requires == {"target", "dist"}
    for epoch, alpha in [(0, 0.01), (1, 0.02), (40, 0.41), (200, 0.99)]:
        assert crit.alpha_at(epoch) == alpha
        assert crit.weights_at(epoch) == [round(1 - alpha, 12), alpha]
        total, tensors = crit(logits, batch, epoch=epoch)
        values = {k: float(v) for k, v in tensors.items()}
        expected = (1 - alpha) * values["gdl"] + alpha * values["boundary"]
        assert total.item() == pytest.approx(expected, abs=1e-6)


def test_combined_unscheduled_and_increase() -> None:
    logits, batch = small_batch()
    fixed = CombinedLoss.from_spec("gdl:2,boundary:0.5", n_classes=2)
    assert math.isnan(fixed.alpha_at(3)) and fixed.weights_at(3) == [2.0, 0.5]
    total, tensors = fixed(logits, batch, epoch=3)
    values = {k: float(v) for k, v in tensors.items()}
    assert total.item() == pytest.approx(2 * values["gdl"] + 0.5 * values["boundary"], abs=1e-6)
    inc = CombinedLoss.from_spec("gdl:2,boundary:0.1[schedule=increase;step=0.1;cap=0.3]", 2)
    assert [inc.weights_at(e) for e in (0, 1, 5)] == [[2.0, 0.1], [2.0, 0.2], [2.0, 0.3]]


def test_combined_values_use_gdl_and_ce_directly() -> None:
    logits, batch = small_batch()
    crit = CombinedLoss.from_spec("ce,gdl", n_classes=2)
    assert not crit.needs_dist
    total, tensors = crit(logits, batch)
    values = {k: float(v) for k, v in tensors.items()}
    ce = torch.nn.functional.cross_entropy(logits, batch["target"].argmax(1))
    assert values["ce"] == pytest.approx(ce.item(), abs=1e-6)
    assert total.item() == pytest.approx(values["ce"] + values["gdl"], abs=1e-6)


def test_combined_repeated_names_get_keys_and_backward() -> None:
    logits, batch = small_batch()
    crit = CombinedLoss.from_spec("dice[idc=0],dice[idc=1],dice", n_classes=2)
    assert crit.keys == ["dice", "dice_2", "dice_3"]
    leaf = logits.clone().requires_grad_(True)
    total, tensors = crit(leaf, batch)
    values = {k: float(v) for k, v in tensors.items()}
    assert values["dice_3"] == pytest.approx((values["dice"] + values["dice_2"]) / 2, abs=1e-6)
    total.backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_combined_rejects_mixed_schedules_and_empty() -> None:
    a = LossTerm("dice", 0.1, (0,), schedule=Schedule("increase", 0.1))
    b = LossTerm("boundary", 0.2, (1,), schedule=Schedule("increase", 0.2))
    with pytest.raises(ValueError, match="one schedule"):
        CombinedLoss([a, b])
    with pytest.raises(ValueError, match="at least one"):
        CombinedLoss([])
