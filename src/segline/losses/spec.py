r"""Loss specs: which losses a method trains with, their weights, classes and schedule.

A spec is a string, in one of two forms (parsed with regular expressions and
``json.loads``; nothing is ever evaluated).

Compact form, e.g. ``gdl:1,boundary:0.01`` or ``gdl,boundary:0.01[idc=1;schedule=rebalance]``::

    spec    := term ("," term)*                 commas inside [...] do not split terms
    term    := NAME [":" WEIGHT] ["[" option (";" option)* "]"]
    NAME    := [a-z][a-z0-9_]*                  a registered loss or alias
    WEIGHT  := non-negative decimal             1, 0.01, .5, 1e-2 (default 1)
    option  := KEY "=" VALUE
    KEY     := [a-z_][a-z0-9_]*
    VALUE   := INT ("," INT)*                   for idc, e.g. idc=1,2
             | true | false | INT | FLOAT | WORD   loss options, schedule kind

JSON form (the string starts with ``[``), one object per term::

    [{"name": "gdl", "weight": 1, "idc": [0, 1]},
     {"name": "boundary", "weight": 0.01, "idc": [1], "schedule": "rebalance"}]

Keys common to both forms: ``idc`` (default: all classes 0..K-1 for regional losses,
foreground 1..K-1 for boundary/hausdorff), ``schedule`` (``constant``, ``increase``,
``rebalance``, ``steal``, see :mod:`segline.losses.schedule`), ``step`` and ``cap`` (schedule
parameters, only with ``schedule``). Every other key is passed to the loss's
constructor (``smooth``, ``eps``, ``alpha``, ``gamma``, ``weighted``) and must be one
of its parameters.

For a scheduled term the weight is α at the first epoch (the schedule's ``start``; default
0.01 when no weight is written). All scheduled terms of a spec share one schedule:
same kind, start, step and cap.

Any problem gives a ``ValueError`` naming the offending term.

Example:
    >>> [(t.name, t.weight, t.idc) for t in parse_spec("gdl:1,boundary:0.01", n_classes=2)]
    [('gdl', 1.0, (0, 1)), ('boundary', 0.01, (1,))]
    >>> t = parse_spec("boundary[idc=1,2;schedule=rebalance]", n_classes=3)[0]
    >>> t.idc, t.schedule.kind, t.schedule.alpha_at(2)
    ((1, 2), 'rebalance', 0.03)
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segline.losses.registry import SegLoss, canonical_name, check_idc, get_loss_class
from segline.losses.schedule import Schedule

DEFAULT_SCHEDULED_START = 0.01

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TERM = re.compile(
    r"\s*(?P<name>[^:\[\]\s]+)\s*(?::\s*(?P<weight>[^\[\]\s]*))?\s*(?:\[(?P<opts>[^\[\]]*)\])?\s*"
)
_WEIGHT = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_KEY = re.compile(r"[a-z_][a-z0-9_]*")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_IDC = re.compile(r"\d+(?:\s*,\s*\d+)*")
_SCHEDULE_KEYS = ("step", "cap")
_RESERVED = ("name", "weight", "idc", "schedule", *_SCHEDULE_KEYS)
_JSON_SCALAR = (bool, int, float, str)


@dataclass(frozen=True)
class LossTerm:
    """One parsed term of a spec.

    Args:
        name: canonical registry name.
        weight: the term's weight; for a scheduled term, α at the first epoch.
        idc: the classes it applies to.
        options: extra constructor arguments of the loss.
        schedule: the schedule of α, or ``None`` for a fixed weight.

    Example:
        >>> LossTerm("dice", 1.0, (0, 1)).build()
        Dice(idc=[0, 1], smooth=1e-06)
    """

    name: str
    weight: float
    idc: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    schedule: Schedule | None = None

    def build(self) -> SegLoss:
        """Instantiate the loss module (``get_loss(name, idc=..., **options)``)."""
        return get_loss_class(self.name)(idc=list(self.idc), **dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-form object of this term (for ``args.json`` / provenance)."""
        out: dict[str, Any] = {"name": self.name, "weight": self.weight, "idc": list(self.idc)}
        out.update(self.options)
        if self.schedule is not None:
            out.update(schedule=self.schedule.kind, step=self.schedule.step,
                       cap=self.schedule.cap)
        return out


