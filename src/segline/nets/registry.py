"""Networks found by name: ``get_net("UNet", in_channels=1, n_classes=2)``.

Each network class registers itself in its own module of ``segline.nets`` with
``@register_net("Name")`` (:class:`segline.registry.Registry`); a lookup imports only
that module, so a training's lineage lists only the network it built.
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
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from segline.registry import Registry

__all__ = ["NETS", "get_net", "get_net_class", "net_names", "register_net"]

N = TypeVar("N", bound="type[nn.Module]")

NETS: Registry[type[nn.Module]] = Registry(
    "network", "networks", "segline.nets", "register_net",
    pattern=r"[A-Za-z][A-Za-z0-9_]*", ignore_case=True, base=nn.Module,
)
"""The networks: each registered by :func:`register_net` in its module of
``segline.nets``, imported when asked for."""


def register_net(name: str) -> Callable[[N], N]:
    """Class decorator: make a network class available as ``NET=name`` (any case).

    Args:
        name: the canonical name, conventionally the class name (``"UNet3D"``).

    Returns:
        The decorator, which returns the class unchanged.
    """
    return NETS.register(name)


def net_names() -> list[str]:
    """Return the canonical net names, sorted.

    Returns:
        The names accepted by :func:`get_net` (any letter case works too).

    Example:
        >>> net_names()
        ['Dimwit', 'Dimwit3D', 'ENet', 'IterativeFCN', 'ResidualUNet', 'UNet', 'UNet3D', 'VNet2D']
    """
    return NETS.names()


def get_net_class(name: str) -> type[nn.Module]:
    """Look a net class up by name, ignoring case.

    Args:
        name: e.g. ``"ENet"``, ``"unet3d"``.

    Returns:
        The class (with its ``dims`` attribute).

    Raises:
        UnknownName: (a ``ValueError``) unknown name; the message lists the known ones.

    Example:
        >>> get_net_class("UNET3D").dims
        3
    """
    return NETS.get(name)


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
