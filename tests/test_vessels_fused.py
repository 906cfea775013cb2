"""The vessels method ``mip_fused``: the 2D-3D fusion network MipFused
(segline.experiments.vessels.fused), its loss ``mip_fused`` on a hand-made case, and a
one-epoch toy run through make (training, test predictions, ``predict``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import copy_project
from segline.experiments.vessels.fused import (
    FusedOutput,
    MipFused,
    gather_features,
    level_depth,
    mip_index,
)
from segline.experiments.vessels.loss import FUSED_KEYS, MIPFusedLoss, dice2d
from segline.experiments.vessels.train import FUSED_NET
from segline.losses import CombinedLoss


def softplus(z: float) -> float:
    return math.log1p(math.exp(z))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# -- the network ------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2])
def test_output_shapes_in_training_and_eval(axis: int) -> None:
    torch.manual_seed(0)
    net = MipFused(1, 2, axis=axis, levels=3, widths="2,4,8")
    x = torch.rand(2, 1, 8, 12, 16)
    plane = tuple(n for a, n in enumerate((8, 12, 16)) if a != axis)
    out = net.train()(x)
    assert isinstance(out, FusedOutput)
    assert tuple(out.logits.shape) == (2, 2, 8, 12, 16)
    assert tuple(out.fused.shape) == (2, 2, *plane)
    assert tuple(out.depth.shape) == (2, *plane) and out.depth.dtype == torch.int64
    assert set(out.batch_keys()) == set(FUSED_KEYS)
    # eval: the 3D head alone, any size (padded to a multiple of 4, cropped back)
    with torch.no_grad():
        logits = net.eval()(torch.rand(1, 1, 5, 6, 7))
    assert isinstance(logits, torch.Tensor) and tuple(logits.shape) == (1, 2, 5, 6, 7)


def test_published_defaults_and_refusals() -> None:
    net = MipFused(1, 2)
    assert net.widths == [6, 16, 32, 64, 128] and net.levels == 5 and net.multiple == 16
    assert FUSED_NET == type(net).__name__
    with pytest.raises(ValueError, match="multiple of 4"):
        MipFused(1, 2, levels=3, widths="2,4,8").train()(torch.rand(1, 1, 8, 8, 6))
    with pytest.raises(ValueError, match="3 levels need 3 widths"):
        MipFused(1, 2, levels=3, widths="2,4")
    with pytest.raises(ValueError, match="axis"):
        MipFused(1, 2, axis=3)


def test_mip_index_is_the_first_argmax_of_channel_0() -> None:
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 4, size=(2, 2, 5, 6, 7)).astype(np.float32)  # many ties
    for axis in (0, 1, 2):
        mip, depth = mip_index(torch.from_numpy(vol), axis)
        np.testing.assert_array_equal(depth.numpy(), vol[:, 0].argmax(axis=axis + 1))
        np.testing.assert_array_equal(mip[:, 0].numpy(), vol[:, 0].max(axis=axis + 1))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather_at_mip_index_equals_hand_indexing(axis: int) -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(2, 3, 4, 5, 6)).astype(np.float32)
    plane = [n for a, n in enumerate((4, 5, 6)) if a != axis]
    depth = rng.integers(0, (4, 5, 6)[axis], size=(2, *plane))
    got = gather_features(torch.from_numpy(feats), torch.from_numpy(depth), axis).numpy()
    want = np.zeros((2, 3, *plane), np.float32)
    for b in range(2):
        for c in range(3):
            for i in range(plane[0]):
                for j in range(plane[1]):
                    at = [i, j]
                    at.insert(axis, int(depth[b, i, j]))
                    want[b, c, i, j] = feats[b, c, at[0], at[1], at[2]]
    np.testing.assert_array_equal(got, want)


def test_fusion_reads_3d_features_at_each_ray_brightest_voxel() -> None:
    """The level-1 features the 2D branch receives are the 3D encoder's at the
    argmax depth of each ray, and the level-2 index is the corner-aligned resampling
    of the depth map divided by 2 (hand-indexed)."""
    torch.manual_seed(0)
    net = MipFused(1, 2, axis=0, levels=2, widths="2,3").train()
    x = torch.rand(1, 1, 4, 4, 6)
    f3 = net._forward3d(x)
    _, depth = mip_index(x, 0)
    hand = torch.stack([f3.encoder[0][0, :, int(depth[0, i, j]), i, j]
                        for i in range(4) for j in range(6)], 1).reshape(2, 4, 6)
    torch.testing.assert_close(gather_features(f3.encoder[0], depth, 0)[0], hand)
    d = torch.tensor([[[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 3]]])
    # 4 -> 2 corner-aligned: the samples are the corners (0, 0), (0, 3), (3, 0), (3, 3)
    assert level_depth(d, (2, 2), 2, 2).tolist() == [[[0, 1], [1, 1]]]
    assert level_depth(d, (4, 4), 1, 4).tolist() == d.tolist()


# -- the loss -------------------------------------------------------------------------

# z = class-1 logit (class 0 logit 0) of a (D=3, H=1, W=3) patch, projected along D
Z = [[[1.0, -1.0, 0.3]], [[2.0, 0.5, -2.0]], [[-0.5, 0.0, 1.5]]]
# pseudo-label: 1 vessel, 0 background, None ignored (mask 0)
PSEUDO = [[[1, 0, 0]], [[1, None, 0]], [[0, 0, 0]]]


def hand_batch() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    z = torch.tensor(Z)
    logits = torch.stack([torch.zeros_like(z), z])[None]  # (1, 2, 3, 1, 3)
    target = torch.zeros(1, 2, 3, 1, 3)
    mask = torch.ones(1, 3, 1, 3)
    for d in range(3):
        for w in range(3):
            v = PSEUDO[d][0][w]
            if v is None:
                mask[0, d, 0, w] = 0
            else:
                target[0, v, d, 0, w] = 1
    batch = {
        "target": target, "mask": mask,
        "mip_label": torch.tensor([[[1, 1, 1]]]),
        "mip_depth": torch.tensor([[[1, 1, 2]]]),
        "mip_valid": torch.tensor([[[1.0, 1.0, 0.0]]]),   # ray 2's voxel outside the patch
        # fused 2D logits (class 1: 0, 1, 3) at the network's own index: agrees on ray 0
        "mip_fused": torch.stack([torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 3.0]])])[None],
        "mip_fused_depth": torch.tensor([[[1, 0, 2]]]),
    }
    return logits, batch


def hand_terms() -> dict[str, float]:
    s = 1e-5
    fore = (softplus(-1.0) + softplus(-2.0)) / 2            # pseudo vessel voxels
    ctr = (softplus(-2.0) + softplus(-0.5)) / 2             # rays 0, 1 at depth 1 (mask ignored)
    back = sum(softplus(z) for z in (-1.0, 0.3, -2.0, -0.5, 0.0, 1.5)) / 6
    q = [sigmoid(2.0), sigmoid(0.5)]                        # 3D p at depth 1, rays 0, 1
    proj = (1 - (2 * sum(q) + s) / (sum(v * v for v in q) + 2 + s)
            + 1 - s / (sum((1 - v) ** 2 for v in q) + s))
    fused = 1 - (2 * 0.5 + s) / (0.25 + 1 + s) + 1 - s / (0.25 + s)  # ray 0 only, p = 1/2
    return {"fore": fore, "ctr": ctr, "back": back, "proj": proj, "fused": fused}


def test_loss_terms_equal_hand_computed_count_normalised_terms() -> None:
    logits, batch = hand_batch()
    loss = MIPFusedLoss([1], axis=0)
    terms = {k: float(v) for k, v in loss.terms(logits, batch).items()}
    want = hand_terms()
    assert terms == pytest.approx(want, abs=1e-6)
    total = float(loss(logits, logits.softmax(1), batch))
    assert total == pytest.approx(sum(want.values()), abs=1e-5)
    weighted = MIPFusedLoss([1], axis=0, ctr=0.5, fused=0)
    assert float(weighted(logits, None, batch)) == pytest.approx(
        sum(want.values()) - 0.5 * want["ctr"] - want["fused"], abs=1e-5)


def test_loss_without_fused_outputs_and_through_the_spec() -> None:
    logits, batch = hand_batch()
    for key in FUSED_KEYS:
        del batch[key]
    want = hand_terms()
    crit = CombinedLoss.from_spec("mip_fused:1[axis=0]", n_classes=2)
    assert {"mip_label", "mip_depth", "mip_valid"} <= crit.requires
    total, values = crit(logits, batch)
    assert float(total) == pytest.approx(sum(want.values()) - want["fused"], abs=1e-5)
    assert set(values) == {"mip_fused"}


def test_empty_sets_give_zero_and_gradients_stay_finite() -> None:
    logits = torch.zeros(1, 2, 2, 2, 2, requires_grad=True)
    batch = {"target": torch.zeros(1, 2, 2, 2, 2), "mask": torch.zeros(1, 2, 2, 2),
             "mip_label": torch.zeros(1, 2, 2, dtype=torch.long),
             "mip_depth": torch.zeros(1, 2, 2, dtype=torch.long),
             "mip_valid": torch.zeros(1, 2, 2)}
    loss = MIPFusedLoss([1])(logits, None, batch)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert float(logits.grad.abs().sum()) == 0.0
    assert float(dice2d(torch.ones(1, 2), torch.ones(1, 2), torch.zeros(1, 2))) == 0.0


# -- a toy run through make -------------------------------------------------------------

ARGS = ("-f", "vessels.make", "TOY=1", "EPC=1", "SAMPLES=4", "PATCH=16,32,32",
        "METHODS=mip_fused", "NET=Dimwit3D")


@pytest.mark.make
def test_toy_run_trains_predicts_and_refuses_a_plain_net(tmp_path: Path, run_make) -> None:
    """One epoch on 4 patches: metrics.csv, the test predictions, and ``predict``
    (the trainer's predictor loads the fused network by name; its 3D head predicts).
    The method's network is its own: the command line's NET does not reach it."""
    root = copy_project(tmp_path)
    proc = run_make(root, *ARGS, "results/vessels-toy/mip_fused", "predict")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    method = root / "results" / "vessels-toy" / "mip_fused"
    args = json.loads((method / "args.json").read_text())
    assert args["net"] == "MipFused" and args["net_kwargs"] == {"axis": 0}
    assert args["losses"] == "mip_fused:1[axis=0]"
    metrics = pd.read_csv(method / "metrics.csv")
    assert set(metrics.metric) == {"dice", "hd95", "assd", "cldice", "mip_dice"}
    assert metrics.value[metrics.metric == "dice"].between(0, 1).all()
    assert len(list((method / "test" / "preds").glob("*.nii.gz"))) == 3
    assert len(list((root / "results" / "vessels-toy" / "predict" / "mip_fused")
                    .glob("*.nii.gz"))) == 2  # the toy's two unlabelled cases
    data = root / "data" / "vessels-toy"
    cmd = [sys.executable, "-m", "segline.experiments.vessels.train", "--cases",
           str(data / "cases"), "--dist", str(data / "dist"), "--out",
           str(tmp_path / "refused"), "--net", "Dimwit3D", "--dist-kind", "3d",
           "--losses", "mip_fused:1", "--mip", str(data / "mip"), "--patch", "16,32,32"]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert refused.returncode != 0
    assert "--net MipFused and the loss mip_fused go together" in refused.stderr
