"""The EBP shell network: a registered 2D segmentation net turned into a step regressor.

Elastic Boundary Projection feeds the network one image per pivot, the (H, W) grid of
shell directions with the image sampled around the current shell as channels
(:func:`segline.experiments.ebp.geometry.shell_inputs`), and reads back one number
per direction: the step Y (voxels) by which that radius moves towards the organ's
boundary. Any 2D network of :mod:`segline.nets` does that with one output channel;
:class:`ShellModel` builds it, drops the channel axis and, in eval mode (validation,
test, ``predict``), clamps the step to ±:data:`STEP_CLIP` voxels, the per-iteration clip
of the targets, as the published EBP network clamps its output. In training mode the
loss sees the raw output: a clamp has no gradient beyond ±2, and on the toy spleen one
epoch at Adam 2e-3 drove VNet2D's raw outputs to about -35 everywhere, where no
gradient reached them again (every shell collapsed; bench/RESULTS.md "EBP"). The MSE
on the raw output pulls it back into the targets' range instead.

It is deliberately not a registered net: it returns (B, H, W) steps, not logits.

Example:
    >>> import torch
    >>> model = build_shell_model("Dimwit", 16, {})
    >>> tuple(model(torch.zeros(3, 16, 16, 16)).shape), model.dims
    ((3, 16, 16), 2)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from segline.experiments.ebp.geometry import STEP_CLIP
from segline.nets.registry import get_net, get_net_class

__all__ = ["STEP_CLIP", "ShellModel", "build_shell_model"]


class ShellModel(nn.Module):
    """A 2D segmentation net with one output channel, as a clamped step regressor.

    Args:
        name: a registered 2D network (``"VNet2D"``, ``"UNet"``, ... any case).
        in_channels: input channels of the shell images (``10c + 6``: 16 for CT).
        net_kwargs: options of the network (``base``, ``depth``, ...).
        clip: the output is clamped to ±``clip`` voxels.

    Raises:
        ValueError: unknown network name or option, or a 3D network.

    Example:
        >>> ShellModel("vnet2d", 16, {"base": 4, "depth": 2}).net.dims
        2
    """

    dims: ClassVar[int] = 2

    def __init__(
        self,
        name: str,
        in_channels: int,
        net_kwargs: dict[str, Any] | None = None,
        clip: float = STEP_CLIP,
    ) -> None:
        super().__init__()
        dims = get_net_class(name).dims
        if dims != 2:
            raise ValueError(
                f"the EBP shell model needs a 2D network; {name} is {dims}D"
            )
        if not clip > 0:
            raise ValueError(f"the EBP shell model needs a positive clip, got {clip}")
        self.clip = float(clip)
        self.net = get_net(name, in_channels, 1, **(net_kwargs or {}))

    @property
    def channels_last_ok(self) -> bool:
        """The wrapped net's layout preference (:func:`segline.train.device.for_model`)."""
        return bool(getattr(self.net, "channels_last_ok", True))

    @property
    def cuda_amp_ok(self) -> bool:
        """The wrapped net's CUDA autocast preference (``for_model`` too)."""
        return bool(getattr(self.net, "cuda_amp_ok", True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the steps.

        Args:
            x: shell images (B, in_channels, H, W).

        Returns:
            Steps Y (B, H, W) in voxels, within ±``clip`` in eval mode (raw in
            training mode, module docstring), in ``x``'s dtype (float32 for a float32
            input, also under autocast).
        """
        y = self.net(x)[:, 0]
        if self.training:
            return y
        return y.clamp(-self.clip, self.clip)


def build_shell_model(name: str, in_ch: int, kwargs: dict[str, Any]) -> ShellModel:
    """Build the shell network ``name`` for ``in_ch`` input channels.

    Args:
        name: a registered 2D network name (any case).
        in_ch: input channels of the shell images.
        kwargs: the network's options (``{}`` for its defaults).

    Returns:
        The :class:`ShellModel`, clamped to ±:data:`STEP_CLIP`.

    Raises:
        ValueError: unknown name or option, or a 3D network.
    """
    return ShellModel(name, in_ch, kwargs)
