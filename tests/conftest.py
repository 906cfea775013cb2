"""Shared fixtures: a private copy of the project for make-level tests.

Make-level tests run the real makefiles on the toy data, in a copy of the project's
source tree under a temporary folder, with ``CC`` set to this interpreter (so no
virtualenv is created there) — the repository itself is never written to.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from segline import atomic
from segline.casestore import write_case
from segline.distmaps import write_dist_store
from segline.preprocess.geometry import from_source

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"
"""Its ``sitecustomize.py`` gives the processes that tests start the test hooks (the
``SEGLINE_TEST_*`` variables); the production code knows none of them."""
# copy_project (sources, makefiles, lineage files: what a make run needs) is the bench
# scripts' own, so tests and benchmarks time and test the same copy.
sys.path.insert(0, str(REPO / "bench"))
from benchlib import COPIED, copy_project  # noqa: E402

__all__ = ["COPIED", "copy_project"]


@pytest.fixture(autouse=True)
def _restore_deterministic_mode():
    """A trainer built in a test process switches torch's deterministic algorithms on
    for the whole process; restore the setting after every test so that a later test
    (e.g. one comparing with a kernel that has no deterministic version) is unaffected."""
    import torch

    mode = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(mode, warn_only=warn_only)


@pytest.fixture(autouse=True)
def _no_result_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test shares a result cache by accident: the stages a test runs in-process
    (``SEGLINE_CACHE``) and the makes it starts with this environment (``CACHE``) have
    none, unless the test names one (tests/test_cache.py, tests/test_make_cache.py)."""
    monkeypatch.delenv("SEGLINE_CACHE", raising=False)
    monkeypatch.setenv("CACHE", "")


def with_test_hooks(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with :data:`PLUGINS` first on ``PYTHONPATH``: a Python process started
    with it (make passes ``PYTHONPATH`` on to its recipes) loads
    ``tests/plugins/sitecustomize.py``, which patches segline only as the
    ``SEGLINE_TEST_*`` variables of its environment ask (nothing without them). The
    command lines stay those of a plain run."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**env, "PYTHONPATH": os.pathsep.join([str(PLUGINS), *paths])}


def make_env() -> dict[str, str]:
    """Environment for make runs: no terminal, no inherited MAKEFLAGS, the test hooks
    available (:func:`with_test_hooks`). Nothing fixes the thread count here: the
    trainings compute with the ``THREADS`` knob's, whatever ``-j``
    (``tests/test_threads.py`` checks that ``-j1`` and ``-j2`` agree).

    The result cache is off (``CACHE=`` in the environment: make's ``CACHE ?= cache``
    keeps it), so a test that goes back to an earlier setting sees the stage built
    again; ``tests/test_make_cache.py`` turns it on with ``CACHE=<folder>``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env.update({"TERM": "dumb", "PYTHONHASHSEED": "0", "CACHE": ""})
    return with_test_hooks(env)


@pytest.fixture(scope="session")
def run_make() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_make(cwd, *args)`` → completed process (never raises on failure)."""

    def _run(cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        cmd = ["make", "--no-print-directory", *args, f"CC={sys.executable}"]
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=make_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return _run


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder below ``root``."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def differing(a: Mapping[str, bytes], b: Mapping[str, bytes]) -> list[str]:
    """The names whose bytes differ between two {name: bytes} maps (or that only one
    has), so a failed byte-identity check names files instead of dumping PNG bytes."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# ---------------------------------------------------------------- a tiny case store
N_CASES = 7


def toy_case(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) image in [0, 1] and label with a bright box that moves with i."""
    rng = np.random.default_rng(i)
    img = rng.normal(0.2, 0.05, size=(24, 20, 6)).astype(np.float32)
    lab = np.zeros((24, 20, 6), np.uint8)
    lab[4 + i : 12 + i, 5:13, 1:5] = 1
    img[lab == 1] += 0.6
    return img, lab


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("store")
    cases = root / "cases"
    with atomic.atomic_dir(cases) as tmp:
        ids = [f"toy_{i}" for i in range(N_CASES)]
        for i, cid in enumerate(ids):
            img, lab = toy_case(i)
            affine = np.diag([-0.8, -0.8, 5.0, 1.0])
            image, label, meta = from_source(
                [img], lab, affine, (0.8, 0.8, 5.0), case_id=cid, channels=["CT"]
            )
            write_case(tmp, cid, image, label, meta)
        atomic.write_json(
            tmp / "dataset.json",
            {"name": "toy", "labels": {"0": "background", "1": "organ"}, "channels": ["CT"]},
        )
        atomic.write_json(
            tmp / "split.json", {"test": ids[:2], "val": ids[2:4], "train": ids[4:], "infer": []}
        )
    write_dist_store(cases, root / "dist")
    return cases, root / "dist"


# ---------------------------------------------------------------- the trainer's CLI
def train_cli(
    store: tuple[Path, Path],
    out: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    module: str = "segline.train",
) -> subprocess.CompletedProcess[str]:
    """``python -m segline.train`` (or another trainer ``module`` taking its options) on
    a tiny store: Dimwit, 3 epochs, fp32, GDL + boundary; ``extra`` arguments come last
    and override (argparse keeps the last). ``env`` is added to this process's
    environment, test hooks available."""
    cases, dist = store
    cmd = [
        sys.executable,
        "-m",
        module,
        "--cases",
        str(cases),
        "--dist",
        str(dist),
        "--out",
        str(out),
        "--net",
        "Dimwit",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--amp",
        "off",
        "--losses",
        "gdl:1,boundary:0.01[schedule=rebalance]",
        *extra,
    ]
    full_env = with_test_hooks({**os.environ, **(env or {})})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)
