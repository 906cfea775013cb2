"""CLI plumbing: one-line errors and exit codes, argparse value types, per-case workers."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from segline import cli
from segline.errors import InputError
from segline.parallel import map_cases


def test_run_turns_input_error_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def bad(_argv: object) -> int:
        raise InputError(Path("data/x.nii.gz"), "NaN voxels")

    assert cli.run(bad, []) == cli.EXIT_INPUT
    assert capsys.readouterr().err == "segline: data/x.nii.gz: NaN voxels\n"
    assert cli.run(lambda _argv: None, []) == 0
    assert cli.run(lambda _argv: 3, []) == 3


def test_run_interrupt_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(_argv: object) -> int:
        raise KeyboardInterrupt

    assert cli.run(interrupted, []) == cli.EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (cli.positive_int, "3", 3),
        (cli.count, "0", 0),
        (cli.non_negative_float, "0.5", 0.5),
        (cli.non_negative_float, "0", 0.0),
    ],
)
def test_value_types_accept(kind, text: str, value: float) -> None:
    assert kind(text) == value


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (cli.positive_int, "0", "must be >= 1, got 0"),
        (cli.positive_int, "2.5", "not an integer: '2.5'"),
        (cli.count, "-1", "must be >= 0, got -1"),
        (cli.non_negative_float, "nan", "must be a finite number >= 0"),
        (cli.non_negative_float, "-0.1", "must be a finite number >= 0"),
        (cli.non_negative_float, "x", "not a number: 'x'"),
    ],
)
def test_value_types_refuse(kind, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace(".", r"\.")):
        kind(text)


def _check_case(name: str, size: int) -> tuple[str, int]:
    """Module level so that worker processes can unpickle it."""
    if size < 0:
        raise InputError(f"data/{name}", f"negative size {size}")
    return name, size * 2


@pytest.mark.parametrize("jobs", [1, 2])
def test_map_cases_keeps_order(jobs: int) -> None:
    args = [("b", 1), ("a", 2), ("c", 3)]
    assert map_cases(_check_case, args, jobs) == [("b", 2), ("a", 4), ("c", 6)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_map_cases_reports_first_bad_case_in_order(jobs: int) -> None:
    args = [("ok", 1), ("first", -1), ("second", -2)]
    with pytest.raises(InputError) as err:
        map_cases(_check_case, args, jobs)
    assert err.value.where == "data/first" and err.value.problem == "negative size -1"
