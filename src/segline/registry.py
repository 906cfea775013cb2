"""Named parts found by name: losses, networks, dataset adapters, toy generators.

Each kind is one :class:`Registry` over one package, and every part registers itself
the same way, with the kind's decorator on its class or function in its own module::

    @register_loss("boundary", "surface")     # segline.losses.boundary
    @register_net("UNet")                     # segline.nets.unet
    @register_adapter("msd")                  # segline.datasets.msd
    @register_toy("spleen")                   # segline.datasets.toy_spleen

Nothing else names the part: no list in the package's ``__init__``, no table.

Lookups are lazy. :meth:`Registry.get` imports only the module that registers the
name asked for, found by reading (not importing) the package's sources for the
decorator and its literal arguments, so a stage's import-based lineage (its ``.d``
file, :mod:`segline.stage`) lists the parts it used and not the others: a training
with ``gdl`` does not depend on the focal loss's file. :meth:`Registry.names` (help
texts, error messages) reads the same index, so it imports nothing either (a light
tool such as ``make_toy.py --help`` stays light). A part registered from elsewhere (an
experiment's loss, registered when its trainer imports it) is found once imported.

A name no module registers is one error, :class:`UnknownName` (a ``ValueError``),
whose message lists the known names (and aliases).

The metrics have a registry of their own (:mod:`segline.metrics.registry`): records
naming a ``module:function``, not decorators.

Example:
    >>> from segline.nets.registry import NETS
    >>> NETS.get("unet3d").__name__, "UNet3D" in NETS.names()
    ('UNet3D', True)
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """A name no module of the kind's package registers.

    Args:
        kind: the kind, singular (``"loss"``).
        plural: the kind, plural (``"losses"``).
        name: the name asked for.
        known: the registered names, sorted.
        aliases: alias -> canonical name.

    Example:
        >>> str(UnknownName("toy", "toys", "x", ["isles", "spleen"], {}))
        "unknown toy 'x'; known toys: isles, spleen"
    """

    def __init__(self, kind: str, plural: str, name: str, known: list[str],
                 aliases: dict[str, str]) -> None:
        self.kind, self.plural, self.name = kind, plural, name
        self.known, self.aliases = known, aliases
        text = f"unknown {kind} {name!r}; known {plural}: {', '.join(known) or 'none'}"
        if aliases:
            text += f" (aliases: {', '.join(f'{a}->{c}' for a, c in aliases.items())})"
        super().__init__(text)

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        """Pickle by the constructor's arguments (raised in a worker process)."""
        return type(self), (self.kind, self.plural, self.name, self.known, self.aliases)


