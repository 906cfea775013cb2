"""The loss registry and the interface every registered loss implements.

A loss is a small :class:`SegLoss` subclass in its own module of ``segline.losses``,
found by name (:class:`segline.registry.Registry`: the module is imported when its
name is asked for)::

    @register_loss("boundary", "surface")
    class Boundary(SegLoss): ...

    get_loss("boundary", idc=[1])      # -> Boundary(idc=(1,))

Every loss is called the same way, ``loss(logits, probs, batch)``:

- ``logits``: raw network outputs (B, K, *spatial), 2D (B, K, H, W) or 3D
  (B, K, D, H, W). Only losses with ``needs_logits = True`` (cross-entropy, focal)
  read them, to take a numerically stable ``log_softmax``; others accept ``None``.
- ``probs``: ``softmax(logits, dim=1)``, same shape.
- ``batch``: a mapping with
  ``"target"`` one-hot float (B, K, *spatial) (always required);
  ``"dist"`` signed distance maps (B, K, *spatial) in mm, negative inside the class
  (boundary and Hausdorff losses);
  ``"spacing"`` voxel spacing (B, n_spatial) in mm, in the spatial axis order
  ((y, x) for slices, (z, y, x) for patches) (two-sided Hausdorff-DT, which measures
  distances on the prediction);
  ``"weight"`` per-pixel weight map (B, *spatial) (cross-entropy with
  ``weighted=True``);
  ``"mask"`` (B, *spatial), 1 where a pixel counts and 0 where it is ignored
  (optional; every loss here honours it, so ignored pixels get exactly zero gradient).

Reductions are done in float32 with autocast switched off, so the losses give the
same value (to rounding of the inputs) under bf16/fp16 autocast as in fp32.

Example:
    >>> import torch
    >>> loss_names()[:3]
    ['boundary', 'ce', 'dice']
    >>> loss = get_loss("dice", idc=[0, 1])
    >>> t = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])   # (B=1, K=2, H=1, W=2)
    >>> float(loss(None, t, {"target": t}))                # perfect prediction
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import ClassVar, TypeVar

import torch
from torch import Tensor, nn

from segline.registry import Registry

REGIONAL = "regional"
BOUNDARY = "boundary"

L = TypeVar("L", bound="type[SegLoss]")


class SegLoss(nn.Module):
    """Base class of every registered loss: class selection plus input checks.

    Args:
        idc: the class indices (channels of ``probs``) the loss applies to; non-empty,
            distinct, non-negative. Checked against K when the loss is called.

    Class attributes (set by subclasses):
        name: the registry name (set by :func:`register_loss`).
        kind: ``"regional"`` (default idc = all classes) or ``"boundary"`` (default
            idc = foreground classes 1..K-1), used by the spec parser.
        needs_logits: the loss reads ``logits`` (cross-entropy, focal).
        needs_dist: the loss reads ``batch["dist"]``.

    Example:
        >>> get_loss("boundary", idc=[1]).idc
        (1,)
        >>> get_loss_class("gdl").default_idc(3), get_loss_class("boundary").default_idc(3)
        ([0, 1, 2], [1, 2])
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = REGIONAL
    needs_logits: ClassVar[bool] = False
    needs_dist: ClassVar[bool] = False

    def __init__(self, idc: Sequence[int]) -> None:
        super().__init__()
        self.idc: tuple[int, ...] = check_idc(idc)

    @classmethod
    def default_idc(cls, n_classes: int) -> list[int]:
        """Default classes for ``n_classes`` classes: all (regional) or 1..K-1 (boundary).

        Args:
            n_classes: K, the number of classes including background 0.

        Returns:
            The list of class indices.
        """
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        first = 1 if cls.kind == BOUNDARY else 0
        return list(range(first, n_classes))

    @property
    def requires(self) -> frozenset[str]:
        """Keys of ``batch`` this loss reads (``"mask"`` is always optional)."""
        keys = {"target"}
        if self.needs_dist:
            keys.add("dist")
        return frozenset(keys)

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """Return the scalar loss (float32); see the module docstring for the inputs."""
        raise NotImplementedError


