"""CLI plumbing: one-line errors and exit codes, argparse value types, per-case workers."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from segline import atomic, cli
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


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_run_storage_error_is_one_line_naming_the_path(
    code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(_argv: object) -> int:
        raise OSError(code, os.strerror(code), "results/spleen/gdl/metrics.csv")

    assert cli.run(full, []) == cli.EXIT_OS == 3
    assert capsys.readouterr().err == (
        f"segline: results/spleen/gdl/metrics.csv: {os.strerror(code)} "
        "(disk full, quota, read-only or not writable output?)\n"
    )


def test_run_storage_error_without_a_path_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    def full(_argv: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    assert cli.run(full, []) == cli.EXIT_OS
    err = capsys.readouterr().err
    assert err.startswith("segline: (path not reported by the system): No space left")
    assert err.count("\n") == 1


def test_run_other_os_errors_keep_their_traceback() -> None:
    def missing(_argv: object) -> int:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "x")

    with pytest.raises(FileNotFoundError):
        cli.run(missing, [])


def test_read_only_output_folder_names_the_output_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read-only folder (simulated: tests run as root, where chmod 0o555 stops nothing)."""

    def read_only(file: object, *_a: object, **_k: object) -> object:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))

    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    out = tmp_path / "res"

    def writer(_argv: object) -> int:
        with atomic.atomic_dir(out) as tmp:
            atomic.write_text(tmp / "metrics.csv", "a,b\n")
        return 0

    assert cli.run(writer, []) == cli.EXIT_OS
    err = capsys.readouterr().err
    assert err == (
        f"segline: {tmp_path / 'res_tmp' / 'metrics.csv'}: Read-only file system "
        "(disk full, quota, read-only or not writable output?)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


FULL_DISK = """
    # Test helper: every write to a segline temporary file ('*.tmp') fails like a
    # full disk (ENOSPC from write(), which names no file).
    import builtins, errno, os

    _open = builtins.open

    class _Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()
            return False

        def __getattr__(self, name):
            return getattr(self._fh, name)

    def _open_full(file, mode="r", *args, **kwargs):
        fh = _open(file, mode, *args, **kwargs)
        if str(file).endswith(".tmp") and any(c in mode for c in "wax"):
            return _Full(fh)
        return fh

    builtins.open = _open_full
"""


def test_full_disk_real_cli_one_line_no_traceback_nothing_left(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    cases, _ = store
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(FULL_DISK))
    out = tmp_path / "dist"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
    }
    script = Path(__file__).resolve().parents[1] / "preprocess" / "distmaps.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--cases", str(cases), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == cli.EXIT_OS, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    first = sorted(p.name for p in cases.iterdir() if p.is_dir())[0]
    assert lines[0] == (
        f"segline: {tmp_path / 'dist_tmp' / first / 'dist2d.npy'}: No space left on device "
        "(disk full, quota, read-only or not writable output?)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hook"]


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
