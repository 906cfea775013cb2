"""Splits users choose (segline.preprocess.split, preprocess/slice.py, make's SPLIT knobs).

Ordered (the default, unchanged), random with a seed, stratified by a per-case
attribute, and nnU-Net ``splits_final.json`` files read (a fold) and written (every
case store's own copy). One make-level check: ``SPLIT=random`` changes the slicing
record, so make plans slicing and the stages after it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_project, make_env
from msd_builder import make_task
from nnunet_builder import make_dataset
from segline.datasets.msd import MSDAdapter, TaskFolderCases
from segline.datasets.nnunet import NNUNetAdapter
from segline.digest import sha256_file
from segline.errors import InputError
from segline.preprocess import split as sp
from segline.preprocess.slicing import SliceParams, choose_split, main

REPO = Path(__file__).resolve().parents[1]
IDS = [f"case_{i}" for i in range(1, 13)]  # 12 labelled cases
# The shape: five cases, three MR first in natural order, two CT.
MIXED = {"case_1": "MR", "case_2": "MR", "case_3": "MR", "case_4": "CT", "case_5": "CT"}


def _write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


# ------------------------------------------------------------------ ordered, random


def test_ordered_default_is_the_natural_order_rule_with_the_same_params() -> None:
    shuffled = [IDS[i] for i in (5, 0, 11, 3, 9, 1, 7, 2, 10, 4, 8, 6)]
    s = sp.make_split(shuffled, ["x_1"], n_test=3, n_val=2)
    assert s["test"] == ["case_1", "case_2", "case_3"]
    assert s["val"] == ["case_4", "case_5"]
    assert s["train"] == IDS[5:] and s["infer"] == ["x_1"]
    # exactly the params (hence bytes) of every case store sliced before the knobs
    assert s["params"] == {"n_test": 3, "n_val": 2, "rule": sp.RULE}
    assert sp.make_split(shuffled, ["x_1"], 3, 2, rule="ordered", seed=9) == s


def test_random_is_deterministic_independent_of_input_order_and_differs_by_seed() -> None:
    a = sp.make_split(IDS, n_test=3, n_val=2, rule="random", seed=0)
    b = sp.make_split(list(reversed(IDS)), n_test=3, n_val=2, rule="random", seed=0)
    assert a == b
    assert sorted(a["test"] + a["val"] + a["train"]) == sorted(IDS)
    assert len(a["test"]) == 3 and len(a["val"]) == 2 and len(a["train"]) == 7
    assert a["params"]["split"] == "random" and a["params"]["seed"] == 0
    assert "default_rng(0)" in a["params"]["rule"]
    perm = [IDS[int(i)] for i in np.random.default_rng(0).permutation(12)]
    assert a["test"] == sp.sorted_cases(perm[:3]) and a["val"] == sp.sorted_cases(perm[3:5])
    tests = {tuple(sp.make_split(IDS, n_test=3, n_val=2, rule="random", seed=k)["test"])
             for k in range(6)}
    assert len(tests) > 1  # seeds give other test sets


def test_unknown_rule_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown split rule 'shuffle'"):
        sp.make_split(IDS, n_test=1, n_val=1, rule="shuffle")


# ------------------------------------------------------------------ stratified


def test_stratified_puts_both_kinds_into_test_where_order_does_not() -> None:
    ordered = sp.make_split(list(MIXED), n_test=2, n_val=1)
    assert ordered["test"] == ["case_1", "case_2"]  # both MR: the problem
    strata = sp.Strata("modality", MIXED)
    for rule in ("ordered", "random"):
        for seed in range(4):
            s = sp.make_split(list(MIXED), n_test=2, n_val=1, rule=rule, seed=seed,
                              strata=strata)
            assert {MIXED[c] for c in s["test"]} == {"MR", "CT"}, (rule, seed, s)
            assert len(s["val"]) == 1 and len(s["train"]) == 2
    s = sp.make_split(list(MIXED), n_test=2, n_val=1, strata=strata)
    assert s["test"] == ["case_1", "case_4"] and s["val"] == ["case_2"]
    assert s["params"]["stratify"] == {"attribute": "modality", "strata": {"CT": 2, "MR": 3}}
    assert "stratum in proportion" in s["params"]["rule"]


def test_largest_remainder_quotas_are_deterministic() -> None:
    # strata 5 / 3 / 2 of 10, n = 3: shares 1.5 / 0.9 / 0.6 -> floors 1 / 0 / 0, the two
    # left over go to the largest remainders (0.9, 0.6): one case of each
    groups = {f"c_{i}": "a" if i <= 5 else "b" if i <= 8 else "c" for i in range(1, 11)}
    order = sp.sorted_cases(list(groups))
    assert sp._take(order, 3, groups) == ["c_1", "c_6", "c_9"]
    # equal remainders: the larger stratum first
    two = {"c_1": "a", "c_2": "a", "c_3": "a", "c_4": "b"}
    assert sp._take(sp.sorted_cases(list(two)), 1, two) == ["c_1"]


def test_prefix_and_modality_attributes_and_a_csv(tmp_path: Path) -> None:
    ids = ["mr_1", "mr_2", "mr_3", "ct_1", "ct_2"]
    prefix = sp.builtin_attributes("prefix", ids, ["CT"])
    assert dict(prefix.values) == {"mr_1": "mr", "mr_2": "mr", "mr_3": "mr",
                                   "ct_1": "ct", "ct_2": "ct"}
    s = sp.make_split(ids, n_test=2, n_val=1, strata=prefix)
    assert sorted(c.split("_")[0] for c in s["test"]) == ["ct", "mr"]
    mod = sp.builtin_attributes("modality", ids, ["T2", "ADC"])
    assert set(mod.values.values()) == {"T2+ADC"}
    given = {c: {"modality": "MR" if c.startswith("mr") else "CT"} for c in ids}
    assert sp.builtin_attributes("modality", ids, ["CT"], given).values["mr_2"] == "MR"
    with pytest.raises(InputError, match="STRATIFY=site: unknown attribute"):
        sp.builtin_attributes("site", ids, ["CT"])
    csv_path = tmp_path / "attrs.csv"
    csv_path.write_text("case,modality,site\n" + "".join(
        f"{c},{m},s{i % 2}\n" for i, (c, m) in enumerate(MIXED.items())))
    strata = sp.read_attribute_csv(csv_path, "")
    assert strata.attribute == "modality" and strata.values["case_4"] == "CT"
    s = sp.make_split(list(MIXED), n_test=2, n_val=1, strata=strata)
    assert s["params"]["stratify"]["name"] == "attrs.csv"
    assert s["params"]["stratify"]["sha256"] == sha256_file(csv_path)
    assert sp.read_attribute_csv(csv_path, "site").values["case_2"] == "s1"


@pytest.mark.parametrize(("text", "attr", "problem"), [
    ("case,modality\ncase_1,MR\n", "", "case 'case_2' has no 'modality' value"),
    ("case,modality\n" + "".join(f"{c},{m}\n" for c, m in MIXED.items()) + "case_9,CT\n",
     "", "case 'case_9' is not a case of the dataset"),
    ("case,modality\ncase_1,MR\ncase_1,CT\n", "", "row 3: case 'case_1' listed twice"),
    ("case,modality\ncase_1,\n", "", "row 2: case 'case_1' has an empty 'modality'"),
    ("case,modality\ncase_1,MR\n", "site", "no column 'site'"),
    ("case\n", "", "expected a header row"),
])
def test_bad_stratify_files_refused(tmp_path: Path, text: str, attr: str, problem: str) -> None:
    path = tmp_path / "attrs.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        sp.make_split(list(MIXED), n_test=2, n_val=1, strata=sp.read_attribute_csv(path, attr))
    assert err.value.where == str(path) and "\n" not in str(err.value)


# ------------------------------------------------------------------ splits_final.json


@pytest.mark.parametrize(("rule", "seed", "stratified"), [
    ("ordered", 0, False), ("random", 3, False), ("random", 5, True)])
def test_written_splits_final_reads_back_to_the_same_split(
        tmp_path: Path, rule: str, seed: int, stratified: bool) -> None:
    groups = {c: "a" if i % 3 else "b" for i, c in enumerate(IDS)}
    strata = sp.Strata("kind", groups) if stratified else None
    s = sp.make_split(IDS, ["x_1"], n_test=4, n_val=2, rule=rule, seed=seed, strata=strata)
    path = tmp_path / sp.NNUNET_FILE
    sp.write_nnunet_splits(path, s)
    folds = json.loads(path.read_text())
    assert folds == [{"train": sp.sorted_cases(s["train"] + s["val"]), "val": s["test"]}]
    back = sp.make_split(IDS, ["x_1"], n_test=0, n_val=2, rule=rule, seed=seed, strata=strata,
                         splits_file=sp.read_splits_file(path))
    for name in ("train", "val", "test", "infer"):
        assert back[name] == s[name], name
    assert back["params"]["split_file"] == {"name": sp.NNUNET_FILE, "fold": 0,
                                            "sha256": sha256_file(path)}
    assert back["params"]["n_test"] == 4


def test_nnunet_file_with_folds_uses_the_chosen_fold(tmp_path: Path) -> None:
    folds = [{"train": IDS[3:], "val": IDS[:3]}, {"train": IDS[:3] + IDS[6:], "val": IDS[3:6]},
             {"train": IDS[:9], "val": IDS[9:]}]
    path = _write(tmp_path / "splits_final.json", folds)
    s = sp.make_split(IDS, n_test=20, n_val=2, splits_file=sp.read_splits_file(path, 1))
    assert s["test"] == ["case_4", "case_5", "case_6"]  # fold 1's val: held out
    assert s["val"] == ["case_1", "case_2"]  # first n_val of the fold's train
    assert s["train"] == ["case_3", *IDS[6:]]
    assert "val of fold 1 of splits_final.json" in s["params"]["rule"]
    with pytest.raises(InputError, match=r"fold 3 not in the file \(it has folds 0\.\.2\)"):
        sp.read_splits_file(path, 3)


@pytest.mark.parametrize(("content", "problem"), [
    ([{"train": IDS[1:] + ["case_99"], "val": IDS[:1]}], "fold 0: case 'case_99' is not a case"),
    ([{"train": IDS[1:] + ["case_2"], "val": IDS[:1]}], "fold 0: case 'case_2' is twice"),
    ([{"train": IDS, "val": IDS[:1]}], "fold 0: case 'case_1' is in both train and val"),
    ([{"train": IDS[1:] + ["x_1"], "val": IDS[:1]}], "fold 0: case 'x_1' has no label"),
    ([{"train": IDS[2:], "val": IDS[:1]}], "labelled case 'case_2' is in neither"),
    ([{"train": IDS[1:], "val": IDS[:1]}, {"train": IDS + ["y"], "val": []}],
     "fold 1: case 'y' is not a case"),
    ('[{"train": ["case_1"], "val": [', "not valid JSON"),
    ({"train": IDS, "val": []}, "expected a non-empty JSON list of folds"),
    ([], "expected a non-empty JSON list of folds"),
    ([{"train": IDS}], "fold 0: expected an object with exactly 'train' and 'val'"),
    ([{"train": IDS, "val": [1]}], "fold 0: 'val' must be a list of case ids"),
    ([{"train": IDS[:2], "val": IDS[2:]}], "fold 0: 2 train cases, need at least 3"),
])
def test_bad_splits_files_refused_with_one_line(tmp_path: Path, content: object,
                                                problem: str) -> None:
    path = tmp_path / "splits_final.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(InputError) as err:
        sp.make_split(IDS, ["x_1"], n_val=2, splits_file=sp.read_splits_file(path))
    assert err.value.where == str(path) and problem in err.value.problem
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ the slicing stage


class _Adapter:
    """What choose_split reads of an adapter (no images needed)."""

    raw = Path("raw")
    channels = ["CT"]

    def __init__(self, attributes: dict[str, dict[str, str]] | None = None) -> None:
        self._attributes = attributes

    def labelled(self) -> list[str]:
        return list(MIXED)

    def unlabelled(self) -> list[str]:
        return []

    def case_attributes(self) -> dict[str, dict[str, str]]:
        return self._attributes or {}


def test_choose_split_takes_the_adapters_per_case_attribute() -> None:
    adapter = _Adapter({c: {"modality": m} for c, m in MIXED.items()})
    s = choose_split(adapter, SliceParams(n_test=2, n_val=1, stratify="modality"))
    assert {MIXED[c] for c in s["test"]} == {"MR", "CT"}
    s = choose_split(_Adapter(), SliceParams(n_test=2, n_val=1, stratify="modality"))
    assert s["test"] == ["case_1", "case_2"]  # one stratum: all CT


def test_msd_dataset_json_extra_keys_are_case_attributes_for_strata(tmp_path: Path) -> None:
    """3 MR + 2 CT entries (ids say nothing of it): STRATIFY=modality puts one of each
    into test; without it, natural order puts the first two (both MR) there."""
    extra: dict[str, dict[str, object]] = {c: {"modality": m} for c, m in MIXED.items()}
    extra["case_1"] |= {"site": "A", "age": 61, "scanner": None}  # non-strings are not attributes
    make_task(tmp_path / "raw", train_ids=list(MIXED), test_ids=["u_1"], extra=extra)
    adapter = MSDAdapter(tmp_path / "raw")
    got = adapter.case_attributes()
    assert got == {c: {"modality": m} for c, m in MIXED.items() if c != "case_1"} | {
        "case_1": {"modality": "MR", "site": "A"}}
    assert adapter.labelled() == list(MIXED) and adapter.channels == ["CT"]
    s = choose_split(adapter, SliceParams(n_test=2, n_val=1, stratify="modality"))
    assert sorted(MIXED[c] for c in s["test"]) == ["CT", "MR"]
    assert s["test"] == ["case_1", "case_4"] and s["infer"] == ["u_1"]
    assert s["params"]["stratify"] == {"attribute": "modality", "strata": {"CT": 2, "MR": 3}}
    assert choose_split(adapter, SliceParams(n_test=2, n_val=1))["test"] == ["case_1", "case_2"]
    # the same through the slicing CLI, recorded in split.json
    out = tmp_path / "cases"
    assert main(["--raw", str(tmp_path / "raw"), "--out", str(out), "--n-test", "2",
                 "--n-val", "1", "--no-window", "--stratify", "modality"]) == 0
    written = json.loads((out / "split.json").read_text())
    assert written["test"] == ["case_1", "case_4"]
    # an attribute only some entries give is refused (never a silent fallback)
    with pytest.raises(InputError) as err:
        choose_split(adapter, SliceParams(n_test=2, n_val=1, stratify="site"))
    assert str(err.value) == "STRATIFY=site: case 'case_2' has no 'site' value (and 3 more)"


def test_adapters_without_per_case_attributes_fall_back_to_the_built_in_ones(
    tmp_path: Path,
) -> None:
    """A plain MSD file and nnU-Net v2 (whose dataset.json lists no cases) give none:
    STRATIFY=modality is the dataset's channels (one stratum), prefix the id's letters."""
    make_task(tmp_path / "raw", train_ids=["ct_1", "ct_2", "mr_1", "mr_2", "mr_3"], test_ids=[])
    adapter = MSDAdapter(tmp_path / "raw")
    assert adapter.case_attributes() == {}
    assert choose_split(adapter, SliceParams(n_test=2, n_val=1, stratify="modality"))[
        "test"] == ["ct_1", "ct_2"]
    s = choose_split(adapter, SliceParams(n_test=2, n_val=1, stratify="prefix"))
    assert s["test"] == ["ct_1", "mr_1"]
    assert NNUNetAdapter.case_attributes is TaskFolderCases.case_attributes
    nnunet = NNUNetAdapter(make_dataset(tmp_path / "nnUNet_raw").parent)
    assert nnunet.case_attributes() == {}


def test_cli_writes_split_json_and_splits_final_and_refuses_a_bad_file(tmp_path: Path) -> None:
    ids = ["ct_1", "ct_2", "mr_1", "mr_2", "mr_3"]
    make_task(tmp_path / "raw", train_ids=ids, test_ids=["u_1"])
    out = tmp_path / "cases"
    args = ["--raw", str(tmp_path / "raw"), "--out", str(out), "--n-test", "2", "--n-val", "1",
            "--no-window"]
    assert main([*args, "--split", "random", "--split-seed", "4", "--stratify", "prefix"]) == 0
    written = json.loads((out / "split.json").read_text())
    assert sorted(c[:2] for c in written["test"]) == ["ct", "mr"]
    assert written["params"]["seed"] == 4 and written["params"]["split"] == "random"
    assert written["params"]["stratify"] == {"attribute": "prefix",
                                             "strata": {"ct": 2, "mr": 3}}
    final = json.loads((out / sp.NNUNET_FILE).read_text())
    assert final == [{"train": sp.sorted_cases(written["train"] + written["val"]),
                      "val": written["test"]}]
    # the store's own file, read back with the same rule, gives the same split
    again = tmp_path / "again"
    kept = tmp_path / "kept.json"
    kept.write_bytes((out / sp.NNUNET_FILE).read_bytes())
    assert main([*args[:2], "--out", str(again), *args[4:], "--split", "random",
                 "--split-seed", "4", "--stratify", "prefix", "--split-file", str(kept)]) == 0
    back = json.loads((again / "split.json").read_text())
    assert all(back[k] == written[k] for k in ("train", "val", "test", "infer"))
    # a bad file: one line naming it, exit 2, no store
    bad = _write(tmp_path / "bad.json", [{"train": ids[1:], "val": ["ct_9"]}])
    proc = subprocess.run(
        [sys.executable, str(REPO / "preprocess" / "slice.py"), *args[:2], "--out",
         str(tmp_path / "none"), "--split-file", str(bad)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2  # segline.cli.EXIT_INPUT
    assert proc.stderr.strip().splitlines() == [
        f"segline: {bad}: fold 0: case 'ct_9' is not a case of the dataset"]
    assert not (tmp_path / "none").exists() and not (tmp_path / "none_tmp").exists()


# ------------------------------------------------------------------ make


@pytest.mark.make
def test_make_split_random_changes_the_slicing_record(tmp_path: Path, run_make) -> None:
    task = make_task(tmp_path / "msd", test_ids=[])
    root = copy_project(tmp_path / "proj")
    args = ("-f", "spleen.make", f"DATASET_DIR={task}", "DS=sp", "N_TEST=2", "N_VAL=1",
            "WINDOW=none")
    proc = run_make(root, *args, "data")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = json.loads((root / "data/sp/cases/split.json").read_text())
    assert written["params"] == {"n_test": 2, "n_val": 1, "rule": sp.RULE}
    assert (root / "data/sp/cases/splits_final.json").is_file()

    def planned(*extra: str) -> list[str]:
        out = run_make(root, *args, *extra, "-n", "data").stdout
        return [ln for ln in out.splitlines() if "preprocess/" in ln]

    assert planned() == []
    plan = planned("SPLIT=random")
    assert any("preprocess/slice.py" in ln and "--split random --split-seed 0" in ln
               for ln in plan), plan
    # early cutoff: -n plans the re-slice only; the maps follow if its content changes
    assert not any("preprocess/distmaps.py" in ln for ln in plan), plan
    plan = planned("SPLIT=random", "--what-if=data/sp/.cases.content")
    assert any("preprocess/distmaps.py" in ln for ln in plan), plan
    plan = planned("SPLIT_FILE=data/sp/cases/splits_final.json", "STRATIFY=prefix")
    assert any("--split-file data/sp/cases/splits_final.json --split-fold 0" in ln
               and "--stratify prefix" in ln for ln in plan), plan
    assert planned("SPLIT_SEED=5") == []  # the seed of the ordered rule is unused


@pytest.mark.parametrize("value", ["bogus", "Random", "random ordered"])
def test_make_refuses_an_unknown_split_rule_at_parse_time(tmp_path: Path, value: str) -> None:
    """`make -n` stops before any recipe with one line naming the knob and the choices."""
    root = copy_project(tmp_path / "p")
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", "-f", "spleen.make", "TOY=1", f"SPLIT={value}",
         "data"], cwd=root, env=make_env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert (f"SPLIT={value}: use SPLIT=ordered (natural order of the case ids) or "
            "SPLIT=random (a permutation seeded by SPLIT_SEED)") in proc.stderr
    assert not (root / "data").exists()
    ok = subprocess.run(
        ["make", "-n", "--no-print-directory", "-f", "spleen.make", "TOY=1", "SPLIT=random",
         "data"], cwd=root, env=make_env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert ok.returncode == 0 and "--split random --split-seed 0" in ok.stdout, ok.stderr