def check_idc(idc: Sequence[int]) -> tuple[int, ...]:
    """Validate a class selection: non-empty, distinct, non-negative integers.

    Args:
        idc: class indices.

    Returns:
        The indices as a tuple of ``int``, in the given order.

    Example:
        >>> check_idc([1, 2])
        (1, 2)
    """
    if isinstance(idc, (str, bytes)) or not isinstance(idc, Sequence):
        raise ValueError(f"idc must be a sequence of class indices, got {idc!r}")
    out = []
    for i in idc:
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"idc must hold non-negative integers, got {list(idc)!r}")
        out.append(int(i))
    if not out:
        raise ValueError("idc must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"idc must not repeat a class, got {out}")
    return tuple(out)


LOSSES: Registry[type[SegLoss]] = Registry(
    "loss", "losses", "segline.losses", "register_loss",
    pattern=r"[a-z][a-z0-9_]*", base=SegLoss, name_attribute="name",
)
"""The losses: each registered by :func:`register_loss` in its module of
``segline.losses`` (or an experiment's module, once imported), imported when asked for."""


def register_loss(name: str, *aliases: str) -> Callable[[L], L]:
    """Class decorator: make a :class:`SegLoss` subclass available under ``name``.

    Args:
        name: the canonical name used in loss specs (``gdl:1,boundary:0.01``).
        aliases: other accepted names (resolved to ``name``).

    Returns:
        The decorator, which returns the class unchanged (with ``cls.name`` set).
    """
    return LOSSES.register(name, *aliases)


def loss_names() -> list[str]:
    """Canonical names of the registered losses, sorted (aliases not included)."""
    return LOSSES.names()


def loss_aliases() -> dict[str, str]:
    """Alias → canonical name of every registered alias, sorted by alias
    (``{"surface": "boundary", ...}``; listed by ``segline-train --help``)."""
    return LOSSES.aliases()


def canonical_name(name: str) -> str:
    """Resolve an alias to its canonical name; unknown name ->
    :class:`~segline.registry.UnknownName` (a ``ValueError``).

    Example:
        >>> canonical_name("surface")
        'boundary'
    """
    return LOSSES.canonical(name)


def get_loss_class(name: str) -> type[SegLoss]:
    """The class registered under ``name`` (or an alias), importing only its module;
    unknown -> :class:`~segline.registry.UnknownName` (a ``ValueError``)."""
    return LOSSES.get(name)


def get_loss(name: str, **kwargs: object) -> SegLoss:
    """Instantiate the loss registered under ``name`` with ``kwargs`` (``idc=...``, options).

    Args:
        name: registry name or alias, e.g. ``"gdl"``, ``"boundary"``.
        kwargs: constructor arguments; ``idc`` is required.

    Returns:
        The loss module.

    Example:
        >>> get_loss("focal", idc=[0, 1], gamma=2.0)
        Focal(idc=[0, 1], gamma=2.0)
    """
    return get_loss_class(name)(**kwargs)


# --------------------------------------------------------------------------------------
# Shared helpers for the loss modules (all return float32 tensors).


@contextmanager
def full_precision(t: Tensor) -> Iterator[None]:
    """Switch autocast off for ``t``'s device type so reductions run in float32."""
    with torch.autocast(device_type=t.device.type, enabled=False):
        yield


def check_inputs(
    loss: SegLoss, probs: Tensor, batch: Mapping[str, Tensor], keys: Sequence[str] = ()
) -> None:
    """Raise ``ValueError`` unless ``probs``, ``batch[...]`` and ``loss.idc`` agree.

    Args:
        loss: the calling loss (for its name and idc).
        probs: (B, K, *spatial) with at least one spatial axis.
        batch: must hold ``"target"`` and every key in ``keys``; ``"dist"`` and
            ``"target"`` must have ``probs``' shape, ``"mask"``/``"weight"`` (B, *spatial).
        keys: extra required keys.
    """
    who = loss.name or type(loss).__name__
    if probs.ndim < 3:
        raise ValueError(f"{who}: probs must be (B, K, *spatial), got shape {tuple(probs.shape)}")
    k = probs.shape[1]
    if max(loss.idc) >= k:
        raise ValueError(f"{who}: idc {list(loss.idc)} out of range for {k} classes")
    for key in ("target", *keys):
        if key not in batch:
            raise ValueError(f"{who}: batch has no {key!r} (keys: {sorted(batch)})")
    per_class = tuple(probs.shape)
    per_pixel = (per_class[0], *per_class[2:])
    for key, want in (("target", per_class), ("dist", per_class), ("mask", per_pixel),
                      ("weight", per_pixel)):
        if key in batch and batch[key] is not None and tuple(batch[key].shape) != want:
            raise ValueError(
                f"{who}: batch[{key!r}] has shape {tuple(batch[key].shape)}, expected {want}"
            )


def select(x: Tensor, idc: Sequence[int]) -> Tensor:
    """Classes ``idc`` of a (B, K, *spatial) tensor as float32 (B, len(idc), N), N = pixels."""
    return x[:, list(idc)].flatten(2).float()


def counted(batch: Mapping[str, Tensor], probs: Tensor) -> Tensor:
    """The ignore mask as float32 (B, N): ``batch["mask"]`` if given, else all ones."""
    mask = batch.get("mask")
    if mask is None:
        return torch.ones(probs.shape[0], probs[0, 0].numel(), device=probs.device)
    return mask.flatten(1).float()


def pixel_mean(per_pixel: Tensor, mask: Tensor) -> Tensor:
    """Mean of (B, N) values over counted pixels; 0 (with a gradient path) if none count."""
    return (per_pixel * mask).sum() / mask.sum().clamp_min(1.0)
