"""Segmentation networks, picked by name (:func:`get_net`).

2D: ``ENet``, ``UNet``, ``ResidualUNet``, ``Dimwit``; 3D: ``UNet3D``, ``Dimwit3D``.
Each outputs raw logits with the input's spatial size, whatever that size is, and
has a ``dims`` class attribute (2 or 3).

Example:
    >>> import torch
    >>> from segline.nets import get_net
    >>> tuple(get_net("ENet", 1, 2)(torch.zeros(1, 1, 37, 45)).shape)
    (1, 2, 37, 45)
"""

from segline.nets.dimwit import Dimwit, Dimwit3D
from segline.nets.enet import ENet
from segline.nets.registry import NETS, get_net, get_net_class, net_names
from segline.nets.resunet import ResidualUNet
from segline.nets.unet import UNet
from segline.nets.unet3d import UNet3D

__all__ = [
    "NETS",
    "Dimwit",
    "Dimwit3D",
    "ENet",
    "ResidualUNet",
    "UNet",
    "UNet3D",
    "get_net",
    "get_net_class",
    "net_names",
]
