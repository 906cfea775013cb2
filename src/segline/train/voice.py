"""What a training prints, every line tagged with its method's name.

Under ``make -j`` several trainings share one terminal (or one log), so every line a
training writes — header, per-epoch lines, resume and final lines, the progress bar's
description (stderr) and Python warnings raised while it runs — starts with
``[<method>] ``, the method being the name of the ``--out`` folder (``results/<ds>/gdl``
→ ``[gdl] ``). This module is the one place that adds the tag; the trainer never
formats it itself.

Example:
    >>> v = Voice("gdl")
    >>> v.say("epoch   1/8  loss 0.5")
    [gdl] epoch   1/8  loss 0.5
    >>> v.desc("epoch 1/8")
    '[gdl] epoch 1/8'
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class Voice:
    """Prefixes the lines of one method's training with ``[<method>] ``.

    Args:
        method: the method's name (the ``--out`` folder's name).
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self.tag = f"[{method}] "

    def lines(self, text: str) -> str:
        """``text`` with every line tagged (a trailing newline is kept as it is)."""
        body = text[:-1] if text.endswith("\n") else text
        tagged = "\n".join(self.tag + line for line in body.split("\n"))
        return tagged + ("\n" if text.endswith("\n") else "")

    def say(self, text: str, file: TextIO | None = None) -> None:
        """Print ``text`` (every line tagged) to ``file`` (stdout) and flush."""
        print(self.lines(text), file=file or sys.stdout, flush=True)

    def desc(self, text: str) -> str:
        """A progress bar's description: ``text`` tagged."""
        return self.tag + text

    def format_warning(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int
    ) -> str:
        """One warning as tagged line(s): ``[gdl] warning: UserWarning: ... (file.py:12)``."""
        where = f"{Path(filename).name}:{lineno}"
        return self.lines(f"warning: {category.__name__}: {message} ({where})") + "\n"

    @contextmanager
    def warnings(self) -> Iterator[None]:
        """While active, Python warnings are written as tagged lines (stderr).

        Which warnings are shown (once per place, filters) is left to :mod:`warnings`;
        only their printing is replaced, and the previous printer is restored after.
        """
        previous = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            out = file or sys.stderr
            out.write(self.format_warning(message, category, filename, lineno))
            out.flush()

        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = previous
