"""Make-level test of the whole spleen toy pipeline: `NET=Dimwit EPC=2`, every artefact.

One run of `make -f spleen.make TOY=1 NET=Dimwit EPC=2` (all six default methods,
two in parallel with -j2), then: every artefact exists and is sane; a second make does
nothing; deleting one plot and asking for it rebuilds that plot and nothing else.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import copy_project, differing, snapshot

pytestmark = pytest.mark.make

ARGS = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=2", "BS=16")
METHODS = ["ce", "gdl", "gdl_boundary", "gdl_boundary3d", "gdl_hausdorff", "gdl3d"]
PLOTS = [
    "val_dice.png",
    "val_hd95.png",
    "val_assd.png",
    "tra_loss.png",
    "val_loss.png",
    "lr.png",
    "alpha.png",
    "epoch_time.png",
    "test_dice_boxplot.png",
    "overlays.png",
    *(f"progress_{m}.png" for m in METHODS),
]


@pytest.fixture(scope="module")
def pipeline(
    tmp_path_factory: pytest.TempPathFactory, run_make
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = copy_project(tmp_path_factory.mktemp("pipe"))
    proc = run_make(root, "-j2", *ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, proc


def test_training_lines_name_their_method_under_j2(pipeline) -> None:
    """Two trainings run at once (-j2): each line a training prints carries its name."""
    _, proc = pipeline
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\bepoch +\d+/\d+|val dice", ln)]
    assert len(lines) >= 2 * len(METHODS), proc.stdout[-2000:]
    tags = {ln.split("]", 1)[0] + "]" for ln in lines}
    assert tags == {f"[{m}]" for m in METHODS}, tags
    notes = [ln for ln in proc.stdout.splitlines() if "up to date, not rebuilt" in ln]
    assert all(ln.startswith("[") for ln in notes), notes


def test_every_artefact(pipeline) -> None:
    root, proc = pipeline
    res = root / "results" / "spleen-toy"
    for m in METHODS:
        d = res / m
        for name in (
            "metrics.csv",
            "epochs.csv",
            "best_epoch.txt",
            "best.pt",
            "last.pt",
            "args.json",
            "lineage.json",
            "test/metrics.csv",
        ):
            assert (d / name).is_file(), f"{m}/{name}"
        metrics = pd.read_csv(d / "metrics.csv")
        assert set(metrics.split) == {"val", "test"}
        assert sorted(metrics[metrics.split == "val"].epoch.unique()) == [1, 2]
        assert len(pd.read_csv(d / "epochs.csv")) == 2
        assert len(list((d / "test" / "preds").glob("*.nii.gz"))) == 3
        torch.load(d / "best.pt", weights_only=True)
        prov = d / "provenance"
        assert (prov / "git.diff").is_file() and (prov / "pip-freeze.txt").is_file()
        assert (prov / "lineage.md5").read_text().split()[1] == "data/spleen-toy.tar"
    for plot in PLOTS:
        data = (res / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, plot
    report = (res / "report.md").read_text()
    for m in METHODS:
        assert m in report
    assert "validation" in report and "test" in report
    rep = pd.read_csv(res / "report.csv")
    assert set(METHODS) <= set(rep.iloc[:, 0].astype(str)) or set(METHODS) <= set(
        rep.get("method", [])
    )
    pointer = root / "archives" / "spleen-toy-latest.txt"
    archive = root / "archives" / pointer.read_text().strip()
    assert archive.name.startswith("spleen-toy-") and archive.name.endswith(".tar.gz")
    assert not (archive.stat().st_mode & 0o222), "archive is read-only"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith("report.md") for n in names)
    assert any(n.endswith("val_dice.png") for n in names)
    assert not any(n.endswith(".pt") for n in names), "no checkpoints without PACK_MODELS=1"
    assert "archive:" in proc.stdout
    assert "\x1b" not in proc.stdout + proc.stderr


def test_second_make_does_nothing(pipeline, run_make) -> None:
    root, _ = pipeline
    before = snapshot(root)
    proc = run_make(root, *ARGS)
    assert proc.returncode == 0 and "segline" not in proc.stdout, proc.stdout
    assert snapshot(root) == before
    plan = run_make(root, "-n", *ARGS)
    assert plan.stdout.strip() == "" or "Nothing to be done" in plan.stdout, plan.stdout


def test_one_plot_rebuilds_its_figure_group_alone(pipeline, run_make) -> None:
    """The curves, boxplot and progress figures come from one process (one make target
    group, src/segline/plots/figures.py): asking for one redraws the group, byte-identical,
    and nothing else (no training, no overlays, no report)."""
    root, _ = pipeline
    res = root / "results" / "spleen-toy"
    group = [p for p in PLOTS if p != "overlays.png"]
    contents = {p: (res / p).read_bytes() for p in group}
    (res / "val_dice.png").unlink()
    before = snapshot(root)
    proc = run_make(root, *ARGS, "results/spleen-toy/val_dice.png")
    assert proc.returncode == 0, proc.stderr
    after = snapshot(root)
    changed = {k for k in after if after.get(k) != before.get(k)}
    records = {f"results/spleen-toy/.{p}.{k}" for p in group for k in ("cmd", "d", "sha256")}
    figures = {f"results/spleen-toy/{p}" for p in group}
    assert "results/spleen-toy/val_dice.png" in changed
    assert changed <= figures | records | {"results/spleen-toy"}, changed - figures - records
    assert differing({p: (res / p).read_bytes() for p in group}, contents) == []
    assert proc.stdout.count("segline.plots.figures") == 1, proc.stdout
    assert (
        "segline.train" not in proc.stdout
        and "up to date, not rebuilt: results/spleen-toy/gdl" in proc.stdout
    )


def test_changed_knob_retrains_only_that_method(pipeline, run_make) -> None:
    root, _ = pipeline
    plan = run_make(root, "-n", *ARGS, "METHODS=gdl", "EPC=3")
    assert plan.stdout.count("segline.train") == 1 and "results/spleen-toy/gdl " in plan.stdout


def test_predict_writes_unlabelled_cases_in_source_geometry(pipeline, run_make) -> None:
    import nibabel as nib

    root, _ = pipeline
    proc = run_make(root, *ARGS, "METHODS=gdl", "predict")
    assert proc.returncode == 0, proc.stderr
    out = root / "results" / "spleen-toy" / "predict" / "gdl"
    names = sorted(p.name for p in out.glob("*.nii.gz"))
    assert names == ["spleen_1.nii.gz", "spleen_4.nii.gz"]
    raw = root / "data" / "spleen-toy" / "raw" / "Task09_Spleen" / "imagesTs" / "spleen_1.nii.gz"
    src, pred = nib.load(raw), nib.load(out / "spleen_1.nii.gz")
    assert pred.shape == src.shape and (abs(pred.affine - src.affine) < 1e-4).all()
