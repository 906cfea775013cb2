"""Errors that the command-line tools report as one line instead of a traceback.

Every problem caused by the user's input (a wrong md5, a truncated archive, a label
outside the declared classes, ...) is raised as :class:`InputError` with the path of
the offending file, so that :func:`segline.cli.run` can print ``segline: <path>:
<problem>`` on one line and exit non-zero.
"""

from __future__ import annotations

from os import PathLike


class InputError(Exception):
    """Bad input: the message names the file and the problem.

    Args:
        where: the file, folder or case the problem was found in.
        problem: what is wrong, in words a user can act on.

    Example:
        >>> str(InputError("data/x.tar", "md5 mismatch"))
        'data/x.tar: md5 mismatch'
    """

    def __init__(self, where: str | PathLike[str], problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
