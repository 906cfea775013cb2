"""The report's "Configuration and provenance" section: how each method was trained.

Per method (all its seeds' trainings): the training arguments of ``args.json``
(``TrainConfig.identity()``; keys the trainer adds later, e.g. ``aug``, ``sched``,
``warmup``, ``wd``, are shown by their own name: known keys first in
:data:`KNOWN_KEYS` order, then the rest sorted), the training wall time (sum of
``timing.csv`` ``seconds``, per seed and in total), the code commit
(``provenance/git-commit.txt``, marked *dirty* when ``provenance/git-status.txt`` lists
changes), the md5s of the source archives (``provenance/lineage.md5``) and a short
digest of the content digests of the stores read (``lineage.json`` ``inputs``: two
trainings with the same digest read the same data). Above the tables, with the case
store (``--cases``), the crop the test cases used (:func:`cropped_tests_line`).

Wall times are the only numbers here that differ between two runs of one experiment.

Example:
    >>> fmt_value([0.5, 2]), fmt_value({"width": 8}), fmt_value(None)
    ('0.5, 2', 'width=8', '–')
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segline.errors import InputError
from segline.report.text import shown_name
from segline.results import MethodGroup, MethodResults, numeric_column, read_csv
from segline.seeds import sub_label

KNOWN_KEYS = (
    "net",
    "net_kwargs",
    "epochs",
    "lr",
    "batch_size",
    "seed",
    "losses",
    "precision",
    "amp",
    "aug",
    "sched",
    "warmup",
    "wd",
)
"""args.json keys shown first, in this order (the recipe); the rest follow sorted."""
HIDDEN_KEYS = frozenset({"out"})
"""args.json keys not shown: the training's own folder (differs per seed by design)."""
DIGEST_LEN = 12


def fmt_value(value: Any) -> str:
    """An args.json value in a table cell (lists comma-joined, dicts as k=v, None as –)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(value.items())) or "{}"
    text = str(value)
    return text.replace("|", "\\|")


def read_args(run: MethodResults) -> dict[str, Any]:
    """``args.json`` of a training (InputError when missing or not a JSON object)."""
    path = run.path / "args.json"
    if not path.is_file():
        raise InputError(path, "missing; training writes it")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not JSON ({err.__class__.__name__})") from err
    if not isinstance(data, dict):
        raise InputError(path, "not a JSON object")
    return data


def ordered_keys(args: Sequence[dict[str, Any]]) -> list[str]:
    """Keys of all trainings' args: :data:`KNOWN_KEYS` first, then the others sorted."""
    present = {k for a in args for k in a} - HIDDEN_KEYS
    return [k for k in KNOWN_KEYS if k in present] + sorted(present - set(KNOWN_KEYS))


def wall_seconds(run: MethodResults) -> float:
    """Training wall time in s: the sum of ``timing.csv`` ``seconds`` (NaN if absent)."""
    path = run.path / "timing.csv"
    if not path.is_file():
        return math.nan
    df = read_csv(path, ("seconds",))
    return float(numeric_column(df, "seconds", path).sum())


def test_seconds(run: MethodResults) -> float:
    """Mean wall time in s of a test case's prediction during the training: the mean of
    ``test/timing.csv`` ``seconds`` (NaN if absent: a trainer that does not time them)."""
    path = run.path / "test" / "timing.csv"
    if not path.is_file():
        return math.nan
    df = read_csv(path, ("seconds",))
    return float(numeric_column(df, "seconds", path).mean())


def fmt_seconds(seconds: float) -> str:
    """``42.1 s`` / ``12.5 min`` / ``3.20 h``; "–" when unknown."""
    if not math.isfinite(seconds):
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def commit(run: MethodResults) -> str:
    """The recorded commit, ``+dirty`` when git-status.txt lists changes; "–" if none."""
    prov = run.path / "provenance"
    path = prov / "git-commit.txt"
    if not path.is_file():
        return "–"
    text = path.read_text().strip() or "–"
    status = prov / "git-status.txt"
    if status.is_file() and status.read_text().strip():
        text += " (dirty)"
    return text


def lineage_md5s(run: MethodResults) -> list[str]:
    """Lines of ``provenance/lineage.md5`` (``<md5>  <archive>``), empty if absent."""
    path = run.path / "provenance" / "lineage.md5"
    if not path.is_file():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def lineage_cell(run: MethodResults, most: int = 3) -> str:
    """The archives' md5 lines, or for a longer list (a folder's manifest, one line per
    file) its length and the md5 of ``provenance/lineage.md5`` (``md5sum`` gives the
    same), so the report of a folder of thousands of files keeps one short cell; "–"."""
    lines = lineage_md5s(run)
    if len(lines) <= most:
        return "; ".join(lines) or "–"
    digest = hashlib.md5("".join(ln + "\n" for ln in lines).encode(), usedforsecurity=False)
    return f"{len(lines)} files (md5 of provenance/lineage.md5: {digest.hexdigest()})"


def inputs_digest(run: MethodResults) -> str:
    """First 12 hex of the sha256 of ``lineage.json`` ``inputs`` (canonical JSON); "–"."""
    path = run.path / "lineage.json"
    if not path.is_file():
        return "–"
    try:
        inputs = json.loads(path.read_text()).get("inputs")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise InputError(path, "not a JSON object") from err
    if inputs is None:
        return "–"
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LEN]


def _joined(values: Sequence[str]) -> str:
    """One value when all trainings agree, else each seed's value joined by " / "."""
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else " / ".join(values)


