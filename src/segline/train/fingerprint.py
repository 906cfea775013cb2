"""A training's lineage: what its result depends on, and why a resume is refused.

``lineage.json`` (in ``<out>_tmp`` while training, then in ``<out>`` and the archive)
holds three parts:

- ``args``: every argument of the run (:meth:`TrainConfig.identity`: net, losses,
  epochs, learning rate, seed, device, precision, ...);
- ``inputs``: the content digest (sha256, :mod:`segline.digest`) of each store it
  reads (:meth:`segline.train.loop.Trainer._input_stores`): ``cases``, ``dist`` and
  those of an experiment's trainer (the vessels': ``mip`` and ``pseudo``);
- ``code``: ``{source file: sha256}`` of every project module imported when training
  starts (:func:`segline.stage.code_digests`).

An interrupted run resumes only when the new run's lineage equals the stored one, so
epochs trained on other data, other code or other knobs never mix in one
``epochs.csv``. The pack stage also reads ``inputs`` to refuse archiving methods
trained on different stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segline import stage

LINEAGE_FILE = "lineage.json"


def training_lineage(args: dict[str, Any], stores: dict[str, str | None]) -> dict[str, Any]:
    """The lineage of a run with ``args`` reading ``stores`` ({name: folder or None})."""
    return {
        "args": args,
        "inputs": {
            name: stage.content_digest(path) for name, path in sorted(stores.items()) if path
        },
        "code": stage.code_digests(),
    }


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why two lineages differ, in one short phrase ('' when they are equal)."""
    parts = []
    if args := _changed(old.get("args", {}), new.get("args", {})):
        parts.append("arguments changed: " + ", ".join(args))
    if inputs := _changed(old.get("inputs", {}), new.get("inputs", {})):
        parts.append("content of " + ", ".join(inputs) + " changed")
    if code := _changed(old.get("code", {}), new.get("code", {})):
        shown = ", ".join(code[:3]) + (f" and {len(code) - 3} more" if len(code) > 3 else "")
        parts.append("code changed: " + shown)
    return "; ".join(parts)


def read_lineage(folder: Path) -> dict[str, Any] | None:
    """The stored lineage of a (work) folder, or None when absent or unreadable."""
    try:
        return json.loads((folder / LINEAGE_FILE).read_text())
    except (OSError, ValueError):
        return None
