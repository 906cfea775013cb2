"""The tag on every line a training prints, and the resume state's epoch numbering."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from segline.train import state as st
from segline.train.voice import Voice


def test_every_line_tagged() -> None:
    v = Voice("gdl_boundary")
    assert v.lines("a\nb") == "[gdl_boundary] a\n[gdl_boundary] b"
    assert v.lines("a\n") == "[gdl_boundary] a\n"
    buf = io.StringIO()
    v.say("epoch   1/8\n  detail", file=buf)
    assert buf.getvalue() == "[gdl_boundary] epoch   1/8\n[gdl_boundary]   detail\n"
    assert v.desc("epoch 1/8") == "[gdl_boundary] epoch 1/8"


def test_warnings_tagged_only_while_active() -> None:
    v = Voice("ce")
    before = warnings.showwarning
    with v.warnings():
        assert warnings.showwarning is not before
        text = v.format_warning(UserWarning("x\ny"), UserWarning, "/a/b/mod.py", 7)
    assert warnings.showwarning is before
    assert text == "[ce] warning: UserWarning: x\n[ce] y (mod.py:7)\n"


def test_state_from_before_one_based_epochs_is_not_resumed(tmp_path: Path) -> None:
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters())
    kwargs = {"model": net, "optimizer": opt, "best_score": 0.5, "records": [], "epochs": []}
    st.save_state(tmp_path, epoch=2, best_epoch=1, **kwargs)
    state = st.load_state(tmp_path)
    assert state is not None and (state["epoch"], state["best_epoch"]) == (2, 1)
    # the same state as written when epochs were counted from 0 (no marker): start afresh
    old = torch.load(tmp_path / st.STATE, weights_only=True)
    del old["epochs_from"]
    st.save_tensor_file(tmp_path / st.STATE, old)
    assert st.load_state(tmp_path) is None
