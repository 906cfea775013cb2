"""Per-case prediction times: every training predicting through the core's
``_predictions`` writes ``test/timing.csv`` (case, seconds), left out of content
digests like ``timing.csv``; the report's configuration gives their mean per method."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from conftest import train_cli
from segline.casestore import CaseStore
from segline.digest import tree_files
from test_report import VAL_MEAN, results, run_report  # noqa: F401  (fixture)


def test_core_training_times_each_test_case(store: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "gdl"
    done = train_cli(store, out, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    timing = pd.read_csv(out / "test" / "timing.csv")
    assert list(timing.columns) == ["case", "seconds"]
    assert list(timing["case"]) == CaseStore(*store).case_ids("test")
    assert (timing["seconds"] > 0).all()
    assert "test/timing.csv" not in tree_files(out)  # wall times: not in the digest


def test_report_gives_the_mean_per_case(results: Path, tmp_path: Path) -> None:  # noqa: F811
    name = sorted(VAL_MEAN)[0]
    (results / name / "test" / "timing.csv").write_text("case,seconds\na,1.5\nb,2.5\n")
    assert run_report(results, tmp_path) == 0
    md = (tmp_path / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| test prediction per case (mean)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    names = next(ln for ln in md.splitlines() if ln.startswith("| field | "))
    columns = [c.strip() for c in names.strip("|").split("|")]
    assert cells[columns.index(name)] == "2.0 s"
    assert all(cells[columns.index(n)] == "–" for n in VAL_MEAN if n != name)
