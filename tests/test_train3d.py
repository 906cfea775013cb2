"""The trainer with a 3D network: patches, sliding window; the vessel trainer's
pseudo-labels, MIP loss and mip_dice (segline.experiments.vessels.train)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import train_cli
from segline.experiments.vessels.mip import write_mip_store
from segline.experiments.vessels.pseudo import write_pseudo_store


@pytest.fixture(scope="module")
def weak(store) -> tuple[Path, Path]:
    cases, _ = store
    mip = cases.parent / "mip"
    pseudo = cases.parent / "pseudo"
    if not mip.exists():
        write_mip_store(cases, mip, axis=0)
        write_pseudo_store(cases, mip, pseudo)
    return mip, pseudo


VESSELS = "segline.experiments.vessels.train"


def _train3d(
    store, out: Path, losses: str, *extra: str, module: str = "segline.train"
) -> subprocess.CompletedProcess[str]:
    """A trainer's CLI (conftest.train_cli) with a tiny 3D net on 3D patches."""
    return train_cli(
        store, out, "--net", "Dimwit3D", "--epochs", "2", "--batch-size", "2",
        "--patch", "4,16,16", "--samples-per-epoch", "6", "--losses", losses, *extra,
        module=module,
    )  # fmt: skip


def test_mip_boundary_method_end_to_end(store, weak, tmp_path: Path) -> None:
    mip, pseudo = weak
    out = tmp_path / "mip_boundary"
    proc = _train3d(
        store,
        out,
        "ce:1,dice:1,mip:1,boundary:0.01[schedule=rebalance]",
        "--label-source",
        "pseudo",
        "--pseudo",
        str(pseudo),
        "--mip",
        str(mip),
        "--metrics",
        "dice,hd95,assd,cldice,mip_dice",
        module=VESSELS,
    )
    assert proc.returncode == 0, proc.stderr
    assert "6 train patches/epoch" in proc.stdout
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.metric) == {"dice", "hd95", "assd", "cldice", "mip_dice"}
    assert set(metrics.split) == {"val", "test"}
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 2 and epochs.val_loss.notna().all()
    assert len(list((out / "test" / "preds").glob("*.nii.gz"))) == 2


def test_full_method_is_deterministic(store, tmp_path: Path) -> None:
    a = _train3d(store, tmp_path / "a", "ce:1,dice:1")
    b = _train3d(store, tmp_path / "b", "ce:1,dice:1")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (
        tmp_path / "b" / "metrics.csv"
    ).read_bytes()


def test_mip_loss_without_mip_folder_is_one_line(store, tmp_path: Path) -> None:
    proc = _train3d(store, tmp_path / "x", "ce:1,mip:1", module=VESSELS)
    assert proc.returncode == 2 and "--mip" in proc.stderr and "Traceback" not in proc.stderr


def test_core_trainer_knows_no_vessel_option_nor_loss(store, tmp_path: Path) -> None:
    """The MIP loss, mip_dice and the weak-supervision options are the vessel trainer's."""
    for extra, said in ((("--mip", "m"),  "unrecognized arguments: --mip"),
                        (("--metrics", "dice,mip_dice"), "mip_dice")):  # fmt: skip
        proc = _train3d(store, tmp_path / "y", "ce:1", *extra)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr[-2000:]
    proc = _train3d(store, tmp_path / "z", "ce:1,mip:1")
    assert proc.returncode == 2 and "mip" in proc.stderr and "Traceback" not in proc.stderr
