"""Optional libraries, imported where they are first used: the one mechanism prunetune defers an import with.

``lazy("torch")`` is a stand-in that imports torch on its first attribute access, so importing a module
costs nothing until a code path really needs the library (``prunetune strategies`` and ``--help`` load no
torch, the analysis loads no Ray). A library that is not installed ends in :class:`MissingDependency`,
which names the extra that brings it. Modelled on optuna's ``_imports._LazyImport``. Every library is bound
once, in :mod:`prunetune.libs`; modules import their libraries from there.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

from prunetune.errors import PrunetuneError

__all__ = ["MissingDependency", "lazy", "missing", "require"]


# The extra that brings each optional library (pyproject.toml).
EXTRA_OF = {
    **dict.fromkeys(
        (
            "torch",
            "transformers",
            "sentence_transformers",
            "datasets",
            "sklearn",
            "scipy",
            "numpy",
            "huggingface_hub",
        ),
        "train",
    ),
    **dict.fromkeys(("ray", "optuna", "optuna_dashboard", "pyarrow"), "search"),
    **dict.fromkeys(("mlflow", "matplotlib"), "analysis"),
}


class MissingDependency(PrunetuneError, ImportError):
    """An optional library is not installed: names it and the extra to install."""


def missing(err: ModuleNotFoundError) -> MissingDependency | None:
    """The :class:`MissingDependency` for ``err`` when prunetune's extras bring the missing module, else None."""
    name = err.name or ""
    extra = EXTRA_OF.get(name.split(".")[0])
    if extra is None:
        return None
    return MissingDependency(f"needs {name}, which is not installed: pip install 'prunetune[{extra}]'")


def require(name: str) -> types.ModuleType:
    """``importlib.import_module(name)``; a missing optional library raises :class:`MissingDependency`."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        found = missing(err)
        if found is None:
            raise
        raise found from None


class _Lazy(types.ModuleType):
    """A module object that imports ``name`` on first attribute access, then behaves as that module."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attribute: str) -> Any:
        module = require(self.__name__)
        self.__dict__.update(module.__dict__)  # later accesses find the attribute without this hook
        return getattr(module, attribute)


def lazy(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when first used (see the module doc)."""
    return _Lazy(name)
