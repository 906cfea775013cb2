"""spleen.make's 3D method ``gdl3d``: segline's 3D U-Net on patches with the generalised
Dice loss, planned by make (``make -n``, nothing runs) beside the 2D methods on the same
split.

* the toy (``TOY=1``): UNet3D with its own options, 3D distance maps, the toy's patch,
  batch and patches per epoch; the 2D ``gdl`` keeps UNet and 2D maps;
* the real data: the real patch (``64,128,128``) and patches per epoch (500);
* ``NET=Dimwit`` (the pipeline tests) becomes ``Dimwit3D`` for ``gdl3d`` alone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import make_env

pytestmark = pytest.mark.make

ROOT = Path(__file__).resolve().parents[1]


def _plan(*args: str) -> dict[str, str]:
    """``make -n -B -f spleen.make ARGS train``: {method: its training command}."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "-f", "spleen.make", "CC=python", *args,
         "train"],
        cwd=ROOT, env=make_env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [x for x in proc.stdout.splitlines() if "-m segline.train " in x]
    return {re.search(r"--out results/[^/ ]+/(\S+) ", x).group(1): x for x in lines}  # type: ignore[union-attr]


def _opt(line: str, name: str) -> str:
    """The value of ``--name VALUE`` in a command line."""
    match = re.search(rf"--{name} (\S+)", line)
    assert match, f"--{name} missing from {line}"
    return match.group(1)


def test_toy_gdl3d_trains_unet3d_on_patches_beside_the_2d_methods() -> None:
    plan = _plan("TOY=1")
    assert "gdl3d" in plan and "gdl" in plan  # a default method, beside the 2D ones
    line = plan["gdl3d"]
    assert _opt(line, "net") == "UNet3D" and _opt(line, "net-opt") == "base=8"
    assert _opt(line, "dist-kind") == "3d" and _opt(line, "losses") == "'gdl:1'"
    assert _opt(line, "patch") == "16,48,48" and _opt(line, "overlap") == "0.5"
    assert _opt(line, "samples-per-epoch") == "32" and _opt(line, "batch-size") == "2"
    # same split, epochs and learning rate as the 2D methods
    for knob in ("cases", "epochs", "lr", "seed"):
        assert _opt(line, knob) == _opt(plan["gdl"], knob)
    assert _opt(plan["gdl"], "net") == "UNet" and _opt(plan["gdl"], "dist-kind") == "2d"
    assert "--patch" not in plan["gdl"]


def test_real_gdl3d_patch_and_samples() -> None:
    line = _plan("METHODS=gdl3d")["gdl3d"]
    assert _opt(line, "net") == "UNet3D" and "--net-opt" not in line  # UNet3D's defaults
    assert _opt(line, "patch") == "64,128,128" and _opt(line, "samples-per-epoch") == "500"
    assert _opt(line, "batch-size") == "2" and _opt(line, "dist-kind") == "3d"


def test_dimwit_becomes_dimwit3d_for_gdl3d_only() -> None:
    plan = _plan("TOY=1", "NET=Dimwit", "METHODS=gdl gdl3d")
    assert _opt(plan["gdl3d"], "net") == "Dimwit3D" and "--net-opt" not in plan["gdl3d"]
    assert _opt(plan["gdl"], "net") == "Dimwit"
