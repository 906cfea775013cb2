"""WORKERS: DataLoader processes change the speed, never the result.

The same seed must give byte-identical tables and checkpoints on the CPU for any number
of loader processes, for 2D slices and for 3D patches; the knob is scheduling
only, so it stays out of ``args.json`` and is noted in the provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import train_cli
from segline.errors import InputError
from segline.train import loader

SAME = ("metrics.csv", "epochs.csv", "best_epoch.txt", "best.pt", "last.pt")


def _runtime(out: Path) -> dict:
    return json.loads((out / "provenance" / "runtime.json").read_text())


@pytest.mark.parametrize(
    "extra",
    [
        ("--epochs", "2"),
        (
            "--net",
            "Dimwit3D",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--patch",
            "4,16,16",
            "--samples-per-epoch",
            "6",
            "--dist-kind",
            "3d",
        ),
    ],
    ids=["slices", "patches"],
)
def test_workers_0_and_2_give_identical_bytes(store, tmp_path: Path, extra) -> None:
    """``--workers 0`` against ``WORKERS=2`` as make passes it (``SEGLINE_WORKERS``)."""
    out0 = tmp_path / "w0" / "gdl_boundary"
    out2 = tmp_path / "w2" / "gdl_boundary"
    proc0 = train_cli(store, out0, *extra, "--workers", "0", env={"SEGLINE_WORKERS": "2"})
    proc2 = train_cli(store, out2, *extra, env={"SEGLINE_WORKERS": "2"})
    for proc, workers, out in ((proc0, 0, out0), (proc2, 2, out2)):
        assert proc.returncode == 0, proc.stderr
        assert f"{workers} loader workers" in proc.stdout
        assert _runtime(out)["loader_workers"] == workers
    for name in SAME:
        assert (out0 / name).read_bytes() == (out2 / name).read_bytes(), name
    args = [json.loads((out / "args.json").read_text()) for out in (out0, out2)]
    assert "workers" not in args[0]
    assert {k: v for k, v in args[0].items() if k != "out"} == {
        k: v for k, v in args[1].items() if k != "out"
    }


def test_bad_workers_value_is_one_line(store, tmp_path: Path) -> None:
    out = tmp_path / "gdl"
    proc = train_cli(store, out, env={"SEGLINE_WORKERS": "many"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "segline: WORKERS (SEGLINE_WORKERS): expected auto or an integer >= 0, got 'many'"
    ]
    assert not out.exists() and not out.with_name("gdl_tmp").exists()


def test_auto_workers_follow_cores_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for cores, on_cuda, on_cpu in [(1, 0, 0), (2, 1, 0), (16, 8, 2), (64, 8, 8)]:
        monkeypatch.setattr(loader, "cores_for_make", lambda c=cores: c)
        assert loader.resolve_workers(None, cuda) == on_cuda
        assert loader.resolve_workers(None, cpu) == on_cpu
        assert loader.resolve_workers(3, cuda) == 3
    assert loader.loader_options(0, cpu) == {"num_workers": 0, "pin_memory": False}
    assert loader.loader_options(4, cuda) == {
        "num_workers": 4,
        "pin_memory": True,
        "prefetch_factor": 4,
    }
    assert loader.parse_workers("auto") is None and loader.parse_workers(" 6 ") == 6
    with pytest.raises(InputError):
        loader.parse_workers("-1")