def parse_spec(spec: str, n_classes: int) -> list[LossTerm]:
    """Parse a loss spec (compact or JSON form) for a problem with ``n_classes`` classes.

    Args:
        spec: the spec string (see the module docstring for the grammar).
        n_classes: K, number of classes including background 0 (>= 1).

    Returns:
        The terms, in the order written; each has been instantiated once to check
        its options.

    Example:
        >>> parse_spec('[{"name": "ce", "weight": 0.5}]', n_classes=2)[0].weight
        0.5
    """
    if not isinstance(spec, str):
        raise ValueError(f"loss spec must be a string, got {type(spec).__name__}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    text = spec.strip()
    if not text:
        raise ValueError("empty loss spec")
    if text.startswith("{"):
        raise ValueError("JSON loss spec must be a list of objects: wrap it in [ ... ]")
    raw = _parse_json(text) if text.startswith("[") else _parse_compact(text)
    terms = [_make_term(entry, n_classes, where) for where, entry in raw]
    schedules = {t.schedule for t in terms if t.schedule is not None}
    if len(schedules) > 1:
        raise ValueError(
            f"loss spec {spec!r}: scheduled terms must share one schedule (kind, weight=start,"
            f" step, cap), got {sorted(map(repr, schedules))}"
        )
    return terms


def terms_to_json(terms: list[LossTerm]) -> str:
    """The JSON form of parsed terms; ``parse_spec`` of it gives the same terms.

    Example:
        >>> terms_to_json(parse_spec("gdl", n_classes=2))
        '[{"name": "gdl", "weight": 1.0, "idc": [0, 1]}]'
    """
    return json.dumps([t.to_dict() for t in terms])


# --------------------------------------------------------------------------------------


def _split_terms(text: str) -> list[str]:
    """Split on commas outside brackets; reject nested or unbalanced brackets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"loss spec {text!r}: nested '[' in options")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"loss spec {text!r}: ']' without '['")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise ValueError(f"loss spec {text!r}: '[' without ']'")
    parts.append("".join(current))
    return parts


def _scalar(text: str, where: str) -> bool | int | float | str:
    """A compact-form option value: true/false, int, float or a bare word."""
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _WORD.fullmatch(text):
        return text
    raise ValueError(f"{where}: bad value {text!r} (expected a number, true/false or a word)")


def _parse_compact(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i, part in enumerate(_split_terms(text), start=1):
        where = f"loss spec term {i} {part.strip()!r}"
        m = _TERM.fullmatch(part)
        if not part.strip() or m is None:
            raise ValueError(f"{where}: expected name[:weight][[key=value;...]]")
        entry: dict[str, Any] = {"name": m["name"]}
        if m["weight"] is not None:
            if not _WEIGHT.fullmatch(m["weight"]):
                raise ValueError(f"{where}: weight {m['weight']!r} is not a non-negative number")
            entry["weight"] = float(m["weight"])
        if m["opts"] is not None:
            for opt in m["opts"].split(";"):
                key, sep, value = (s.strip() for s in opt.partition("="))
                if not sep or not _KEY.fullmatch(key) or not value:
                    raise ValueError(f"{where}: bad option {opt.strip()!r} (expected key=value)")
                if key in ("name", "weight") or key in entry:
                    raise ValueError(f"{where}: option {key!r} not allowed or repeated")
                if key == "idc":
                    if not _IDC.fullmatch(value):
                        raise ValueError(f"{where}: idc must be integers like 1 or 0,1,2")
                    entry[key] = [int(v) for v in value.split(",")]
                else:
                    entry[key] = _scalar(value, where)
        out.append((where, entry))
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_json(text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as err:
        raise ValueError(f"loss spec is not valid JSON: {err}") from None
    if not isinstance(data, list) or not data:
        raise ValueError("JSON loss spec must be a non-empty list of objects")
    out = []
    for i, entry in enumerate(data, start=1):
        where = f"loss spec term {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {entry!r}")
        name = entry.get("name")
        if not isinstance(name, str):
            raise ValueError(f"{where}: 'name' must be a string")
        where = f"loss spec term {i} ({name!r})"
        if "weight" in entry:
            w = entry["weight"]
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise ValueError(f"{where}: weight must be a number, got {w!r}")
        if "idc" in entry:
            idc = entry["idc"]
            if not isinstance(idc, list) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in idc
            ):
                raise ValueError(f"{where}: idc must be a list of integers, got {idc!r}")
        for key, value in entry.items():
            if key not in ("name", "idc") and not isinstance(value, _JSON_SCALAR):
                raise ValueError(f"{where}: {key!r} must be a number, string or boolean")
        out.append((where, dict(entry)))
    return out


def _options_of(cls: type[SegLoss]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [n for n, p in params.items() if n not in ("self", "idc")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _make_term(entry: dict[str, Any], n_classes: int, where: str) -> LossTerm:
    name = entry["name"]
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: bad loss name {name!r} (expected [a-z][a-z0-9_]*)")
    try:
        name = canonical_name(name)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    cls = get_loss_class(name)

    weight = entry.get("weight")
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"{where}: weight must be finite and >= 0, got {weight}")

    try:
        idc = check_idc(entry["idc"]) if "idc" in entry else tuple(cls.default_idc(n_classes))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if not idc:
        raise ValueError(f"{where}: no default classes for {n_classes} class(es); give idc")
    if max(idc) >= n_classes:
        raise ValueError(f"{where}: idc {list(idc)} out of range for {n_classes} classes")

    schedule = None
    sched_args = {k: entry[k] for k in _SCHEDULE_KEYS if k in entry}
    if "schedule" in entry:
        start = DEFAULT_SCHEDULED_START if weight is None else weight
        try:
            schedule = Schedule(entry["schedule"], start=start, **sched_args)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        weight = schedule.start
    elif sched_args:
        raise ValueError(f"{where}: {sorted(sched_args)} given without a schedule")

    allowed = _options_of(cls)
    options = {k: v for k, v in entry.items() if k not in _RESERVED}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where}: unknown option(s) {unknown} for loss {name!r}"
            f" (options: {', '.join(['idc', 'schedule', 'step', 'cap', *allowed])})"
        )
    term = LossTerm(name, float(1.0 if weight is None else weight), idc, options, schedule)
    try:
        term.build()
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return term
