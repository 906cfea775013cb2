"""The published code's mask loss, ``fpfn`` (segline.experiments.vertebrae.loss), on
hand cases, and the boundary weights that go with it (WEIGHT_MAP=8,4.2426)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segline.data.slices import boundary_weight
from segline.experiments.vertebrae.loss import FpFn, IterativeLoss

E = math.e


def batch() -> dict[str, torch.Tensor]:
    # one patch of 1x1x2 voxels: target (1, 0); weights of the published code,
    # 1 + 8 exp(-d^2 / 6^2), at d = 0 and 6 mm: 9 and 1 + 8/e; a complete vertebra
    return {
        "target": torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 1, 2),
        "weight": torch.tensor([9.0, 1.0 + 8.0 / E]).reshape(1, 1, 1, 1, 2),
        "complete": torch.tensor([1.0]),
    }


def test_fpfn_plus_completeness_by_hand() -> None:
    # mask logits (0, ln 3): probabilities (1/2, 3/4); completeness logit 0 (p = 1/2)
    mask = torch.tensor([0.0, math.log(3.0)]).reshape(1, 1, 1, 1, 2)
    fp = (1.0 + 8.0 / E) * 0.75  # the background voxel, predicted 3/4
    fn = 9.0 * 0.5  # the vertebra voxel, missed by 1/2
    summed = IterativeLoss.from_spec("fpfn:1[fp_weight=0.1;reduce=sum],complete:1")
    total, parts = summed((mask, torch.tensor([0.0])), batch())
    assert sorted(parts) == ["complete", "fpfn"]
    assert float(parts["fpfn"]) == pytest.approx(0.1 * fp + fn, rel=1e-6)  # 4.7707...
    assert float(parts["complete"]) == pytest.approx(math.log(2.0), rel=1e-6)
    assert float(total) == pytest.approx(0.1 * fp + fn + math.log(2.0), rel=1e-6)
    # mean: the same sum over the 2 voxels; weight 2 on the term, next to wbce
    both = IterativeLoss.from_spec("wbce:1,fpfn:2[fp_weight=0.1],complete:0")
    total, parts = both((mask, torch.tensor([0.0])), batch())
    assert float(parts["fpfn"]) == pytest.approx((0.1 * fp + fn) / 2, rel=1e-6)
    assert float(total) == pytest.approx(float(parts["wbce"]) + (0.1 * fp + fn), rel=1e-6)


def test_fpfn_sum_is_per_patch_and_fp_weight_favours_recall() -> None:
    # two patches of one voxel: a false positive (p 1, t 0) and a false negative
    probs = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).reshape(2, 2, 1, 1)
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(2, 2, 1, 1)
    loss = FpFn([1], fp_weight=0.1, reduce="sum")
    # patch 1: FP 1 -> 0.1; patch 2: FN 1 -> 1; mean over the patches
    assert float(loss(None, probs, {"target": target})) == pytest.approx(0.55)


@pytest.mark.parametrize(
    "spec",
    [
        "fpfn:1[reduce=median],complete:1",
        "fpfn:1[fp_weight=-1],complete:1",
        "fpfn:1[lam=0.1],complete:1",
        "fpfn:1",
        "fpfn:1,fpfn:2,complete:1",
        "boundary:1,complete:1",  # needs distance maps
    ],
)
def test_bad_fpfn_specs_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="wbce:A,complete:B"):
        IterativeLoss.from_spec(spec)


def test_weight_map_8_4243_is_the_published_weights() -> None:
    # segline's 1 + w0 exp(-d^2 / 2 sigma^2) with sigma = 6 / sqrt 2 = 4.2426 mm is the
    # published 1 + 8 exp(-d^2 / 6^2)
    d = np.array([0.0, 3.0, 6.0, 12.0], np.float32)
    dist = np.stack([d, d])[:, None, :]  # (K=2, 1, 4)
    got = boundary_weight(dist, 8.0, 4.2426)[0]
    want = 1.0 + 8.0 * np.exp(-(d**2) / 36.0)
    np.testing.assert_allclose(got, want, rtol=1e-4)
