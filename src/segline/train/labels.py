"""Predicted labels from class scores, fast on the CPU.

``Tensor.argmax(dim)`` and ``Tensor.max(dim).indices`` both return the *first* class
of highest score, so they give identical labels; but on the CPU (torch 2.13) argmax
over the channel dimension of an ``(N, C, H, W)`` tensor is slow: 16 ms against 0.6 ms
for ``max`` at 8×2×96² on a 2-core Xeon, a tenth of a toy training step, taken twice
per step (prediction and one-hot target) and once per validation batch.
"""

from __future__ import annotations

import torch


def class_index(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the first maximum along ``dim`` (``argmax`` semantics, ties to the
    lowest class).

    Example:
        >>> class_index(torch.tensor([[[0.2], [0.7], [0.7]]]))
        tensor([[1]])
    """
    return scores.max(dim).indices
