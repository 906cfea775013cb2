"""Training patches of the iterative method (segline.experiments.vertebrae.sampler)."""

from __future__ import annotations

import numpy as np
import pytest

from segline.casestore import CaseStore
from segline.experiments.vertebrae.order import vertebra_order
from segline.experiments.vertebrae.sampler import IterativeSampler, is_negative, window
from vertebrae_fixtures import spine_store

PATCH = (10, 12, 12)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CaseStore:
    cases, dist = spine_store(tmp_path_factory.mktemp("spine"))
    return CaseStore(cases, dist)


def items(store: CaseStore, n: int = 64, aug: str = "none", epoch: int = 0) -> list[dict]:
    ds = IterativeSampler(
        store, ["spine_2"], PATCH, samples_per_epoch=n, seed=3, weight_map=(5.0, 3.0), aug=aug
    )
    ds.set_epoch(epoch)
    return [ds[i] for i in range(n)]


def test_order_is_by_centroid_z() -> None:
    lab = np.zeros((10, 2, 2), np.uint8)
    lab[6:8] = 1
    lab[0:3] = 3
    lab[3:5, 0] = 2
    assert vertebra_order(lab) == [3, 2, 1]


def test_negative_fraction_is_exact() -> None:
    flags = [is_negative(i) for i in range(100)]
    assert sum(flags) == 25
    assert sum(is_negative(i, 0.1) for i in range(50)) == 5


def test_items_follow_the_contract(store: CaseStore) -> None:
    label = np.asarray(store.label("spine_2"))
    order = vertebra_order(label)
    assert order == [1, 2, 3, 4]
    got = items(store)
    negatives = [it for it in got if bool(it["negative"])]
    assert len(negatives) == 16  # 25 % of 64
    border_cut = complete = 0
    for it in got:
        start = [int(s) for s in it["start"]]
        lab = window(label, start, PATCH, 0)
        target = it["target"][0].numpy() > 0.5
        memory = it["image"][1].numpy() > 0.5
        assert it["image"].shape == (2, *PATCH) and it["weight"].shape == (1, *PATCH)
        if bool(it["negative"]):
            assert not target.any() and float(it["complete"]) == 0.0
            # nothing left: every vertebra voxel of the patch is in the memory
            assert not ((lab > 0) & ~memory).any()
            continue
        k = int(it["target_id"])
        np.testing.assert_array_equal(target, lab == k)
        # the memory holds exactly the vertebrae before k in the order
        np.testing.assert_array_equal(memory, np.isin(lab, order[: order.index(k)]))
        inside = int((lab == k).sum()) >= 0.98 * int((label == k).sum())  # COMPLETE_FRAC
        assert float(it["complete"]) == float(inside)
        complete += inside
        edge = target[0].any() or target[-1].any()
        border_cut += edge and not inside
    assert 0 < complete < len(got) - len(negatives)
    assert border_cut > 0  # targets cut by the patch border are flagged incomplete


def test_items_depend_only_on_seed_epoch_index(store: CaseStore) -> None:
    a, b = items(store, 8, aug="strong"), items(store, 8, aug="strong")
    for x, y in zip(a, b, strict=True):
        for key in ("image", "target", "weight", "complete"):
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())
    c = items(store, 8, aug="strong", epoch=1)
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c, strict=True))


def test_weights_are_boundary_weights(store: CaseStore) -> None:
    it = items(store, 1)[0]
    w = it["weight"].numpy()
    assert w.min() >= 1.0 and w.max() <= 6.0 + 1e-5
    assert w.max() > 5.0  # a boundary voxel weighs 1 + w0 e^0 (its distance is ~0)


def test_zero_samples_refused(store: CaseStore) -> None:
    with pytest.raises(ValueError, match="samples_per_epoch"):
        IterativeSampler(store, ["spine_2"], PATCH, samples_per_epoch=0, seed=0)
