"""``schedule=steal``: the boundary-loss reference code's ``StealWeight`` scheduler.

The reference calls it after every epoch index i (from 0) with ``to_steal = 0.01`` on
the weights ``[GDL, boundary] = [1, 0.01]``: ``[max(0.1, a - 0.01), b + 0.01]``. So
epoch index e trains with ``max(0.1, 1 - 0.01 e)`` on the regional term and
``0.01 + 0.01 e`` on the boundary term, without a cap; ``rebalance`` caps the boundary
weight at 0.99 and gives the regional term ``1 - α``."""

from __future__ import annotations

import json

import pytest

from segline.losses import CombinedLoss
from segline.losses.schedule import STEAL_FLOOR, Schedule
from segline.losses.spec import parse_spec, terms_to_json

SPEC = "gdl:1,boundary:0.01[schedule=steal;step=0.01]"


def reference_steal(epochs: int) -> list[list[float]]:
    """The reference's weights during each epoch index 0..epochs-1, stepped as it does."""
    weights = [[1.0, 0.01]]
    during = []
    for _ in range(epochs):
        during.append(list(weights[0]))
        weights = [[max(0.1, a - 0.01), b + 0.01] for a, b in weights]
    return during


def test_steal_values_at_a_few_epochs() -> None:
    s = Schedule("steal")
    # (factor on the regional terms, α on the boundary term) at epoch index e
    assert [s.factors_at(e) for e in (1, 50, 90, 200)] == [
        (0.99, 0.02),
        (0.5, 0.51),
        (0.1, 0.91),
        (0.1, 2.01),
    ]
    assert s.factors_at(0) == (1.0, 0.01)  # the first epoch: the written weights
    assert STEAL_FLOOR == 0.1
    # rebalance at the same epochs: regional 1 - α, boundary capped at 0.99
    r = Schedule("rebalance")
    assert [r.factors_at(e) for e in (1, 50, 90, 200)] == [
        (0.98, 0.02),
        (0.49, 0.51),
        (0.09, 0.91),
        (0.01, 0.99),
    ]


def test_steal_weights_follow_the_reference_stepping() -> None:
    crit = CombinedLoss.from_spec(SPEC, n_classes=2)
    for e, (gdl, boundary) in enumerate(reference_steal(250)):
        assert crit.weights_at(e) == pytest.approx([gdl, boundary], abs=1e-9), e
        assert crit.alpha_at(e) == pytest.approx(boundary, abs=1e-9)
    assert crit.weights_at(199) == [0.1, 2.0]  # the last of the reference's 200 epochs


def test_steal_ignores_cap_and_round_trips_through_the_spec() -> None:
    assert Schedule("steal", cap=0.5).alpha_at(100) == 1.01
    assert Schedule("steal", start=0.02, step=0.05).factors_at(4) == (0.8, 0.22)
    terms = parse_spec(SPEC, n_classes=2)
    assert terms[1].schedule == Schedule("steal")
    again = parse_spec(terms_to_json(terms), n_classes=2)
    assert again == terms
    assert json.loads(terms_to_json(terms))[1]["schedule"] == "steal"
    with pytest.raises(ValueError, match="known schedules: constant, increase, rebalance, steal"):
        Schedule("stealing")
