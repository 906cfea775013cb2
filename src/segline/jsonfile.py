"""Reading a user's JSON file (``dataset.json``, ``splits_final.json``) so that every
problem is one line naming the file (:class:`segline.errors.InputError`), never a
traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segline.errors import InputError


def read_json(path: Path, missing: str = "not found") -> Any:
    """The parsed content of ``path`` (UTF-8 JSON).

    Args:
        path: the file.
        missing: the problem to name when the file does not exist (what the user
            should know, e.g. which layout needs it).

    Raises:
        InputError: missing, unreadable, not UTF-8 or not valid JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, missing) from None
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON: {err}") from None
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror}") from None
