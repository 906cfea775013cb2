"""Reading a user's file (``dataset.json``, ``splits_final.json``, a lineage file, a
``STRATIFY_FILE``) so that every problem is one line naming the file
(:class:`segline.errors.InputError`), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segline.errors import InputError


def read_text(path: Path, missing: str = "not found", encoding: str = "utf-8") -> str:
    """The text of ``path``.

    Args:
        path: the file.
        missing: the problem to name when the file does not exist.
        encoding: ``utf-8``, or ``utf-8-sig`` for files spreadsheets write (a BOM).

    Raises:
        InputError: missing, unreadable or not UTF-8.
    """
    try:
        return path.read_bytes().decode(encoding)
    except FileNotFoundError:
        raise InputError(path, missing) from None
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror}") from None


def read_json(path: Path, missing: str = "not found") -> Any:
    """The parsed content of ``path`` (UTF-8 JSON).

    Args:
        path: the file.
        missing: the problem to name when the file does not exist (what the user
            should know, e.g. which layout needs it).

    Raises:
        InputError: missing, unreadable, not UTF-8 or not valid JSON.
    """
    text = read_text(path, missing)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON: {err}") from None
