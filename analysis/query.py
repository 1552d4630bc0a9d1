"""The runs of a search, read from MLflow into one typed pandas DataFrame.

A *search* is an MLflow parent run (``prunetune.kind = search``) in the experiment named after the
spec. Its trials and scratch baselines are its child runs; its reference is the tuned reference's best
configuration, one run per decision seed, possibly runs of an earlier search (reused), found through the
parent's ``prunetune.reference_run_ids`` tag (``prunetune.reference_run_id`` for searches before it).
Queries are paginated (``search_runs`` pages of up to 1000 runs, one round trip each): no per-run calls, so a search of
thousands of trials loads in seconds, and one still running loads what has been recorded so far.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunetune.search.spec import load_spec
from prunetune.search.store import TrackingClient, TrackingError, check_tracking_uri, paged_runs  # noqa: F401  (paged_runs: part of this module's API)
from prunetune.search.store import client as checked_client

from prunetune.errors import PrunetuneError
from prunetune.libs import mlflow_exceptions, mlflow_tracking, pd
from prunetune.records import (
    FAILED,
    KIND_REFERENCE,
    KIND_SCRATCH,
    KIND_SEARCH,
    KIND_TRIAL,
    PLACEMENT_TAGS,
    RUNNING,
    STORE_FILE,
    TAG_BEST,
    TAG_KIND,
    TAG_REFERENCE_RUN,
    TAG_REFERENCE_RUNS,
    TAG_RETRIES,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    final_value,
    kept_layers,
    runs_where,
)

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "AnalysisError", "COLUMNS", "Search", "client", "experiment_frame", "find_search", "open_store", "read_artifact",
    "runs_frame", "search_and_store", "search_runs_frame"
]  # fmt: skip


class AnalysisError(PrunetuneError, LookupError):
    """A search, experiment or column that does not exist; the message says what does."""


@dataclass(frozen=True)
class Search:
    """One search: its parent run and what the parent records about it."""

    experiment_id: str
    experiment_name: str
    run_id: str
    run_name: str
    status: str  # MLflow's: RUNNING while the search runs
    started: pd.Timestamp
    reference_run_ids: list[str]  # the best reference configuration's runs, one per decision seed
    reference_score: float | None  # their mean: what every drop is measured against
    best: dict[str, Any] | None
    artifact_uri: str


# Columns in display order, with their pandas dtype: the typed frame every table and plot reads.
COLUMNS: dict[str, str] = {
    "run_id": "string",
    "kind": "string",  # trial | reference | scratch
    "status": "string",  # complete | early-stopped | failed | interrupted | running
    "strategy": "string",
    "layers_kept": "Int64",
    "layers_dropped": "Int64",
    "kept_layers": "object",  # list[int]
    "val_score": "float64",
    "test_score": "float64",
    "drop": "float64",
    "feasible": "boolean",
    "learning_rate": "float64",
    "epochs": "Int64",
    "distill_alpha": "float64",  # 0: not distilled (trainables/distill.py); empty for runs before distillation
    "distill_temperature": "float64",
    "epochs_run": "Int64",
    "seed": "Int64",
    "parameters": "Int64",
    "latency_ms": "float64",  # inference, batch of 32 validation rows, as the trial measured it
    "val_accuracy": "float64",
    "val_macro_f1": "float64",
    "val_spearman": "float64",
    "budget_excess": "float64",
    "model": "string",
    "task": "string",
    "data": "string",
    "variant": "string",
    "drop_count": "Int64",
    "window_start_fraction": "float64",
    "search": "string",
    "ray_trial_id": "string",
    "node_id": "string",
    "torch_threads": "Int64",
    "retries": "Int64",  # times the trial was retried after its process died
    "run_name": "string",
    "start_time": "datetime64[ns, UTC]",
    "seconds": "float64",
}


def client(tracking_uri: str) -> TrackingClient:
    """An MlflowClient on ``tracking_uri``, unchecked (:func:`open_store` checks first)."""
    found: TrackingClient = mlflow_tracking.MlflowClient(tracking_uri=tracking_uri)
    return found


def find_search(mlflow: TrackingClient, search: str) -> Search:
    """The search named by an experiment (spec) name — its latest parent run — or by a parent run id."""
    experiment = mlflow.get_experiment_by_name(search)
    if experiment is not None:
        runs = list(
            mlflow.search_runs(
                [experiment.experiment_id],
                filter_string=runs_where(kind=KIND_SEARCH),
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
        )
        if not runs:
            raise AnalysisError(f"experiment {search!r} holds no prunetune search yet; run `prunetune search` first")
        return _search_of(mlflow, runs[0], experiment.name)
    run = _get_run(mlflow, search)
    if run is None or run.data.tags.get(TAG_KIND) != "search":
        names = sorted(e.name for e in mlflow.search_experiments() if e.name != "Default")
        known = ", ".join(names) if names else "none"
        raise AnalysisError(
            f"no search {search!r} in {mlflow.tracking_uri}: name an experiment (a spec's name: {known}) "
            "or a search's parent run id; pass --tracking-uri if the store lives elsewhere"
        )
    return _search_of(mlflow, run, mlflow.get_experiment(run.info.experiment_id).name)


def _get_run(mlflow: TrackingClient, run_id: str) -> Run | None:
    try:
        return mlflow.get_run(run_id)
    except mlflow_exceptions.MlflowException:
        return None


def _search_of(mlflow: TrackingClient, run: Run, experiment_name: str) -> Search:
    tags = run.data.tags
    best = tags.get(TAG_BEST)
    return Search(
        experiment_id=run.info.experiment_id,
        experiment_name=experiment_name,
        run_id=run.info.run_id,
        run_name=run.info.run_name,
        status=run.info.status,
        started=pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
        reference_run_ids=_reference_runs(tags),
        reference_score=run.data.metrics.get("reference_score"),
        best=json.loads(best) if best else None,
        artifact_uri=run.info.artifact_uri,
    )


def search_runs_frame(mlflow: TrackingClient, search: Search) -> pd.DataFrame:
    """The search's trials and scratch baselines, and its reference runs, as one typed DataFrame.

    Args:
        mlflow: an MLflow client on the search's store (:func:`open_store`).
        search: the search, as :func:`find_search` or :func:`search_and_store` names it.

    Returns:
        One row per run: ``kind`` (trial, reference, scratch), ``status``, ``strategy``, ``kept_layers``,
        ``layers_dropped``, ``val_score``, ``drop`` (in the budget's unit), ``learning_rate``, ``epochs``, …,
        running trials included (their scores empty).

    Example:
        >>> mlflow, search = search_and_store("examples/search-default.yaml", None)  # doctest: +SKIP
        >>> frame = search_runs_frame(mlflow, search)                                # doctest: +SKIP
        >>> frame[frame["kind"] == "trial"].sort_values("val_score").tail(3)         # doctest: +SKIP
    """
    runs = list(paged_runs(mlflow, [search.experiment_id], runs_where(parent=search.run_id)))
    for run_id in search.reference_run_ids:
        reference = _get_run(mlflow, run_id)
        if reference is not None:
            runs.append(reference)
    return runs_frame(runs)


def _reference_runs(tags: dict[str, str]) -> list[str]:
    if TAG_REFERENCE_RUNS in tags:
        return list(json.loads(tags[TAG_REFERENCE_RUNS]))
    return [tags[TAG_REFERENCE_RUN]] if TAG_REFERENCE_RUN in tags else []


def experiment_frame(mlflow: TrackingClient, experiment_name: str) -> pd.DataFrame:
    """Every trial, reference and scratch run of every search in the experiment (a search run again under one
    name adds its runs), as one typed DataFrame.

    Args:
        mlflow: an MLflow client on the store (:func:`open_store`).
        experiment_name: the experiment, which is the spec's ``name``.

    Returns:
        The columns of :func:`search_runs_frame`, one row per run of every search in the experiment.

    Raises:
        AnalysisError: no experiment of that name in the store.

    Example:
        >>> frame = experiment_frame(open_store(None), "minilm-indicnews-en")  # doctest: +SKIP
        >>> frame.groupby("kind").size()                                       # doctest: +SKIP
    """
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise AnalysisError(f"no experiment {experiment_name!r} in {mlflow.tracking_uri}")
    # MLflow filters a tag by one value at a time (no IN for tags): the other kinds are left out here.
    kinds = (KIND_TRIAL, KIND_REFERENCE, KIND_SCRATCH)
    runs = paged_runs(mlflow, [experiment.experiment_id], f"tags.`{TAG_KIND}` != 'search'")
    return runs_frame([run for run in runs if run.data.tags.get(TAG_KIND) in kinds])


def runs_frame(runs: list[Any]) -> pd.DataFrame:
    """MLflow runs -> the typed frame of :data:`COLUMNS` (params back to their types, kept layers as lists)."""
    frame = pd.DataFrame([_row(run) for run in runs], columns=list(COLUMNS))
    return frame.astype(COLUMNS)


def _number(params: dict[str, str], key: str) -> float | None:
    value = params.get(key)
    if value in (None, "", "null", "None"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _row(run: Any) -> dict[str, Any]:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    kind = tags.get(TAG_KIND, KIND_TRIAL)
    status = tags.get(TAG_STATUS) or (RUNNING if run.info.status == "RUNNING" else FAILED)
    kept = _kept(tags, params)
    dropped = metrics.get("layers_dropped")
    kept_count = metrics.get("layers_kept", len(kept) if kept is not None else None)
    if dropped is None and kept_count is not None and "layers_original" in metrics:
        dropped = metrics["layers_original"] - kept_count
    strategy = params.get("drop.strategy")
    if kind == KIND_REFERENCE:
        strategy, dropped = "none", 0
    elif kind == KIND_SCRATCH:
        strategy = "scratch"
    score = final_value(metrics, "val_score")
    feasible = final_value(metrics, "feasible")
    end = run.info.end_time
    return {
        "run_id": run.info.run_id,
        "kind": kind,
        "status": status,
        "strategy": strategy,
        "layers_kept": kept_count,
        "layers_dropped": dropped,
        "kept_layers": kept,
        "val_score": score,
        "test_score": final_value(metrics, "test_score"),
        "drop": final_value(metrics, "drop") if kind != KIND_REFERENCE else 0.0,
        "feasible": None if feasible is None else bool(feasible),
        "learning_rate": _number(params, "training.learning_rate"),
        "epochs": _number(params, "training.epochs"),
        "distill_alpha": _number(params, "distill.alpha"),
        "distill_temperature": _number(params, "distill.temperature"),
        "epochs_run": final_value(metrics, "epoch"),
        "seed": _number(params, "training.seed"),
        "parameters": metrics.get("parameters"),
        "latency_ms": metrics.get("latency_ms"),
        "val_accuracy": metrics.get("val_accuracy"),
        "val_macro_f1": metrics.get("val_macro_f1"),
        "val_spearman": metrics.get("val_spearman"),
        "budget_excess": final_value(metrics, "budget_excess"),
        "model": params.get("model"),
        "task": params.get("task"),
        "data": params.get("data.source"),
        "variant": params.get("variant"),
        "drop_count": _number(params, "drop.count"),
        "window_start_fraction": _number(params, "drop.start_fraction"),
        "search": tags.get(TAG_SEARCH),
        "ray_trial_id": tags.get(TAG_TRIAL),
        "node_id": tags.get(PLACEMENT_TAGS["node_id"]),
        "torch_threads": _number(tags, PLACEMENT_TAGS["torch_threads"]),
        "retries": int(tags.get(TAG_RETRIES, 0)) if kind == KIND_TRIAL else None,
        "run_name": run.info.run_name,
        "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
        "seconds": (end - run.info.start_time) / 1000 if end else None,
    }


def _kept(tags: dict[str, str], params: dict[str, str]) -> list[int] | None:
    recorded = kept_layers(tags)
    if recorded is not None:
        return recorded
    raw = params.get("kept_layers")  # a trial that never finished has its planned kept layers as a param
    return [int(layer) for layer in json.loads(raw)] if raw and raw not in ("null", "None") else None


def read_artifact(mlflow: TrackingClient, search: Search, name: str) -> str | None:
    """A text artifact of the search's parent run (the spec, the layer scores), or None if it has none."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a report prints one line, not bars
    with tempfile.TemporaryDirectory() as work:
        try:
            path = mlflow.download_artifacts(search.run_id, name, work)
        except (mlflow_exceptions.MlflowException, OSError):
            return None
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return handle.read()


def open_store(tracking_uri: str | None) -> TrackingClient:
    """An MlflowClient on ``tracking_uri`` ($MLFLOW_TRACKING_URI, else the default search's local store),
    refusing a local store that does not exist rather than silently creating an empty one."""
    uri = (
        tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{(Path('prunetune-runs') / STORE_FILE).resolve()}"
    )
    try:
        check_tracking_uri(uri)  # an ftp:// address, a text file named as the database: one line
    except TrackingError as err:
        raise AnalysisError(str(err)) from None
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.exists():
            raise AnalysisError(
                f"no MLflow store at {path}: run this where the search ran (its storage_path holds mlflow.db), "
                "or pass --tracking-uri (e.g. sqlite:///path/to/mlflow.db or http://host:5000)"
            )
    elif uri.startswith(("http://", "https://")):
        try:
            return checked_client(uri)
        except TrackingError as err:
            raise AnalysisError(str(err)) from None
    return client(uri)


def search_and_store(search: str, tracking_uri: str | None) -> tuple[TrackingClient, Search]:
    """Resolve what a person names to a store and a search, as the ``trials`` and ``report`` commands do.

    Args:
        search: a spec file (its name and store), a folder (a storage_path holding mlflow.db: its one search; or
            a search's own folder inside one), an experiment name, or a search's parent run id.
        tracking_uri: the MLflow store; None: the spec's, the folder's, ``$MLFLOW_TRACKING_URI`` or
            ``./prunetune-runs/mlflow.db``.

    Returns:
        (the MLflow client, the :class:`Search`: its latest parent run when the name is an experiment's).

    Raises:
        AnalysisError: no such search, a store that does not exist, or a folder holding several searches.

    Example:
        >>> mlflow, search = search_and_store("prunetune-runs", None)  # doctest: +SKIP
        >>> search.best["layers_dropped"]                               # doctest: +SKIP
    """
    folder = Path(search).expanduser()
    if folder.is_dir() and tracking_uri is None:
        return _search_in_folder(folder)
    if search.endswith((".yaml", ".yml")) and Path(search).is_file():
        spec = load_spec(search)
        mlflow = open_store(tracking_uri or spec.resolved_tracking_uri())
        return mlflow, find_search(mlflow, spec.name)
    mlflow = open_store(tracking_uri)
    return mlflow, find_search(mlflow, search)


def _search_in_folder(folder: Path) -> tuple[TrackingClient, Search]:
    """The search a folder holds: a storage_path's store and its only search, or a search's own folder (its name)
    in the storage_path above it."""
    if (folder / STORE_FILE).is_file():
        mlflow = open_store(f"sqlite:///{(folder / STORE_FILE).resolve()}")
        names = sorted(e.name for e in mlflow.search_experiments() if e.name != "Default")
        if len(names) != 1:
            raise AnalysisError(
                f"{folder} holds {len(names)} searches ({', '.join(names) or 'none'}): name one, "
                f"e.g. prunetune trials {names[0] if names else 'NAME'} --tracking-uri sqlite:///{folder / STORE_FILE}"
            )
        return mlflow, find_search(mlflow, names[0])
    if (folder.parent / STORE_FILE).is_file():
        mlflow = open_store(f"sqlite:///{(folder.parent / STORE_FILE).resolve()}")
        return mlflow, find_search(mlflow, folder.resolve().name)
    raise AnalysisError(
        f"{folder} is a folder without {STORE_FILE}: give a search's storage_path (it holds {STORE_FILE}), "
        "a spec file, a search's name or its parent run id"
    )
