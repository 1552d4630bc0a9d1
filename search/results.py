"""What the search reads of Ray Tune's results, typed without importing Ray (``ray.tune.Result``, ``ResultGrid``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["TuneResults", "each"]


class TrialOutcome(Protocol):
    """What the search reads of one of Tune's results (``ray.tune.Result``)."""

    @property
    def metrics(self) -> dict[str, Any] | None: ...

    @property
    def config(self) -> dict[str, Any] | None: ...

    @property
    def error(self) -> Exception | None: ...


class TuneResults(Protocol):
    """Tune's results of a search (``ray.tune.ResultGrid``: indexed, not iterable by its type)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> TrialOutcome: ...


def each(results: TuneResults) -> Iterator[TrialOutcome]:
    """Every one of Tune's results, in order."""
    return (results[i] for i in range(len(results)))