class Registry(Generic[T]):
    """Name -> class or function of one kind, registered by decorator in the modules
    of one package and imported when asked for.

    Args:
        kind: singular noun used in messages (``"loss"``, ``"network"``).
        plural: plural noun (``"losses"``).
        package: the package whose modules register the parts (``"segline.losses"``).
        decorator: the decorator's name as written in those modules
            (``"register_loss"``): how the sources are read for names.
        pattern: what a name must look like (full match).
        ignore_case: lookups ignore letter case (networks); names keep theirs.
        base: when set, only subclasses of it can be registered (``TypeError``);
            otherwise anything callable.
        name_attribute: when set, the registered name is stored on the part under
            this attribute (``SegLoss.name``).
    """

    def __init__(self, kind: str, plural: str, package: str, decorator: str, *,
                 pattern: str, ignore_case: bool = False, base: type | None = None,
                 name_attribute: str | None = None) -> None:
        self.kind = kind
        self.plural = plural
        self.package = package
        self.decorator = decorator
        self.pattern = re.compile(pattern)
        self.ignore_case = ignore_case
        self.base = base
        self.name_attribute = name_attribute
        self._parts: dict[str, tuple[str, T]] = {}  # key -> (canonical name, part)
        self._aliases: dict[str, tuple[str, str]] = {}  # key -> (alias, canonical key)
        self._index: _Index | None = None

    # ------------------------------------------------------------------ registering
    def _key(self, name: str) -> str:
        return name.lower() if self.ignore_case else name

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function as ``name``.

        Args:
            name: the canonical name (must match the registry's pattern).
            aliases: other accepted names, resolved to ``name``.

        Returns:
            The decorator; it returns the part unchanged (with ``name_attribute`` set).

        Raises:
            ValueError: a malformed name, or one already taken by another part.
            TypeError: the part is not a subclass of ``base`` (or not callable).
        """
        for n in (name, *aliases):
            if not isinstance(n, str) or not self.pattern.fullmatch(n):
                raise ValueError(f"bad {self.kind} name {n!r} "
                                 f"(expected {self.pattern.pattern})")

        def decorator(part: T) -> T:
            self._add(part, name, aliases)
            return part

        return decorator

    def _add(self, part: T, name: str, aliases: tuple[str, ...]) -> None:
        if self.base is not None:
            if not (isinstance(part, type) and issubclass(part, self.base)):
                raise TypeError(f"{part!r} is not a {self.base.__name__} subclass")
        elif not callable(part):
            raise TypeError(f"{part!r} is not a class or function")
        key = self._key(name)
        # the same definition again (its module imported a second time) replaces itself
        again = key in self._parts and _same(self._parts[key][1], part)
        for n in (name, *aliases):
            k = self._key(n)
            if not again and (k in self._parts or k in self._aliases):
                raise ValueError(f"{self.kind} name {n!r} is already registered")
        if self.name_attribute:
            setattr(part, self.name_attribute, name)
        self._parts[key] = (name, part)
        for a in aliases:
            self._aliases[self._key(a)] = (a, key)

    # ------------------------------------------------------------------ finding
    def _sources(self) -> _Index:
        """The names the package's modules register, read from their sources once."""
        if self._index is None:
            self._index = _Index.read(self.package, self.decorator)
        return self._index

    def _found(self, key: str) -> str | None:
        if key in self._parts:
            return key
        if key in self._aliases:
            return self._aliases[key][1]
        return None

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` (an alias or, for ``ignore_case``, any
        spelling), importing the module that registers it.

        Raises:
            UnknownName: no module registers ``name``.
        """
        key = self._key(name)
        if self._found(key) is None:
            index = self._sources()
            for module in index.modules_of(key, self._key):
                importlib.import_module(module)
            if self._found(key) is None:  # registered under a computed name
                for module in index.dynamic:
                    importlib.import_module(module)
        found = self._found(key)
        if found is None:
            raise UnknownName(self.kind, self.plural, name, self.names(), self.aliases())
        return self._parts[found][0]

    def get(self, name: str) -> T:
        """The class or function registered as ``name`` (or an alias), importing only
        the module that registers it.

        Raises:
            UnknownName: no module registers ``name``; the message lists the known names.
        """
        return self._parts[self._key(self.canonical(name))][1]

    def names(self) -> list[str]:
        """Every registered canonical name, sorted (aliases not included): those the
        package's sources register, without importing them, and those registered
        from elsewhere so far."""
        index = self._sources()
        for module in index.dynamic:
            importlib.import_module(module)
        found = {self._key(n): n for n in index.names}
        found.update((k, n) for k, (n, _) in self._parts.items())
        return sorted(found.values())

    def aliases(self) -> dict[str, str]:
        """Alias -> canonical name of every registered alias, sorted by alias."""
        index = self._sources()
        found = dict(index.aliases)
        found.update((a, self._parts[k][0]) for a, k in self._aliases.values())
        return dict(sorted(found.items()))


def _same(old: object, new: object) -> bool:
    """Whether two parts are one definition (same module and qualified name)."""
    return all(getattr(old, a, None) == getattr(new, a, object())
               for a in ("__module__", "__qualname__"))


class _Index:
    """What a package's module sources register, read with :mod:`ast` (no import).

    Attributes:
        where: module -> names and aliases it registers (literal arguments).
        names: canonical names, aliases: alias -> canonical name.
        dynamic: modules that call the decorator with anything but string literals
            (imported whenever the sources cannot tell).
    """

    def __init__(self) -> None:
        self.where: dict[str, list[str]] = {}
        self.names: list[str] = []
        self.aliases: dict[str, str] = {}
        self.dynamic: list[str] = []

    def modules_of(self, key: str, normal: Callable[[str], str]) -> list[str]:
        """The modules registering a name whose key is ``key``."""
        return [m for m, names in self.where.items() if key in {normal(n) for n in names}]

    @classmethod
    def read(cls, package: str, decorator: str) -> _Index:
        index = cls()
        spec = importlib.util.find_spec(package)
        paths = list(spec.submodule_search_locations or []) if spec else []
        for info in sorted(pkgutil.iter_modules(paths), key=lambda i: i.name):
            if info.ispkg:
                continue
            module = f"{package}.{info.name}"
            source = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
            try:
                text = source.read_text(encoding="utf-8")
            except OSError:  # no source to read (compiled only): import it to know
                index.dynamic.append(module)
                continue
            if decorator not in text:
                continue
            for args in _decorator_calls(ast.parse(text, str(source)), decorator):
                if args is None:
                    index.dynamic.append(module)
                    continue
                index.where.setdefault(module, []).extend(args)
                index.names.append(args[0])
                index.aliases.update((a, args[0]) for a in args[1:])
        return index


def _decorator_calls(tree: ast.AST, decorator: str) -> list[list[str] | None]:
    """The arguments of every ``@decorator(...)`` on a class or function of ``tree``
    (None where they are not all string literals)."""
    calls: list[list[str] | None] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            if not isinstance(deco, ast.Call):
                continue
            func = deco.func
            called = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if called != decorator:
                continue
            args = [a.value for a in deco.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            literal = len(args) == len(deco.args) and args and not deco.keywords
            calls.append(args if literal else None)
    return calls

