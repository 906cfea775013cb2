"""Cross-validation (``FOLDS=k``): the fold assignment, the fold trainings' split, the
report's out-of-fold pooling, the fold ensemble of ``predict`` and the make targets.

Unit-level tests on tiny fixtures, plus one make-level toy run (module-scoped:
``TOY=1 NET=Dimwit EPC=1 FOLDS=3 METHODS=gdl``, folds 0 and 1 built) that the
"adding a fold trains only that fold" and the recorded-fold tests share.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import copy_project
from segline.casestore import CaseStore
from segline.cli import run
from segline.errors import InputError
from segline.predicting.infer import EnsemblePredictor, Predictor, fold_trainings
from segline.preprocess import split
from segline.report import main as report_main
from segline.seeds import split_training_folder, training_label
from segline.stats import paired_bootstrap_ci, wilcoxon_p
from segline.train import device as dev
from segline.train import layout

CASES = [f"c{i}" for i in range(1, 11)]


# ------------------------------------------------------------------ fold assignment


@pytest.mark.parametrize("rule", ["ordered", "random"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_every_case_in_exactly_one_test_fold(rule: str, k: int) -> None:
    s = split.make_split(CASES, ["u1"], n_val=2, rule=rule, seed=7, folds=k)
    folds = s["folds"]
    assert len(folds) == k and s["params"]["folds"] == k
    tested = Counter(c for f in folds for c in f["test"])
    assert sorted(tested) == sorted(CASES) and set(tested.values()) == {1}
    sizes = sorted(len(f["test"]) for f in folds)
    assert sizes[-1] - sizes[0] <= 1  # round-robin: balanced
    for f in folds:  # each fold a full split of the labelled cases
        assert len(f["val"]) == 2
        assert sorted([*f["train"], *f["val"], *f["test"]]) == sorted(CASES)
        assert not set(f["train"]) & set(f["val"]) and not set(f["val"]) & set(f["test"])
    # top level: fold 0's split; unlabelled cases are infer
    assert {n: s[n] for n in ("train", "val", "test")} == folds[0] and s["infer"] == ["u1"]
    # nnU-Net's file: k folds, val = the fold's test set
    nn = split.nnunet_folds(s)
    assert [f["val"] for f in nn] == [f["test"] for f in folds]
    assert all(sorted(f["train"] + f["val"]) == sorted(CASES) for f in nn)


def test_ordered_folds_are_round_robin() -> None:
    s = split.make_split(CASES, n_val=1, folds=3)
    assert [f["test"] for f in s["folds"]] == [
        ["c1", "c4", "c7", "c10"], ["c2", "c5", "c8"], ["c3", "c6", "c9"]]
    assert s["folds"][1]["val"] == ["c1"]  # first of the rest in the rule's order


def test_stratified_folds_balance_every_stratum() -> None:
    values = {c: ("ct" if i < 7 else "mr") for i, c in enumerate(CASES)}  # 7 ct, 3 mr
    strata = split.Strata("modality", values)
    s = split.make_split(CASES, n_val=1, folds=3, strata=strata)
    for f in s["folds"]:
        per = Counter(values[c] for c in f["test"])
        assert per["mr"] == 1 and per["ct"] in (2, 3)
    assert Counter(c for f in s["folds"] for c in f["test"]) == Counter(dict.fromkeys(CASES, 1))
    assert s["params"]["stratify"]["attribute"] == "modality"


@pytest.mark.parametrize(
    ("k", "n_val", "text"),
    [(1, 1, "at least 2 folds"), (11, 1, "more folds than the 10"),
     (2, 5, "need at least 6")],
)  # fmt: skip
def test_bad_folds_refused(k: int, n_val: int, text: str) -> None:
    with pytest.raises(InputError, match=text):
        split.make_split(CASES, n_val=n_val, folds=k)


def test_without_folds_the_split_is_unchanged() -> None:
    assert "folds" not in split.make_split(CASES, n_test=2, n_val=1)
    assert split.make_split(CASES, n_test=2, n_val=1, folds=None) == split.make_split(
        CASES, n_test=2, n_val=1)


# ------------------------------------------------------------------ the store's folds


def test_store_gives_each_fold_its_split(tmp_path: Path) -> None:
    s = split.make_split(CASES, ["u1"], n_val=1, folds=3)
    split.write_split(tmp_path / "split.json", s)
    for i in range(3):
        store = CaseStore(tmp_path, fold=i)
        assert store.case_ids("test") == s["folds"][i]["test"]
        assert store.case_ids("train") == s["folds"][i]["train"]
        assert store.case_ids("infer") == ["u1"]
    assert CaseStore(tmp_path).case_ids("test") == s["test"]
    with pytest.raises(InputError, match=r"fold 3 not in the store \(it has folds 0..2\)"):
        CaseStore(tmp_path, fold=3)
    split.write_split(tmp_path / "split.json", split.make_split(CASES, n_test=2, n_val=1))
    with pytest.raises(InputError, match="no folds"):
        CaseStore(tmp_path, fold=0)


def test_training_folder_names_and_layout(tmp_path: Path) -> None:
    assert split_training_folder("r/gdl/fold2") == ("r/gdl", 2, None)
    assert split_training_folder("r/gdl/fold0/seed3") == ("r/gdl", 0, 3)
    assert split_training_folder("r/gdl/seed1") == ("r/gdl", None, 1)
    assert training_label("r/gdl/fold1/seed0") == "gdl/fold1/seed0"
    (tmp_path / "gdl" / "fold0").mkdir(parents=True)
    layout.check(tmp_path / "gdl" / "fold1")  # another fold beside it: fine
    layout.check(tmp_path / "gdl" / "fold0" / "seed1")  # seeds inside a fold: fine
    with pytest.raises(InputError, match="holds fold<i> trainings"):
        layout.check(tmp_path / "gdl")
    with pytest.raises(InputError, match="holds fold<i> trainings"):
        layout.check(tmp_path / "gdl" / "seed0")
    (tmp_path / "ce" / "seed0").mkdir(parents=True)
    with pytest.raises(InputError, match="seed<k> trainings and fold<i> trainings never"):
        layout.check(tmp_path / "ce" / "fold0")


# ------------------------------------------------------------------ report pooling

REF = {c: 0.70 + 0.02 * i for i, c in enumerate(CASES)}
FOLD_OF = {c: i % 3 for i, c in enumerate(CASES)}


def write_fold(folder: Path, dice: dict[str, float], fold: int, classes=("spleen",)) -> Path:
    """A fold training folder: 1 epoch, one validation case, test rows of its cases."""
    (folder / "test").mkdir(parents=True)
    pd.DataFrame({"epoch": [1], "val_dice": [0.5]}).to_csv(folder / "epochs.csv", index=False)
    cols = ["epoch", "split", "case", "class", "metric", "value"]
    test = [(1, "test", c, cls, "dice", d) for c, d in dice.items() for cls in classes]
    val = [(1, "val", "v1", cls, "dice", 0.5) for cls in classes]
    pd.DataFrame(val + test, columns=cols).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=cols).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text("1\n")
    args = {"net": "Dimwit", "epochs": 1, "seed": 0, "fold": fold, "out": str(folder)}
    (folder / "args.json").write_text(json.dumps(args))
    pd.DataFrame({"epoch": [1], "seconds": [1.0]}).to_csv(folder / "timing.csv")
    return folder


def folds_of(root: Path, values: dict[str, float], **kw) -> list[Path]:
    return [write_fold(root / f"fold{i}", {c: v for c, v in values.items() if FOLD_OF[c] == i},
                       i, **kw) for i in range(3)]  # fmt: skip


def report(out: Path, dirs: list[Path], *extra: str) -> int:
    args = ["--out", str(out / "report.md"), "--csv", str(out / "report.csv"),
            "--cases-csv", str(out / "cases.csv"), "--metrics", "dice", *extra]
    return run(report_main, [*args, *map(str, dirs)])


def test_report_pools_folds_out_of_fold(tmp_path: Path) -> None:
    root = tmp_path / "results" / "toy" / "folds"
    drop = {c: REF[c] - 0.01 * (i + 1) for i, c in enumerate(CASES)}
    dirs = folds_of(root / "a", REF) + folds_of(root / "b", drop)
    out = tmp_path / "out"
    assert report(out, dirs[::-1], "--stat-reference", "a") == 0
    csv = pd.read_csv(out / "report.csv", keep_default_na=False, dtype=str)
    assert list(zip(csv["method"], csv["fold"], csv["seed"], strict=True)) == [
        ("a", "0", ""), ("a", "1", ""), ("a", "2", ""), ("a", "", ""),
        ("b", "0", ""), ("b", "1", ""), ("b", "2", ""), ("b", "", ""),
    ]  # fmt: skip
    # per fold: its own cases; pooled: every case once
    assert csv["n_test_cases"].tolist() == ["4", "3", "3", "10"] * 2
    # the pooled statistics equal those computed by hand from the per-fold CSVs
    per_fold = pd.concat(pd.read_csv(d / "test" / "metrics.csv") for d in dirs)
    per_fold["method"] = [p.parent.name for p in dirs for _ in
                          range(len(pd.read_csv(p / "test" / "metrics.csv")))]
    wide = per_fold.pivot(index="case", columns="method", values="value").loc[CASES]
    assert len(per_fold) == 20 and wide.notna().all().all()  # each case once per method
    diffs = (wide["b"] - wide["a"]).to_numpy()
    b = csv[(csv.method == "b") & (csv.fold == "")].iloc[0]
    assert float(b["test_dice_mean"]) == pytest.approx(wide["b"].mean())
    assert float(b["test_dice_sd"]) == pytest.approx(wide["b"].std(ddof=1))
    assert b["stat_dice_n"] == "10"
    assert float(b["stat_dice_diff"]) == pytest.approx(diffs.mean())
    _, lo, hi = paired_bootstrap_ci(diffs)
    assert float(b["stat_dice_ci_lo"]) == pytest.approx(lo)
    assert float(b["stat_dice_ci_hi"]) == pytest.approx(hi)
    assert float(b["stat_dice_p"]) == pytest.approx(wilcoxon_p(diffs))
    assert b["stat_dice_verdict"] == "worse"
    f1 = csv[(csv.method == "b") & (csv.fold == "1")].iloc[0]
    assert float(f1["test_dice_mean"]) == pytest.approx(
        np.mean([drop[c] for c in CASES if FOLD_OF[c] == 1]))
    cases = pd.read_csv(out / "cases.csv", keep_default_na=False, dtype=str)
    pooled = cases[(cases.method == "b") & (cases.fold == "pooled")]
    assert pooled["case"].tolist() == CASES
    assert [float(v) for v in pooled["value"]] == pytest.approx([drop[c] for c in CASES])
    md = (out / "report.md").read_text()
    assert "b (folds 0, 1, 2, pooled out of fold)" in md
    assert "\n| b/fold1 | spleen |" in md
    assert "| training wall time | 3.0 s (fold0: 1.0 s, fold1: 1.0 s, fold2: 1.0 s) |" in md


def test_report_refuses_a_case_in_two_folds(tmp_path: Path, capsys) -> None:
    root = tmp_path / "results" / "toy" / "folds" / "a"
    dirs = folds_of(root, REF)
    extra = pd.read_csv(dirs[1] / "test" / "metrics.csv")
    extra.loc[0, "case"] = "c1"  # c1 is fold 0's
    extra.to_csv(dirs[1] / "test" / "metrics.csv", index=False)
    assert report(tmp_path / "out", dirs) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test case c1 is also in a/fold0's test set" in err[0]


def test_report_refuses_folds_with_other_classes(tmp_path: Path, capsys) -> None:
    root = tmp_path / "results" / "toy" / "folds" / "a"
    dirs = [write_fold(root / "fold0", {"c1": 0.8}, 0),
            write_fold(root / "fold1", {"c2": 0.8}, 1, classes=("liver",))]
    assert report(tmp_path / "out", dirs) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classes differ from a/fold0's" in err[0]


# ------------------------------------------------------------------ the fold ensemble


class Fixed(torch.nn.Module):
    """A 1x1 convolution with fixed weights: logits of 3 classes from 1 channel."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0], [-1.0], [0.5]]).view(3, 1, 1, 1) * scale)
            self.conv.bias.copy_(torch.tensor([0.0, 0.2, -0.1]) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_ensemble_is_the_mean_of_the_fold_probabilities() -> None:
    precision = dev.choose("cpu", "off")
    members = [Predictor(Fixed(s).eval(), precision, 2, 2) for s in (1.0, -2.0)]
    image = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    probs = [m.predict(image)[1] for m in members]
    labels, mean = EnsemblePredictor(members).predict(image)
    assert mean.dtype == np.float32 and mean.shape == (3, 3, 4, 5)
    np.testing.assert_allclose(mean, (probs[0] + probs[1]) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(labels, mean.argmax(axis=0))
    assert not np.array_equal(labels, probs[0].argmax(axis=0))  # the models disagree


def test_fold_trainings_found_in_fold_then_seed_order(tmp_path: Path) -> None:
    for sub in ("fold10", "fold2/seed1", "fold2/seed0", "fold0"):
        (tmp_path / "m" / sub).mkdir(parents=True)
    assert [p.relative_to(tmp_path / "m").as_posix() for p in fold_trainings(tmp_path / "m")] \
        == ["fold0", "fold2/seed0", "fold2/seed1", "fold10"]
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "args.json").write_text("{}")
    assert fold_trainings(tmp_path / "one") == []


# ------------------------------------------------------------------ make

MAKE = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "FOLDS=3",
        "METHODS=gdl")  # fmt: skip
