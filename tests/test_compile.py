"""COMPILE: opt-in torch.compile, recorded in args.json; checkpoints keep plain keys.

A compiled step itself takes minutes to compile on a 2-core CPU, so the tests check the
wiring (what is compiled, what is recorded and saved), not a compiled training.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import train_cli
from segline.nets import get_net
from segline.train import device as dev
from segline.train.compile import compiled, normalise
from segline.train.loop import TrainConfig, Trainer


def test_normalise_values() -> None:
    assert [normalise(v) for v in ("", "0", "off", "1", "on", "yes", "graphs", "GRAPHS")] == [
        "off",
        "off",
        "off",
        "on",
        "on",
        "on",
        "graphs",
        "graphs",
    ]
    with pytest.raises(ValueError, match="expected off, on"):
        normalise("fast")


def test_compiled_wrapper_shares_parameters() -> None:
    net = get_net("Dimwit", 1, 2)
    assert compiled(net, "off") is net
    wrapped = compiled(net, "on")
    assert wrapped is not net and wrapped._orig_mod is net
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in net.parameters()}


def test_trainer_records_compile_and_saves_plain_keys(store, tmp_path: Path) -> None:
    cases, dist = store
    cfg = TrainConfig(str(cases), str(dist), str(tmp_path / "gdl"), net="Dimwit", compile="on")
    trainer = Trainer(cfg, dev.choose("cpu", "off"), [])
    assert trainer.forward_model._orig_mod is trainer.model
    assert cfg.identity()["compile"] == "on"
    assert not any(k.startswith("_orig_mod") for k in trainer.model.state_dict())


def test_bad_compile_value_is_one_line(store, tmp_path: Path) -> None:
    out = tmp_path / "gdl"
    proc = train_cli(store, out, "--compile", "fast")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "segline: --compile (COMPILE): expected off, on (or 1) or graphs, got 'fast'"
    ]
    assert not out.exists()
