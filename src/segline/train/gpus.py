"""GPU tokens: ``GPUS=0,1,2,3 make -j4`` puts each training on its own GPU.

Make exports the ``GPUS`` knob as ``SEGLINE_GPUS``. Every listed GPU is a *slot*; a GPU
listed twice (``GPUS=0,0,1``) has two slots, so two trainings share it. A training
takes a token before it builds its network and holds it until its process ends: the
token is a lock file ``<folder>/gpu-<id>-<k>.lock`` (``k``: 0 for the first listing of
GPU ``id``, 1 for the second, ...) held with a non-blocking ``fcntl.flock``. When every
slot is taken the training says once that it waits and polls every
:data:`POLL_SECONDS`. The kernel drops a flock when its process dies, so a killed (or
scancelled) training gives its token back without any clean-up (once its forked
children, e.g. DataLoader workers, which share the lock, have ended too).

The token folder (:func:`lock_folder`) is ``/tmp/segline-gpus-<uid>``: one folder for
every make of this user on this machine, whatever the project checkout, shell or
session (``$XDG_RUNTIME_DIR`` and ``$TMPDIR`` differ between an ssh login, cron, tmux
and a batch job, and two makes looking at two folders would share nothing). The knob
``GPU_LOCKS=folder`` (``SEGLINE_GPU_LOCKS``) overrides it, e.g. a group-writable folder
for several users sharing one machine's GPUs.

The GPU chosen is scheduling, not a knob that shapes the result: it is not in make's
record nor in the training's identity (``args.json``, ``lineage.json``), so a rebuild
or a resume never depends on which card was free. The card is recorded in the
result's ``provenance/runtime.json`` (:attr:`segline.train.device.Precision.card`).

CUDA is touched in two functions only: :func:`check_cards` (is every listed GPU
there?) and :func:`use_card` (compute on the GPU of the token taken); the token logic
itself needs no torch.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from segline.errors import InputError

ENV_GPUS = "SEGLINE_GPUS"
ENV_LOCKS = "SEGLINE_GPU_LOCKS"
POLL_SECONDS = 0.5
"""Seconds between two looks at the slots while every one is taken."""


@dataclass(frozen=True)
class Slot:
    """One place for one training: GPU ``gpu``, its ``k``-th listing in ``GPUS``."""

    gpu: int
    k: int

    @property
    def name(self) -> str:
        """``gpu-<id>-<k>``: the token's file name without ``.lock``."""
        return f"gpu-{self.gpu}-{self.k}"


