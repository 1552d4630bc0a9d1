"""What every job of one search shares, built once by the driver and handed on whole: the spec, the MLflow
client and where the search records (experiment, the search's run), the work computed once (the prepared data,
the teacher's outputs) and where progress lines go. The reference sweep, the scratch baselines, the teacher,
max-drop's re-checks and the answer's model all take one :class:`SearchContext` instead of seven arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from prunetune.search.shared import SharedWork
from prunetune.search.spec import SearchSpec
from prunetune.search.store import TrackingClient

__all__ = ["Say", "SearchContext"]


Say = Callable[[str], None]  # where a command's progress lines go (print, a list's append in tests)


@dataclass(frozen=True)
class SearchContext:
    spec: SearchSpec  # as it runs (resources resolved)
    mlflow: TrackingClient  # the driver's client: every call rides out an outage (search.store.RetryingClient)
    experiment: str  # the search's MLflow experiment id
    parent: str  # the search's own MLflow run: every job's run is its child
    say: Say
    shared: SharedWork | None = None  # None: each job prepares its own data

    def sharing(self, shared: SharedWork) -> SearchContext:
        """The same search, its jobs reading ``shared`` (the teacher's outputs added, say)."""
        return dataclasses.replace(self, shared=shared)
