"""``COMPILE``: opt-in ``torch.compile`` of the network.

Small networks (ENet, Dimwit, a UNet with few channels) are launch-bound on a GPU:
each step is hundreds of small kernels. ``torch.compile`` fuses them; its
``reduce-overhead`` mode additionally captures the step in CUDA graphs, which pays when
input shapes repeat (fixed-size slices or patches). Both change the last bits of the
results (fused arithmetic), so the choice is part of the run's identity
(``args.json``, the make record) and a resume never mixes modes.

Values: ``off`` (default), ``on`` (``torch.compile`` default mode) and ``graphs``
(mode ``reduce-overhead``: CUDA graphs on CUDA; on the CPU it compiles like ``on``).
"""

from __future__ import annotations

import torch

MODES = {"off": None, "on": "default", "graphs": "reduce-overhead"}
ALIASES = {"": "off", "0": "off", "no": "off", "1": "on", "yes": "on"}


def normalise(value: str) -> str:
    """The canonical name of a ``COMPILE`` value; ValueError for an unknown one.

    Example:
        >>> normalise("1"), normalise("graphs")
        ('on', 'graphs')
    """
    name = ALIASES.get(value.strip().lower(), value.strip().lower())
    if name not in MODES:
        raise ValueError(f"expected off, on (or 1) or graphs, got {value!r}")
    return name


def compiled(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``model`` itself for ``off``, else a compiled wrapper sharing its parameters.

    Checkpoints are taken from ``model``, never from the wrapper, so their keys (no
    ``_orig_mod.`` prefix) do not depend on ``COMPILE``.
    """
    torch_mode = MODES[normalise(mode)]
    if torch_mode is None:
        return model
    return torch.compile(model, mode=torch_mode)