def parse_gpus(text: str) -> list[int]:
    """``"0,1, 1"`` → ``[0, 1, 1]``; GPU indices as torch numbers them (after
    ``CUDA_VISIBLE_DEVICES``). Raises :class:`InputError` naming ``GPUS``."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise InputError("GPUS", f"expected GPU numbers separated by commas, got {text!r}")
    return [int(p) for p in parts]


def slots(gpus: Sequence[int]) -> list[Slot]:
    """The slots of a GPU list, in the order a training tries them: every GPU's first
    slot (in list order) before any second slot, so ``GPUS=0,0,1,1`` puts two trainings
    on two GPUs, not both on GPU 0."""
    seen: dict[int, int] = {}
    out = []
    for gpu in gpus:
        out.append(Slot(gpu, seen.get(gpu, 0)))
        seen[gpu] = seen.get(gpu, 0) + 1
    first = {gpu: i for i, gpu in reversed(list(enumerate(gpus)))}
    return sorted(out, key=lambda s: (s.k, first[s.gpu]))


def lock_folder(override: str | None = None) -> Path:
    """The token folder: ``override`` (``GPU_LOCKS``) or ``/tmp/segline-gpus-<uid>``.

    The default folder is created private (mode 0700); a folder there that is not a
    real folder owned by this user (a link, another user's) is refused, so nobody else
    can block or redirect the tokens. An override is created when missing and trusted.
    """
    folder = Path(override) if override else Path("/tmp") / f"segline-gpus-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=bool(override), exist_ok=True)
        info = folder.lstat() if not override else None
    except OSError as err:
        raise InputError(folder, f"cannot create the GPU token folder: {err.strerror}") from None
    if info is not None and (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()):
        raise InputError(folder, "not a folder of this user; set GPU_LOCKS=<folder> instead")
    return folder


def _open(path: Path) -> int:
    """A descriptor of the token file, created when missing (read-only when another
    user of a shared ``GPU_LOCKS`` folder created it: flock needs no write access)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


class Token:
    """A slot taken: the flocked token file, and a shared flock on the folder (which
    keeps ``systemd-tmpfiles`` from cleaning the folder while a training runs).
    :meth:`give_back` or the end of the process returns it."""

    def __init__(self, slot: Slot, fd: int, folder_fd: int, holder: str) -> None:
        self.slot = slot
        self.holder = holder
        self._fds = [fd, folder_fd]

    @property
    def held(self) -> bool:
        """Whether the token is still held (not given back yet)."""
        return bool(self._fds)

    def give_back(self) -> None:
        """Release the token (idempotent)."""
        if self._fds:
            for fd in self._fds:
                # unlock first: a forked DataLoader worker may still share the descriptor
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            self._fds = []


def _try(folder: Path, slot: Slot, holder: str) -> int | None:
    """The flocked descriptor of ``slot``'s token, or None when another process holds it."""
    fd = _open(folder / f"{slot.name}.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:  # who holds it, for `cat gpu-0-0.lock` (best effort: read-only in a shared folder)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {holder}\n".encode())
    except OSError:
        pass
    return fd


def take(
    gpus: Sequence[int],
    folder: Path,
    holder: str,
    say: Callable[[str], None],
    poll: float = POLL_SECONDS,
) -> Token:
    """Take the first free slot of ``gpus`` (order: :func:`slots`), waiting while all
    are taken; ``holder`` (the training's ``--out``) is written into the token file."""
    order = slots(gpus)
    folder_fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(folder_fd, fcntl.LOCK_SH)
    waiting = False
    while True:
        for slot in order:
            fd = _try(folder, slot, holder)
            if fd is not None:
                return Token(slot, fd, folder_fd, holder)
        if not waiting:
            listed = ",".join(str(g) for g in gpus)
            say(f"waiting for a GPU: all {len(order)} slots of GPUS={listed} taken ({folder})")
            waiting = True
        time.sleep(poll)


@dataclass(frozen=True)
class Assigned:
    """The GPU a training got: the torch device to compute on (``cuda:N``) and the
    provenance text of the card and token."""

    device: str
    card: str


def check_cards(gpus: Sequence[int], text: str) -> None:
    """Raise :class:`InputError` (naming ``GPUS``, listed as ``text``) unless CUDA is
    available and torch sees every GPU of ``gpus``."""
    import torch  # here, not at the top: the token logic needs no torch

    if not torch.cuda.is_available():
        raise InputError("GPUS", f"GPUS={text} but CUDA is not available")
    count = torch.cuda.device_count()
    if missing := sorted({g for g in gpus if g >= count}):
        raise InputError("GPUS", f"no GPU {missing} here: torch sees {count} (0..{count - 1})")


def use_card(gpu: int, token: str) -> Assigned:
    """Make GPU ``gpu`` this process's current CUDA device (plain ``"cuda"`` tensors,
    e.g. the grad scaler's, land there too); ``token`` names the slot for provenance."""
    import torch

    torch.cuda.set_device(gpu)
    name = torch.cuda.get_device_name(gpu)
    return Assigned(f"cuda:{gpu}", f"cuda:{gpu} {name}, token {token}")


@contextmanager
def assigned(device: str, holder: str, say: Callable[[str], None]) -> Iterator[Assigned | None]:
    """While active, this process holds a GPU token from ``$SEGLINE_GPUS``.

    Yields None (nothing changes) when ``SEGLINE_GPUS`` is empty or ``device`` (the
    ``DEVICE`` knob) is ``cpu``. ``DEVICE`` must otherwise be ``auto`` or ``cuda``:
    ``cuda:N`` names a card itself, which contradicts a list to choose from.
    """
    text = os.environ.get(ENV_GPUS, "").strip()
    if not text:
        yield None
        return
    gpus = parse_gpus(text)
    if device == "cpu":
        say(f"GPUS={text} ignored: DEVICE=cpu")
        yield None
        return
    if device not in ("auto", "cuda"):
        raise InputError("DEVICE", f"DEVICE={device} with GPUS={text}: use DEVICE=auto or cuda")
    check_cards(gpus, text)
    token = take(gpus, lock_folder(os.environ.get(ENV_LOCKS)), holder, say)
    try:
        got = use_card(token.slot.gpu, token.slot.name)
        say(f"GPU {got.card}")
        yield got
    finally:
        token.give_back()
