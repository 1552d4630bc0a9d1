"""What MLflow shows of a search: its own run (opened with the spec's values as params, closed with its answer as
metrics and tags), the answer tag on the trial that answers, and the runs table's columns the search's link opens."""

from __future__ import annotations

import json
from pathlib import Path

from prunetune.search.context import SearchContext
from prunetune.search.jobs import numbers
from prunetune.search.outcome import BestTrial
from prunetune.search.single_driver import parent_run_marker, storage_id
from prunetune.search.spec import SearchSpec
from prunetune.search.store import TrackingClient, shared_view_state
from prunetune.search.tracking import log_params_and_metrics

from prunetune.config import flat_params
from prunetune.records import (
    COMPLETE,
    KIND_SEARCH,
    RUNNING,
    SPEC_ARTIFACT,
    TAG_ANSWER,
    TAG_BEST,
    TAG_KIND,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_STORAGE,
    runs_where,
)

__all__ = [
    "SEARCH_PARAMS", "VIEW_METRICS", "VIEW_ORDER", "VIEW_PARAMS", "VIEW_TAGS", "close_search_run", "log_text",
    "mark_answer", "open_search_run", "search_view"
]  # fmt: skip


# The columns the link to MLflow opens its runs table on, the search's trials unfolded: what a user decides on.
VIEW_PARAMS = ("drop.strategy", "kept_layers", "training.learning_rate", "training.epochs")
VIEW_METRICS = ("layers_dropped", "val_score", "drop")  # a trial run logs them per epoch
VIEW_TAGS = (TAG_STATUS, TAG_ANSWER)
# The view's sort: the deepest drops first, which lists the trials flat, not folded under the search's run.
VIEW_ORDER = ("metrics.`layers_dropped`", False)
# The spec's values a user filters searches by, as the search run's params; the whole spec is its artifact.
SEARCH_PARAMS = (
    "trial.model", "trial.task", "trial.data.source", "budget.tolerance", "budget.relative", "num_trials", "seeds",
    "space.strategies", "objective",
)  # fmt: skip


def search_view() -> tuple[str, str]:
    """(experiment tag key, value) of the MLflow view the search's link opens: every run flat, the deepest drops
    first, with the columns a user decides on (:data:`VIEW_PARAMS`, :data:`VIEW_METRICS`, :data:`VIEW_TAGS`)."""
    return shared_view_state(list(VIEW_METRICS), list(VIEW_TAGS), params=VIEW_PARAMS, order_by=VIEW_ORDER)


def open_search_run(spec: SearchSpec, mlflow: TrackingClient, experiment: str, resume: bool) -> str:
    """The search's own run: the one the marker names when resuming (opened again if a stop closed it), else a
    new one with the spec as its artifact and :data:`SEARCH_PARAMS` as its params. Returns its id."""
    marker = parent_run_marker(spec)
    if resume and marker.exists():
        parent = marker.read_text().strip()
        if mlflow.get_run(parent).info.status != "RUNNING":  # closed as interrupted by a stop: open again
            mlflow.update_run(parent, status="RUNNING")
            mlflow.set_tag(parent, TAG_STATUS, RUNNING)
        return parent
    tags = {TAG_KIND: KIND_SEARCH, TAG_SEARCH: spec.name, TAG_STORAGE: storage_id(spec)}
    run = mlflow.create_run(experiment, run_name=spec.name, tags=tags)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(run.info.run_id)
    log_text(mlflow, run.info.run_id, spec.storage / spec.name / SPEC_ARTIFACT, json.dumps(spec.to_dict(), indent=2))
    # The spec's values a user filters on as params too ("spec." keeps them apart from the tuned reference's
    # own); the rest stay in the spec artifact, where a base trial value does not read as a result.
    every = flat_params(spec.to_dict(), "spec.")
    log_params_and_metrics(mlflow, run.info.run_id, {f"spec.{k}": every[f"spec.{k}"] for k in SEARCH_PARAMS}, {})
    return str(run.info.run_id)


def close_search_run(mlflow: TrackingClient, run_id: str, best: BestTrial | None, summary: dict[str, float]) -> None:
    """The search's run: its summary metrics, the best result as a tag, FINISHED. The best result's
    :data:`VIEW_METRICS` (and layers kept) also go under their own names, and the answer in one line as
    :data:`TAG_ANSWER`, so the search's row in MLflow's runs table reads as its answer."""
    metrics: dict[str, object] = dict(summary)
    if best is not None:
        fields = best.to_dict()
        metrics |= {f"best_{k}": v for k, v in fields.items() if isinstance(v, (int, float))}
        metrics |= {k: fields[k] for k in (*VIEW_METRICS, "layers_kept")}
    log_params_and_metrics(mlflow, run_id, {}, numbers(metrics))
    if best is not None:
        mlflow.set_tag(run_id, TAG_BEST, json.dumps(best.to_dict()))
        mlflow.set_tag(run_id, TAG_ANSWER, best.describe())
    mlflow.set_tag(run_id, TAG_STATUS, COMPLETE)  # over an "interrupted" a stop left
    mlflow.set_terminated(run_id, "FINISHED")


def mark_answer(ctx: SearchContext, trial_id: str, answers: str) -> None:
    """Tag the run of the trial ``trial_id`` with what it answers (:data:`TAG_ANSWER`), for the runs table."""
    for run in ctx.mlflow.search_runs([ctx.experiment], runs_where(parent=ctx.parent, trial=trial_id), max_results=1):
        ctx.mlflow.set_tag(run.info.run_id, TAG_ANSWER, answers)


def log_text(mlflow: TrackingClient, run_id: str, path: Path, text: str) -> None:
    """``text`` written to ``path`` and logged as an artifact of the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mlflow.log_artifact(run_id, str(path))
