"""Networks found by name: ``get_net("UNet", in_channels=1, n_classes=2)``.

Names are case-insensitive. Every class has a ``dims`` class attribute (2 or 3),
so a caller can tell 2D from 3D nets before building one
(``get_net_class(name).dims``).

Example:
    >>> net = get_net("dimwit", 1, 2)
    >>> type(net).__name__, net.dims
    ('Dimwit', 2)
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from segline.nets.dimwit import Dimwit, Dimwit3D
from segline.nets.enet import ENet
from segline.nets.iterative_fcn import IterativeFCN
from segline.nets.resunet import ResidualUNet
from segline.nets.unet import UNet
from segline.nets.unet3d import UNet3D

__all__ = ["NETS", "get_net", "get_net_class", "net_names"]

NETS: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (ENet, UNet, ResidualUNet, Dimwit, UNet3D, Dimwit3D, IterativeFCN)
}
"""Canonical name → class."""


def net_names() -> list[str]:
    """Return the canonical net names, sorted.

    Returns:
        The names accepted by :func:`get_net` (any letter case works too).

    Example:
        >>> net_names()
        ['Dimwit', 'Dimwit3D', 'ENet', 'IterativeFCN', 'ResidualUNet', 'UNet', 'UNet3D']
    """
    return sorted(NETS)


def get_net_class(name: str) -> type[nn.Module]:
    """Look a net class up by name, ignoring case.

    Args:
        name: e.g. ``"ENet"``, ``"unet3d"``.

    Returns:
        The class (with its ``dims`` attribute).

    Raises:
        ValueError: unknown name; the message lists the known ones.

    Example:
        >>> get_net_class("UNET3D").dims
        3
    """
    by_lower = {k.lower(): v for k, v in NETS.items()}
    try:
        return by_lower[name.lower()]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(net_names())}") from None


def get_net(name: str, in_channels: int, n_classes: int, **kw: Any) -> nn.Module:
    """Build a network by name.

    Args:
        name: see :func:`net_names` (case-insensitive).
        in_channels: input channels (modalities).
        n_classes: classes, i.e. logit channels.
        **kw: passed to the class (``base``, ``depth``, ``dropout``, ``norm``,
            ``width`` for ENet, ...).

    Returns:
        The network; ``net(x)`` gives logits (B, n_classes, *x.shape[2:]).

    Raises:
        ValueError: unknown name, or an option the class does not take (the message
            lists the ones it takes: a ``NET_OPTS`` typo or one meant for another net).

    Example:
        >>> get_net("UNet3D", 1, 3, base=4, depth=2).dims
        3
        >>> get_net("ENet", 1, 2, base=16)
        Traceback (most recent call last):
        ...
        ValueError: ENet does not take option(s) base; it takes: width, dropout, norm
    """
    cls = get_net_class(name)
    params = inspect.signature(cls.__init__).parameters
    takes = [p for p in params if p not in ("self", "in_channels", "n_classes")]
    unknown = sorted(k for k in kw if k not in takes)
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(
            f"{cls.__name__} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(takes) or 'none'}"
        )
    return cls(in_channels, n_classes, **kw)
