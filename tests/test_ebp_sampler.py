"""EBP's training states (segline.experiments.ebp.sampler): a pure function of (seed,
epoch, item), so workers and resume give the same batches, with exactly balanced
inside / outside pivots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segline.casestore import CaseStore
from segline.experiments.ebp import geometry as geo
from segline.experiments.ebp.sampler import ShellStates, inside_item

H = W = 8


def states(store: tuple[Path, Path], **kw: object) -> ShellStates:
    cs = CaseStore(*store)
    args = {"balance": 0.5, "perturb": 0.5, **kw}
    return ShellStates(cs, cs.case_ids("train"), H, W, 32, seed=3, **args)  # type: ignore[arg-type]


def inside(ds: ShellStates, item: int) -> bool:
    crop, pivot, _, _ = ds.state(item)
    z, y, x = (int(v) for v in pivot[0])
    return bool(crop.target[0, z, y, x] > 0)


def test_exactly_half_the_items_are_inside_pivots(store: tuple[Path, Path]) -> None:
    ds = states(store)
    flags = [inside(ds, i) for i in range(len(ds))]
    assert sum(flags) == len(ds) // 2
    assert flags == [inside_item(i, 0.5) for i in range(len(ds))]
    # the natural share: inside pivots are a minority of the grid
    natural = states(store, balance=None)
    share = np.mean([inside(natural, i) for i in range(len(natural))])
    assert share < 0.5


def test_items_are_a_function_of_seed_epoch_and_item(store: tuple[Path, Path]) -> None:
    a, b = states(store), states(store)
    for epoch in (0, 1, 2):  # a resumed run at epoch 2 skips the draws of 0 and 1
        a.set_epoch(epoch)
    b.set_epoch(2)
    for i in (0, 5, 31):
        x, y = a[i], b[i]
        for key in ("image", "target", "radius"):
            assert torch.equal(x[key], y[key]), key
    a.set_epoch(3)
    assert not torch.equal(a[5]["radius"], b[5]["radius"])


def test_loader_workers_give_the_same_batches(store: tuple[Path, Path]) -> None:
    ds = states(store)
    ds.set_epoch(1)
    one = list(DataLoader(ds, batch_size=8, shuffle=False, num_workers=0))
    two = list(DataLoader(ds, batch_size=8, shuffle=False, num_workers=2))
    assert len(one) == len(two) == 4
    for x, y in zip(one, two, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["target"], y["target"])


def test_an_item_is_the_clipped_target_and_the_shell_layers(store: tuple[Path, Path]) -> None:
    ds = states(store)
    item = ds[4]
    assert item["image"].shape == (geo.input_channels(1), H, W)
    assert item["target"].shape == item["radius"].shape == (H, W)
    assert float(item["target"].abs().max()) <= geo.STEP_CLIP
    crop, pivot, radii, _ = ds.state(4)
    dirs = torch.from_numpy(geo.directions(H, W))
    expect = geo.target_step(crop.target, pivot, radii, dirs)[0]
    assert torch.allclose(item["target"], expect)
    assert torch.equal(item["radius"], radii[0])


def test_perturbation_kinds(store: tuple[Path, Path]) -> None:
    plain = states(store, perturb=0.0)
    assert {plain.state(i)[3] for i in range(32)} == {"trajectory"}
    mixed = states(store, perturb=1.0)
    kinds = {mixed.state(i)[3] for i in range(32)}
    assert kinds == {"zero", "sphere", "scaled", "noised"}
    zero = next(i for i in range(32) if mixed.state(i)[3] == "zero")
    assert float(mixed[zero]["radius"].abs().max()) == 0.0
    # the first trajectory state (no step taken yet) is the published start, D0 = 5
    for i in range(32):
        crop, pivot, radii, kind = plain.state(i)
        if float(radii.std()) == 0.0:
            assert float(radii[0, 0, 0]) == pytest.approx(geo.D0)
            break
    else:
        pytest.fail("no state at step 0 among 32 draws")