def group_config(group: MethodGroup) -> dict[str, str]:
    """Rows ``{field: text}`` of one method's configuration and provenance."""
    args = [read_args(r) for r in group.runs]
    rows: dict[str, str] = {}
    for key in ordered_keys(args):
        if key == "seed" and len(group.runs) > 1:
            rows["seed"] = ", ".join(fmt_value(a.get("seed")) for a in args)
            continue
        rows[key] = _joined([fmt_value(a.get(key)) for a in args])
    seconds = [wall_seconds(r) for r in group.runs]
    if len(group.runs) > 1:
        per = ", ".join(
            f"{_run_name(r)}: {fmt_seconds(s)}" for r, s in zip(group.runs, seconds, strict=True)
        )
        rows["training wall time"] = f"{fmt_seconds(sum(seconds))} ({per})"
    else:
        rows["training wall time"] = fmt_seconds(seconds[0])
    per_case = [test_seconds(r) for r in group.runs]
    if any(math.isfinite(s) for s in per_case):
        rows["test prediction per case (mean)"] = _joined([fmt_seconds(s) for s in per_case])
    rows["commit"] = _joined([commit(r) for r in group.runs])
    rows["archives (md5)"] = _joined([lineage_cell(r) for r in group.runs])
    rows["inputs digest"] = _joined([inputs_digest(r) for r in group.runs])
    return rows


def _run_name(run: MethodResults) -> str:
    """``seed k`` (a seed's training), or ``fold<i>[/seed<k>]`` in a cross-validation."""
    return f"seed {run.seed}" if run.fold is None else sub_label(run.fold, run.seed)


CROP_TEXT = {
    "none": "none (whole volume)",
    "body": "body (image only)",
    "label": "label (the box of the case's own ground truth: nothing outside it is "
    "predicted or scored; slice again for image-only test crops)",
}
"""How a case's recorded crop (meta ``crop``; absent: none) is named in the report;
other recorded values (``body (image only)`` ...) are shown as they are."""


def cropped_tests_line(cases_dir: Path, test_ids: Sequence[str]) -> str:
    """One line naming the crop the test cases used (their meta ``crop``, written by
    the slicing stage: :mod:`segline.preprocess.cropping`), with the count of cases
    per crop when they differ.

    Example:
        >>> cropped_tests_line(Path("no-store"), [])
        ''
    """
    used: dict[str, int] = {}
    for case in test_ids:
        meta_file = cases_dir / case / "meta.json"
        if not meta_file.is_file():
            continue
        crop = str(json.loads(meta_file.read_text()).get("crop", "none"))
        text = CROP_TEXT.get(crop, crop)
        used[text] = used.get(text, 0) + 1
    if not used:
        return ""
    n = sum(used.values())
    if len(used) == 1:
        return f"Test cases cropped: {next(iter(used))}, {n} case{'s' * (n != 1)}.\n"
    parts = ", ".join(f"{text}: {k} case{'s' * (k != 1)}" for text, k in used.items())
    return f"Test cases cropped: {parts}.\n"


def config_section(groups: Sequence[MethodGroup], data_line: str = "") -> str:
    """Markdown: the configuration and provenance of every method (:func:`config_tables`),
    after ``data_line`` (e.g. :func:`cropped_tests_line`) when given."""
    parts = [
        "## Configuration and provenance\n",
        "Training arguments (`args.json`), wall time (sum of `timing.csv` seconds), the "
        "mean seconds of a test case's prediction (`test/timing.csv`), the "
        "code commit, the source archives' md5s and a digest of the stores read "
        "(`lineage.json` inputs). A value that differs between seeds is given per seed "
        "(` / `).\n",
    ]
    if data_line:
        parts.append(data_line)
    parts.append(config_tables({shown_name(g.name, g.oracle): group_config(g) for g in groups}))
    return "\n".join(parts)


def config_tables(configs: dict[str, dict[str, str]]) -> str:
    """The fields that differ between methods (one column per method), then the fields
    every method shares (one value each): a reader sees at once what the comparison
    varies and what it holds fixed.

    Args:
        configs: method name -> its rows ``{field: text}`` (:func:`group_config`).

    Example:
        >>> print(config_tables({"a": {"losses": "gdl:1", "lr": "0.001"},
        ...                      "b": {"losses": "ce:1", "lr": "0.001"}}))
        ### What differs between the methods
        <BLANKLINE>
        | field | a | b |
        |---|---|---|
        | losses | gdl:1 | ce:1 |
        <BLANKLINE>
        ### Shared by every method
        <BLANKLINE>
        | field | value |
        |---|---|
        | lr | 0.001 |
        <BLANKLINE>
    """
    fields = list(dict.fromkeys(k for rows in configs.values() for k in rows))
    differ = [f for f in fields if len({rows.get(f, "–") for rows in configs.values()}) > 1]
    shared = [f for f in fields if f not in differ]
    parts = []
    if differ:
        names = list(configs)
        lines = [
            "### What differs between the methods\n",
            "| field | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        lines += [
            f"| {f} | " + " | ".join(configs[n].get(f, "–") for n in names) + " |" for f in differ
        ]
        parts.append("\n".join(lines) + "\n")
    if shared:
        first = next(iter(configs.values()))
        lines = ["### Shared by every method\n", "| field | value |", "|---|---|"]
        lines += [f"| {f} | {first[f]} |" for f in shared]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
