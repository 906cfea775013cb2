"""One registration style for losses, networks, dataset adapters and toy generators
(segline.registry): a decorator in the part's own module, a listing that imports
nothing, a lookup that imports only the module asked for, one error for an unknown name.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from segline.datasets.toys import TOYS, get_toy, toy_names
from segline.losses.registry import LOSSES, get_loss_class, loss_names
from segline.nets.registry import NETS, get_net_class, net_names
from segline.preprocess.slicing import ADAPTERS, adapter_names, get_adapter
from segline.registry import Registry, UnknownName

EXPERIMENTS = {"mip", "mip_fused", "fpfn", "MipFused"}
"""Names the experiments register when their modules are imported (another test of
this process may have imported them; a fresh process lists only the core's)."""

KINDS: dict[str, tuple[Registry[object], Callable[[], list[str]], list[str]]] = {
    "loss": (LOSSES, loss_names,
             ["boundary", "ce", "dice", "focal", "gdl", "hausdorff", "hausdorff_gt"]),
    "network": (NETS, net_names, ["Dimwit", "Dimwit3D", "ENet", "IterativeFCN",
                                  "ResidualUNet", "UNet", "UNet3D", "VNet2D"]),
    "adapter": (ADAPTERS, adapter_names, ["isles", "msd", "nnunet", "verse"]),
    "toy": (TOYS, toy_names, ["isles", "isles-hard", "spleen", "vertebrae", "vessels"]),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_lists_its_names_the_same_way(kind: str) -> None:
    registry, listing, expected = KINDS[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    names = [n for n in listing() if n not in EXPERIMENTS]
    assert names == expected
    assert [n for n in registry.names() if n not in EXPERIMENTS] == expected


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unknown_name_is_one_error(kind: str) -> None:
    registry, _, expected = KINDS[kind]
    with pytest.raises(UnknownName) as err:
        registry.get("nope")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"unknown {kind} 'nope'; known {registry.plural}: ")
    assert all(name in text for name in expected)
    assert isinstance(err.value, ValueError) and err.value.known == registry.names()
    assert str(pickle.loads(pickle.dumps(err.value))) == text  # raised in a worker too


def test_lookups_return_the_registered_parts() -> None:
    from segline.datasets.isles import IslesAdapter
    from segline.datasets.toy_isles import write_hard_toy_archives
    from segline.losses.dice import GeneralizedDice
    from segline.nets.unet3d import UNet3D

    assert get_loss_class("generalised_dice") is GeneralizedDice
    assert GeneralizedDice.name == "gdl"
    assert get_net_class("uNeT3d") is UNet3D
    assert get_adapter("isles") is IslesAdapter
    assert get_toy("isles-hard") is write_hard_toy_archives


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON value."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def test_listing_imports_no_part_and_lookup_only_the_one_asked_for() -> None:
    """What a stage's lineage (.d) records: the parts it used, not the others."""
    seen = _fresh("""
        import json, sys
        from segline.losses import CombinedLoss, loss_names
        from segline.nets import get_net, net_names
        from segline.preprocess.slicing import adapter_names, get_adapter
        from segline.datasets.toys import get_toy, toy_names

        def parts():
            return sorted(m for m in sys.modules if m.rsplit(".", 1)[0] in
                          ("segline.losses", "segline.nets", "segline.datasets"))

        before = parts()
        listed = [loss_names(), net_names(), adapter_names(), toy_names()]
        after_listing = parts()
        CombinedLoss.from_spec("generalized_dice:1", n_classes=2)
        get_net("dimwit", 1, 2)
        get_adapter("msd")
        get_toy("spleen")
        print(json.dumps({"before": before, "listing": after_listing, "used": parts()}))
    """)
    assert seen["listing"] == seen["before"]
    assert sorted(set(seen["used"]) - set(seen["before"])) == [
        "segline.datasets.deterministic",  # the toy's helpers
        "segline.datasets.msd",
        "segline.datasets.toy_msd",
        "segline.datasets.toy_spleen",
        "segline.losses.dice",
        "segline.nets.blocks",  # the nets' building blocks
        "segline.nets.dimwit",
    ]


def test_training_parser_imports_no_loss_or_net() -> None:
    """The trainer's --help lists every net and loss; parsing does not build that list."""
    seen = _fresh("""
        import json, sys
        from segline.train.cli import build_parser
        before = set(sys.modules)
        build_parser().parse_args(["--cases", "c", "--dist", "d", "--out", "o"])
        print(json.dumps(sorted(m for m in set(sys.modules) - before
                                if m.startswith(("segline.losses.", "segline.nets.")))))
    """)
    assert seen == []


# ------------------------------------------------------------------ the mechanism


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``regpkg`` whose two modules register parts of a kind ``thing``."""
    name = "regpkg"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "plain.py").write_text(textwrap.dedent(f"""
        from {name}.kinds import register_thing

        @register_thing("Plain", "simple")
        class Plain:
            pass
    """))
    (root / "computed.py").write_text(textwrap.dedent(f"""
        from {name}.kinds import register_thing

        NAME = "Computed"

        @register_thing(NAME)
        def computed():
            return 1
    """))
    (root / "kinds.py").write_text(textwrap.dedent(f"""
        from segline.registry import Registry
        THINGS = Registry("thing", "things", "{name}", "register_thing",
                          pattern=r"[A-Za-z]+", ignore_case=True)
        register_thing = THINGS.register
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_registry_reads_names_then_imports_one_module(package: str) -> None:
    import importlib

    kinds = importlib.import_module(f"{package}.kinds")
    things = kinds.THINGS
    assert things.aliases() == {"simple": "Plain"}
    assert f"{package}.plain" not in sys.modules
    assert things.canonical("SIMPLE") == "Plain"
    assert things.get("plain").__name__ == "Plain"
    assert f"{package}.plain" in sys.modules and f"{package}.computed" not in sys.modules
    # a name the sources cannot tell: its module is imported to find it
    assert things.get("computed")() == 1
    assert things.names() == ["Computed", "Plain"]
    with pytest.raises(UnknownName, match=r"unknown thing 'x'; known things: Computed, "
                       r"Plain \(aliases: simple->Plain\)"):
        things.get("x")


def test_registry_refuses_bad_and_taken_names(package: str) -> None:
    import importlib

    things = importlib.import_module(f"{package}.kinds").THINGS
    things.get("Plain")
    with pytest.raises(ValueError, match="bad thing name 'no-dash'"):
        things.register("no-dash")
    with pytest.raises(ValueError, match="thing name 'plain' is already registered"):
        things.register("plain")(lambda: None)
    with pytest.raises(TypeError, match="not a class or function"):
        things.register("Other")(3)
    with pytest.raises(TypeError, match="not a SegLoss subclass"):
        LOSSES.register("thing")(int)
