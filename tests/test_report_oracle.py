"""Oracle methods in the report, and the evaluation stage's hook for predictors that
read the test labels.

A training whose test predictions used the test cases' labels records ``"oracle":
true`` in ``args.json``. The report marks its rows in every table and leaves it out of
the statistics (and of the CSV's ``best_*`` marks); it cannot be the statistics'
reference. Folders: the three hand-set methods of ``test_report`` (boundary, dice,
focal), ``dice`` marked oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segline.casestore import CaseStore
from segline.eval_stage import predict_case
from test_report import VAL_MEAN, results_lines, run_report, write_args, write_method

MARK = "dice (oracle: uses test labels)"


@pytest.fixture
def oracle_results(tmp_path: Path) -> Path:
    """results/toy/ with boundary, dice (oracle) and focal."""
    root = tmp_path / "results" / "toy"
    for name in VAL_MEAN:
        write_method(root, name)
    write_args(root / "dice", "dice", oracle=True)
    return root


def _section(md: str, heading: str) -> str:
    """The text of the section starting at ``heading`` up to the next ``## ``."""
    return md.split(heading, 1)[1].split("\n## ")[0]


def test_oracle_rows_marked_and_left_out_of_statistics(
    oracle_results: Path, tmp_path: Path
) -> None:
    assert run_report(oracle_results, tmp_path) == 0
    md = (tmp_path / "report.md").read_text()
    # the methods line names it with the mark, and one line explains the mark
    assert f"Methods (3): boundary, {MARK}, focal." in md
    assert "Oracle: a method marked *(oracle: uses test labels)*" in md
    # results table: its row is marked, the others are not
    labels = [line.split("|")[1].strip() for line in results_lines(md)][1:]
    assert labels == ["boundary", MARK, "focal"]
    # per-case table and configuration table name it with the mark too
    per_case = _section(md, "## Per test case")
    assert f"| {MARK} Dice | {MARK} HD95 |" in per_case
    config = _section(md, "## Configuration and provenance")
    assert f"| field | boundary | {MARK} | focal |" in config
    assert "| oracle | – | yes | – |" in config
    # statistics: against boundary (the first method that is no oracle), focal only
    stats = _section(md, "## Statistics")
    assert stats.startswith(": each method against boundary")
    assert "Left out: dice (oracle: its test predictions used the test cases' labels" in stats
    rows = [line.split("|")[1].strip() for line in stats.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]
    assert rows and set(rows) == {"focal"}
    csv = pd.read_csv(tmp_path / "report.csv").set_index("method")
    assert csv.loc["dice", ["stat_dice_p", "stat_hd95_p"]].isna().all()
    assert np.isfinite(csv.loc["focal", "stat_dice_p"])
    # best marks: without the oracle, dice (best HD95 4.00 ± 2.00) no longer wins; boundary
    # has an undefined HD95, so focal (9.00) is the best HD95 of the others
    assert csv["best_test_hd95"].to_dict() == {"boundary": False, "dice": False, "focal": True}
    assert csv["best_test_dice"].to_dict() == {"boundary": True, "dice": False, "focal": False}


def test_without_oracle_no_mark(oracle_results: Path, tmp_path: Path) -> None:
    write_args(oracle_results / "dice", "dice", oracle=False)
    assert run_report(oracle_results, tmp_path) == 0
    md = (tmp_path / "report.md").read_text()
    assert "oracle" not in md.lower().replace("| oracle | – | no | – |", "")
    stats = _section(md, "## Statistics")
    assert "| dice |" in stats and "Left out" not in stats


def test_oracle_as_stat_reference_refused(oracle_results: Path, tmp_path: Path, capsys) -> None:
    rc = run_report(oracle_results, tmp_path, "--stat-reference", "dice")
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("segline: --stat-reference: 'dice' is an oracle")
    assert "pick one of boundary, focal" in err
    assert not (tmp_path / "report.md").exists()


def test_only_oracle_and_one_method(oracle_results: Path, tmp_path: Path) -> None:
    assert run_report(oracle_results, tmp_path, methods=["boundary", "dice"]) == 0
    stats = _section((tmp_path / "report.md").read_text(), "## Statistics")
    assert "Left out: dice" in stats and "One method: nothing to compare." in stats


# ------------------------------------------------------ evaluation stage: reads_labels
class PlainPredictor:
    """A predictor that never sees labels: thresholds the first channel."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, None]:
        self.calls.append({"shape": image.shape})
        return (image[0] > 0.5).astype(np.uint8), None


class OraclePredictor:
    """A predictor that asks for the case's label (``reads_labels``) and returns it."""

    reads_labels = True

    def __init__(self) -> None:
        self.labels: list[np.ndarray] = []

    def predict(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, None]:
        assert label.shape == image.shape[1:]
        self.labels.append(label)
        return label.copy(), None


def test_predict_case_passes_the_label_only_to_a_predictor_that_reads_labels(
    store: tuple[Path, Path],
) -> None:
    cases = CaseStore(store[0])
    case = cases.case_ids("test")[0]
    want = np.asarray(cases.label(case))

    plain = PlainPredictor()
    labels, probs = predict_case(plain, cases, case)
    assert plain.calls == [{"shape": np.asarray(cases.image(case)).shape}] and probs is None
    assert labels.shape == want.shape

    oracle = OraclePredictor()
    labels, _ = predict_case(oracle, cases, case)
    (got,) = oracle.labels
    assert got.dtype == np.uint8 and got.shape == want.shape and got.ndim == 3
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(labels, want)
    assert int(want.sum()) > 0  # the toy case has foreground: the label is a real one


def test_reads_labels_false_gets_no_label(store: tuple[Path, Path]) -> None:
    class NotOracle(PlainPredictor):
        reads_labels = False

    cases = CaseStore(store[0])
    p = NotOracle()
    predict_case(p, cases, cases.case_ids("test")[0])
    assert len(p.calls) == 1


def test_training_test_predictions_pass_the_label_to_an_oracle(store, tmp_path: Path) -> None:
    """The trainer's own test predictions (Trainer._predicted) call an oracle predictor
    with the case store's label, as the evaluation stage does; others without it."""
    from segline.train import device as dev
    from segline.train.loop import TrainConfig, Trainer

    class Stub:
        reads_labels = True

        def __init__(self) -> None:
            self.seen: list[np.ndarray | None] = []

        def predict(self, image, *, probabilities=False, label=None):
            self.seen.append(label)
            return np.zeros(image.shape[1:], np.uint8), None

    cases, dist = store
    cfg = TrainConfig(str(cases), str(dist), str(tmp_path / "m"), net="Dimwit", losses="gdl:1")
    trainer = Trainer(cfg, dev.choose("cpu", "off"), [])
    stub = Stub()
    trainer._model_predictor = lambda: stub  # type: ignore[method-assign]
    ids = CaseStore(cases, dist).case_ids("test")
    assert [c for c, _, _ in trainer._predicted(ids, None)] == ids
    for case, label in zip(ids, stub.seen, strict=True):
        assert label is not None and label.dtype == np.uint8
        np.testing.assert_array_equal(label, np.asarray(CaseStore(cases, dist).label(case)))
    stub.reads_labels = False
    stub.seen.clear()
    list(trainer._predicted(ids, None))
    assert stub.seen == [None] * len(ids)
