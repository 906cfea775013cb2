"""What a training prints, every line tagged with its method's name.

Under ``make -j`` several trainings share one terminal (or one log), so every line a
training writes — header, per-epoch lines, resume and final lines, the progress bar's
description (stderr) and Python warnings raised while it runs — starts with
``[<method>] ``, the method being the name of the ``--out`` folder (``results/<ds>/gdl``
→ ``[gdl] ``). This module is the one place that adds the tag; the trainer never
formats it itself.

The same lines go to the training's ``train.log`` (:meth:`Voice.log_to`), without the
progress bar (it never goes through this module): a plain record of what the run
said, kept with its results. Lines said before the log file is known (the header
warnings, a GPU token) are kept and written first when ``keep`` is set.

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
        keep: keep the lines said before :meth:`log_to` is called, for the log.
    """

    def __init__(self, method: str, keep: bool = False) -> None:
        self.method = method
        self.tag = f"[{method}] "
        self.log_path: Path | None = None
        self._kept: list[str] | None = [] if keep else None

    def log_to(self, path: Path | None) -> None:
        """Append every line said from now on to ``path`` (created if missing, continued
        if there: a resumed training), the kept lines first; None stops logging."""
        self.log_path = path
        if path is not None and self._kept:
            self._log("".join(self._kept))
        self._kept = None

    def _log(self, text: str) -> None:
        """Append ``text`` (tagged lines ending in newlines) to the log, or keep it."""
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(text)
        elif self._kept is not None:
            self._kept.append(text)

    def lines(self, text: str) -> str:
        """``text`` with every line tagged (a trailing newline is kept as it is)."""
        body = text[:-1] if text.endswith("\n") else text
        tagged = "\n".join(self.tag + line for line in body.split("\n"))
        return tagged + ("\n" if text.endswith("\n") else "")

    def say(self, text: str, file: TextIO | None = None) -> None:
        """Print ``text`` (every line tagged) to ``file`` (stdout) and flush; log it."""
        tagged = self.lines(text)
        print(tagged, file=file or sys.stdout, flush=True)
        self._log(tagged + "\n")

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
            text = self.format_warning(message, category, filename, lineno)
            out.write(text)
            out.flush()
            self._log(text)

        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = previous
