"""The metric registry: one record per metric, read by every consumer; a metric from a
file under tests/ plugs in through the ``segline.metrics`` entry points and reaches
metrics.csv, the report's statistics and a curve without any other change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import train_cli
from segline.errors import InputError
from segline.metrics import registry
from segline.metrics.table import METRICS
from segline.report.build import parse_metrics
from segline.report.text import METRIC_CONVENTIONS
from segline.results import METRIC_INFO
from segline.train.cli import metric_names

PLUGIN = Path(__file__).parent / "metric_plugin" / "toy_metric.py"


def test_every_consumer_reads_the_registry() -> None:
    """The consumers' tables hold every record registered before they were imported, in
    order (an experiment's record registered later in this test process, e.g. by a
    test module importing its trainer, only appends to the registry; its own stages
    import it first, tests/test_make_vessels.py)."""
    known = list(registry.REGISTRY)[: len(METRIC_INFO)]
    assert list(METRIC_INFO) == known and {"dice", "cldice", "hd95", "hd"} <= set(known)
    for name in known:
        m, info = registry.get(name), METRIC_INFO[name]
        assert (info.title, info.higher_is_better, info.unit, info.digits) == (
            m.title, m.higher_is_better, m.unit, m.digits)
        assert METRIC_CONVENTIONS.get(name, "") == m.convention
    assert METRICS == registry.names("mask", "surface")
    assert metric_names("dice,cldice") == ("dice", "cldice")
    # a trainer's own metric (the vessel trainer's mip_dice) is known to its trainer only
    assert metric_names("dice,mip_dice", ("mip_dice",)) == ("dice", "mip_dice")
    with pytest.raises(InputError, match="mip_dice"):
        metric_names("dice,mip_dice")
    assert registry.is_distance("hd95") and not registry.is_distance("misses")


def test_a_second_different_record_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.Metric("dice", "Dice!", True, "mask"))
    assert registry.register(registry.get("dice")) is registry.get("dice")  # same: fine


def test_case_metrics_imports_a_metric_only_when_asked(tmp_path: Path) -> None:
    """Dice alone never imports the clDice module (a stage's .d then omits it)."""
    code = ("import sys, numpy as np\nfrom segline.metrics.table import case_metrics\n"
            "m = np.zeros((2, 4, 4), np.uint8); m[0, 1:3, 1:3] = 1\n"
            "case_metrics(m, m, (1, 1, 1), ['bg', 'fg'], metrics=('dice', 'hd95'))\n"
            "print('segline.metrics.cldice' in sys.modules)\n"
            "case_metrics(m, m, (1, 1, 1), ['bg', 'fg'], metrics=('cldice',))\n"
            "print('segline.metrics.cldice' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"]


def plugin_env(root: Path) -> dict[str, str]:
    """PYTHONPATH with the toy metric's module and its entry point (a dist-info)."""
    site = root / "site"
    info = site / "toy_metric-0.0.dist-info"
    info.mkdir(parents=True)
    (site / "toy_metric.py").write_text(PLUGIN.read_text())
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-metric\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        "[segline.metrics]\nvolume_ratio = toy_metric:METRIC\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def volume_ratio(pred: np.ndarray, gt: np.ndarray) -> float:
    """Independent reference of the plugin's metric."""
    a, b = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    return 1.0 if a == b == 0 else min(a, b) / max(a, b)


@pytest.fixture(scope="module")
def plugged(store, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Two trainings scoring the plugin metric (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("plugin")
    env = plugin_env(root)
    for seed in ("0", "1"):
        proc = train_cli(store, root / "res" / f"m{seed}", "--metrics",
                         "dice,hd95,assd,volume_ratio", "--seed", seed, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root, env


def test_plugin_metric_in_metrics_csv(plugged: tuple[Path, dict[str, str]], store) -> None:
    root, _ = plugged
    cases, _ = store
    table = pd.read_csv(root / "res" / "m0" / "test" / "metrics.csv")
    rows = table[table.metric == "volume_ratio"].set_index("case")["value"]
    assert sorted(rows.index) == ["toy_0", "toy_1"]
    for case, value in rows.items():
        pred = np.load(root / "res" / "m0" / "test" / "preds_zyx" / f"{case}.npy") == 1
        gt = np.load(cases / case / "label.npy") == 1
        assert value == pytest.approx(volume_ratio(pred, gt), abs=1e-12)
    val = pd.read_csv(root / "res" / "m0" / "metrics.csv")
    assert set(val[val.split == "val"].metric) == {"dice", "hd95", "assd", "volume_ratio"}


def test_plugin_metric_in_report_statistics_and_curve(
    plugged: tuple[Path, dict[str, str]],
) -> None:
    root, env = plugged
    out = root / "out"
    out.mkdir()
    methods = [str(root / "res" / "m0"), str(root / "res" / "m1")]
    report = [sys.executable, "-m", "segline.report", "--out", str(out / "report.md"),
              "--csv", str(out / "report.csv"), "--cases-csv", str(out / "cases.csv"),
              "--metrics", "dice,volume_ratio", "--stat-reference", "m0", *methods]
    proc = subprocess.run(report, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "report.md").read_text()
    stats = md.split("## Statistics", 1)[1]
    assert "### Volume ratio: higher is better" in stats
    assert "- Volume ratio: |P| / |G| or its inverse" in md  # its convention
    curve = [sys.executable, "-m", "segline.plots.curves", "--metric", "val_volume_ratio",
             "--out", str(out / "val_volume_ratio.png"), *methods]
    proc = subprocess.run(curve, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "val_volume_ratio.png").stat().st_size > 5000
    assert "volume_ratio" not in parse_metrics.__doc__  # segline's own code names it nowhere
