"""What a search returns: its best finished trial within the budget on its own seed (:class:`BestTrial`), and the
search's result (:class:`SearchResult`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prunetune.search.answer_model import SavedModel
from prunetune.search.decide import TunedReference
from prunetune.search.results import TuneResults, each
from prunetune.search.shared import SharedWork
from prunetune.search.spec import SearchSpec

from prunetune.config import TrialConfig
from prunetune.records import COMPLETE, counted, preference, trial_status

__all__ = ["BestTrial", "SearchResult", "best_feasible"]


@dataclass(frozen=True)
class BestTrial:
    """The best finished trial within the budget (:func:`records.preference`: the most layers dropped, then the
    score). Its fields are what the search's run carries as its ``prunetune.best`` tag (:meth:`to_dict`)."""

    strategy: str
    kept_layers: list[int]
    layers_dropped: int
    layers_kept: int
    val_score: float
    drop: float
    learning_rate: float
    epochs: int
    trial: TrialConfig = dataclasses.field(compare=False, repr=False)  # the config it ran: trained again for the model
    trial_id: str | None = dataclasses.field(default=None, compare=False)  # Tune's id, which tags its MLflow run

    def to_dict(self) -> dict[str, Any]:
        """The summary the search's run carries (every field but the config and Tune's id)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("trial", "trial_id")}

    def describe(self) -> str:
        """The answer in one line, as the search's run shows it."""
        return (
            f"{self.layers_dropped} layers dropped: {self.strategy} kept {self.kept_layers}, "
            f"lr {self.learning_rate:.1e}, {counted(self.epochs, 'epoch')}, val_score {self.val_score:.4f}"
        )


def best_feasible(results: TuneResults) -> BestTrial | None:
    """The best finished trial within the budget among Tune's results; None when no trial was.

    A trial that failed, went over the budget or was stopped early (not a finished model) is passed over.
    """
    best: BestTrial | None = None
    for result in each(results):
        metrics = result.metrics or {}
        if not metrics.get("feasible") or result.error or result.config is None:
            continue
        trial = result.config["trial"]
        if trial_status(trial["training"]["epochs"], int(metrics.get("epoch", 0))) != COMPLETE:
            continue
        found = BestTrial(
            strategy=trial["drop"]["strategy"],
            kept_layers=list(trial["kept_layers"]),
            layers_dropped=int(metrics["layers_dropped"]),
            layers_kept=len(trial["kept_layers"]),
            val_score=float(metrics["val_score"]),
            drop=float(metrics["drop"]),
            learning_rate=float(trial["training"]["learning_rate"]),
            epochs=int(trial["training"]["epochs"]),
            trial=TrialConfig.from_dict(trial),
            trial_id=metrics.get("trial_id"),
        )
        if best is None or preference(found.layers_dropped, found.val_score) > preference(
            best.layers_dropped, best.val_score
        ):
            best = found
    return best


@dataclass(frozen=True)
class SearchResult:
    spec: SearchSpec  # as it ran: gpus_per_trial "auto" and an unset max_concurrent resolved to numbers
    parent_run_id: str
    reference: TunedReference  # the tuned reference the budget was measured against
    trials: int
    best: BestTrial | None  # the best feasible trial
    experiment_path: str
    # What the search computed once (the tokenized data, the teacher's outputs), in Ray's object store: max-drop's
    # re-checks read it too, instead of preparing it once per job.
    shared: SharedWork | None = None
    model: SavedModel | None = None  # the best trial's model, trained once more with its weights kept

    @property
    def reference_score(self) -> float:
        return self.reference.score
