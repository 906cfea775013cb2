"""Segmentation networks, picked by name (:func:`get_net`).

2D: ``ENet``, ``UNet``, ``ResidualUNet``, ``VNet2D``, ``Dimwit``; 3D: ``UNet3D``, ``Dimwit3D``,
``IterativeFCN``. Each outputs raw logits with the input's spatial size, whatever that
size is, and has a ``dims`` class attribute (2 or 3). Each registers itself with
``@register_net("Name")`` in its own module; this package imports none of them
(:func:`get_net` imports the one asked for), so import a class from its module
(``segline.nets.unet3d.UNet3D``).

Example:
    >>> import torch
    >>> from segline.nets import get_net
    >>> tuple(get_net("ENet", 1, 2)(torch.zeros(1, 1, 37, 45)).shape)
    (1, 2, 37, 45)
"""

from segline.nets.registry import NETS, get_net, get_net_class, net_names, register_net

__all__ = ["NETS", "get_net", "get_net_class", "net_names", "register_net"]
