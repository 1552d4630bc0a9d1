"""One driver per search: a second driver of the same search, from another storage folder on the same tracking
server, is refused before Ray starts. (Two drivers in one folder are kept apart by
:func:`prunetune.search.store.search_lock`.)"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from prunetune.search.spec import SearchSpec
from prunetune.search.store import TrackingError, open_store, paged_runs

from prunetune.records import KIND_SEARCH, TAG_STORAGE, runs_where

__all__ = ["parent_run_marker", "refuse_another_driver", "storage_id"]


def parent_run_marker(spec: SearchSpec) -> Path:
    """The file in the search's folder that names its MLflow run: a resumed driver continues that run."""
    return spec.storage / spec.name / "parent_run_id"


def storage_id(spec: SearchSpec) -> str:
    """Where a driver keeps a search's state: its host and its storage folder (:data:`TAG_STORAGE`)."""
    return f"{socket.gethostname()}:{spec.storage}"  # spec.storage is already absolute


def refuse_another_driver(spec: SearchSpec, resume: bool) -> None:
    """A search of this name running from another storage folder on this tracking server is refused in one line,
    before Ray starts: the two drivers' locks do not meet (:func:`search_lock` guards one folder), and they would
    train the reference twice and mix their trials in one experiment. A running search run from this very
    folder has a dead driver (this one holds the folder's lock): it is no reason to refuse."""
    uri = spec.resolved_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return  # a store not made yet holds no search
    mlflow = open_store(uri, spec.tracking_patience_s)
    experiment = mlflow.get_experiment_by_name(spec.name)
    if experiment is None:
        return
    marker = parent_run_marker(spec)
    own = marker.read_text().strip() if resume and marker.exists() else None
    here = storage_id(spec)
    running = runs_where("RUNNING", kind=KIND_SEARCH, search=spec.name)
    for run in paged_runs(mlflow, [experiment.experiment_id], running):
        theirs = run.data.tags.get(TAG_STORAGE)
        if run.info.run_id == own or theirs in (None, here):
            continue
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
        raise TrackingError(
            f"search {spec.name} is already running on this tracking server from {theirs} (run {run.info.run_id}, "
            f"started {started}): give this one another name (--set name=...), or wait for it; if its driver "
            "died, `--resume` it from that storage_path, which closes its run"
        )
