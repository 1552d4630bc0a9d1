"""prunetune reaches into no library's non-public state: no attribute with a leading underscore is read off an
object that is not prunetune's own (``self``, ``cls``, ``super()``), in any module of the package.

A private attribute of Ray, Optuna or MLflow may change in any release, so a use of one would need a version
cap and a check; the package uses none (docs/versions.md). ``os._exit`` is the one exception: it is the
documented way to end a process without running clean-up twice (prunetune/stops.py).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = [
    path for folder in ("prunetune", "search", "trainables", "analysis") for path in (ROOT / folder).glob("*.py")
]
ALLOWED = {("os", "_exit")}


def _private_reads(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        if isinstance(owner, ast.Name) and (owner.id, node.attr) in ALLOWED:
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", PACKAGE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_reads_a_private_attribute_of_another_object(path: Path) -> None:
    assert _private_reads(path.read_text()) == []


def test_the_check_finds_a_private_read() -> None:
    assert _private_reads("client._cache\nself._mine\nsuper()._help()\nos._exit(1)\n") == ["line 1: client._cache"]


MODULES = sorted(
    f"prunetune.{'' if path.parent.name == 'prunetune' else path.parent.name + '.'}{path.stem}"
    for path in PACKAGE
    if path.stem != "__init__"
)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_says_its_public_names_and_each_exists(name: str) -> None:
    import importlib

    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert sorted(set(exported)) == sorted(exported), f"{name}.__all__ names one twice"
    assert [n for n in exported if not hasattr(module, n)] == [], f"{name}.__all__ names what it lacks"
