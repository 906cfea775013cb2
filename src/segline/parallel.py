"""Per-case work over worker processes, with input errors carried back intact.

The data stages (distance maps, pseudo-labels) do the same thing for every case and
can use several processes (``--jobs N``). :func:`map_cases` runs them in ``spawn``
processes (no fork of a parent holding torch threads), keeps the results in the order
of the cases, and turns a worker's :class:`~segline.errors.InputError` back into one in
the parent — the exception itself does not survive pickling — so the CLI still reports
the first bad case (in case order) as one line.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from segline.errors import InputError


def _call(fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """``(True, fn(*args))``, or ``(False, (where, problem))`` on an InputError."""
    try:
        return True, fn(*args)
    except InputError as err:
        return False, (err.where, err.problem)


def map_cases(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], jobs: int = 1) -> list[Any]:
    """``[fn(*a) for a in args]``, over ``jobs`` processes when ``jobs > 1``.

    Args:
        fn: a module-level function (it is pickled to the workers).
        args: one argument tuple per case, in case order.
        jobs: worker processes; 1 runs in this process.

    Returns:
        The results, in the order of ``args``.

    Raises:
        InputError: the first (in ``args`` order) case whose ``fn`` raised one.

    Example:
        >>> map_cases(divmod, [(7, 2), (9, 4)])
        [(3, 1), (2, 1)]
    """
    if jobs > 1 and len(args) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(args)), mp_context=ctx) as pool:
            results = list(pool.map(_call, [fn] * len(args), *zip(*args, strict=True)))
    else:
        results = [_call(fn, *a) for a in args]
    for ok, value in results:
        if not ok:
            raise InputError(*value)
    return [value for _, value in results]