RUN = Path("results/spleen-toy/folds")


@pytest.mark.parametrize("value", ["1", "0", "x", "2 3", "05", "-2"])
def test_make_refuses_bad_folds(value: str, run_make) -> None:
    repo = Path(__file__).resolve().parents[1]
    proc = run_make(repo, "-n", "-f", "spleen.make", "TOY=1", f"FOLDS={value}", "train")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "the number of cross-validation folds is one integer >= 2" \
        in lines[0]


@pytest.fixture(scope="module")
def two_folds(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    """A toy project with folds 0 and 1 of FOLDS=3 trained (fold 2 not)."""
    root = copy_project(tmp_path_factory.mktemp("folds"))
    proc: subprocess.CompletedProcess[str] = run_make(
        root, "-j2", *MAKE, str(RUN / "gdl" / "fold0"), str(RUN / "gdl" / "fold1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


@pytest.mark.make
def test_adding_a_fold_trains_only_that_fold(two_folds: Path, run_make) -> None:
    proc = run_make(two_folds, "-n", *MAKE, "train")
    assert proc.returncode == 0, proc.stderr
    outs = [w for line in proc.stdout.splitlines() if "segline.train" in line
            for w in [line.split("--out ")[1].split()[0]]]
    assert outs == [str(RUN / "gdl" / "fold2")]
    assert "--fold 2" in proc.stdout and "preprocess/slice.py" not in proc.stdout


@pytest.mark.make
def test_fold_trainings_test_their_fold(two_folds: Path) -> None:
    store = json.loads((two_folds / "data/spleen-toy/cases/split.json").read_text())
    assert store["params"]["folds"] == 3 and len(store["folds"]) == 3
    nn = json.loads((two_folds / "data/spleen-toy/cases/splits_final.json").read_text())
    assert [f["val"] for f in nn] == [f["test"] for f in store["folds"]]
    for i in range(2):
        folder = two_folds / RUN / "gdl" / f"fold{i}"
        assert json.loads((folder / "args.json").read_text())["fold"] == i
        tested = pd.read_csv(folder / "test" / "metrics.csv")["case"].unique().tolist()
        assert sorted(tested) == sorted(store["folds"][i]["test"])


def test_a_fold_training_opens_the_store_on_its_fold(tmp_path: Path) -> None:
    from segline.predict import store_of

    cases = tmp_path / "cases"
    cases.mkdir()
    s = split.make_split(CASES, ["u1"], n_val=1, folds=3)
    split.write_split(cases / "split.json", s)
    for i in (0, 1):
        fold = tmp_path / "m" / f"fold{i}"
        fold.mkdir(parents=True)
        (fold / "best.pt").write_bytes(b"")
        (fold / "args.json").write_text(json.dumps({"cases": str(cases), "fold": i}))
    # the evaluation stage scores a fold training on the cases it held out
    assert store_of(tmp_path / "m" / "fold1").case_ids("test") == s["folds"][1]["test"]
    # the method's ensemble: the store's own split (infer is every fold's)
    ensemble = store_of(tmp_path / "m")
    assert ensemble.fold is None and ensemble.case_ids("infer") == ["u1"]


def test_report_folds_with_seeds_pool_per_case_over_seeds(tmp_path: Path) -> None:
    root = tmp_path / "results" / "toy" / "folds-seeds" / "a"
    up = {c: v + 0.1 for c, v in REF.items()}
    dirs = []
    for i in range(3):
        for seed, values in ((0, REF), (1, up)):
            mine = {c: v for c, v in values.items() if FOLD_OF[c] == i}
            dirs.append(write_fold(root / f"fold{i}" / f"seed{seed}", mine, i))
    out = tmp_path / "out"
    assert report(out, dirs) == 0
    csv = pd.read_csv(out / "report.csv", keep_default_na=False, dtype=str)
    assert [r for r in zip(csv["fold"], csv["seed"], strict=True)] == [
        ("0", "0"), ("0", "1"), ("1", "0"), ("1", "1"), ("2", "0"), ("2", "1"), ("", "")]
    pooled = csv.iloc[-1]
    assert pooled["n_test_cases"] == "10"
    assert float(pooled["test_dice_mean"]) == pytest.approx(np.mean(list(REF.values())) + 0.05)


def test_figures_name_folds_as_folds() -> None:
    """Progress titles and curve legends say folds for a cross-validated method, seeds
    for seeds (the words are shared: segline.seeds.trainings_word)."""
    from types import SimpleNamespace

    from segline.plots.progress import _title_trainings
    from segline.seeds import trainings_word

    def group(*subs: tuple[int | None, int | None]) -> SimpleNamespace:
        return SimpleNamespace(runs=[SimpleNamespace(fold=f, seed=s) for f, s in subs])

    assert _title_trainings(group((0, None), (1, None), (2, None))) == (
        "folds 0, 1, 2: thin lines each fold, thick their mean")
    assert _title_trainings(group((None, 0), (None, 1))) == (
        "seeds 0, 1: thin lines each seed, thick their mean")
    assert _title_trainings(group((0, 0), (1, 0))) == (
        "trainings fold0/seed0, fold1/seed0: thin lines each training, thick their mean")
    assert _title_trainings(group((None, None))) == "one training"
    assert _title_trainings(group((None, 3))) == "seed 3"
    assert trainings_word([0, 1], [None, None]) == "folds"
    assert trainings_word([0, 1], [0, 0]) == "trainings (folds × seeds)"
