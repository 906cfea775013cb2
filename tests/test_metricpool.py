"""Per-case metrics in worker processes equal the inline computation, in case order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segline.casestore import CaseStore
from segline.metrics.surface import hd95 as direct_hd95
from segline.train import loader, metricpool
from segline.train.metricpool import MetricPool, case_rows


def _preds(store_root) -> dict[str, np.ndarray]:
    """Each case's label shifted by a case-dependent number of voxels along y."""
    cases, dist = store_root
    store = CaseStore(cases, dist)
    return {
        case: np.roll(np.asarray(store.label(case)), i, axis=1).astype(np.uint8)
        for i, case in enumerate(store.case_ids("train"))
    }


def test_pool_rows_equal_inline_rows_in_order(store) -> None:
    preds = _preds(store)
    cases, dist = store
    results = {}
    for processes in (0, 2):
        with MetricPool(str(cases), str(dist), ("dice", "hd95", "assd"), processes=processes) as p:
            futures = [(case, p.submit(case, pred)) for case, pred in preds.items()]
            results[processes] = [(case, f.result()) for case, f in futures]
    assert results[0] == results[2]
    # the values themselves: HD95 as a direct call computes it; the unshifted case is exact
    store_ = CaseStore(cases, dist)
    for i, (case, rows) in enumerate(results[0]):
        by_metric = {r["metric"]: r["value"] for r in rows}
        gt = np.asarray(store_.label(case))
        spacing = tuple(float(s) for s in store_.meta(case)["spacing"])
        assert by_metric["hd95"] == pytest.approx(
            direct_hd95(preds[case] == 1, gt == 1, spacing), abs=1e-9
        )
        if i == 0:
            assert by_metric["dice"] == 1.0 and by_metric["hd95"] == 0.0


def test_pool_reraises_a_failed_case(store) -> None:
    cases, dist = store
    with MetricPool(str(cases), str(dist), ("dice",), processes=0) as pool:
        future = pool.submit("no_such_case", np.zeros((2, 2, 2), np.uint8))
        with pytest.raises(Exception):  # noqa: B017 - whatever the store raises, re-raised
            future.result()


def test_auto_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, on_cuda, on_cpu in [(1, 0, 0), (2, 1, 0), (16, 4, 2), (64, 4, 4)]:
        monkeypatch.setattr(loader, "cores_for_make", lambda c=cores: c)
        assert metricpool.metric_processes(None, torch.device("cuda")) == on_cuda
        assert metricpool.metric_processes(None, torch.device("cpu")) == on_cpu
    assert metricpool.metric_processes(3, torch.device("cpu")) == 3
    assert case_rows.__module__ == "segline.train.metricpool"  # picklable by name
