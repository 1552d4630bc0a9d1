"""The analysis queries against a real local MLflow store: a search still running, missing stores and names."""

from __future__ import annotations

import json

import pytest
from prunetune.analysis import tables
from prunetune.analysis.query import AnalysisError, find_search, open_store, search_runs_frame
from prunetune.search.store import experiment_id

from prunetune.config import TrialConfig


def _trial(mlflow, experiment: str, parent: str, kept: list[int], status: str, score: float | None) -> str:
    """A child run written with the same calls and names the search's recorder uses."""
    from prunetune.search.tracking import log_params_and_metrics

    run = mlflow.create_run(
        experiment,
        tags={"mlflow.parentRunId": parent, "prunetune.kind": "trial", "prunetune.status": status},
    )
    config = TrialConfig().with_overrides({"drop.strategy": "top", "drop.count": 6 - len(kept), "kept_layers": kept})
    metrics = {"layers_kept": len(kept), "layers_dropped": 6 - len(kept)}
    if score is not None:
        metrics |= {"val_score": score, "drop": 0.6 - score, "final_val_score": score}
    log_params_and_metrics(mlflow, run.info.run_id, config.to_flat(), metrics)
    if status == "complete":
        mlflow.set_tag(run.info.run_id, "prunetune.kept_layers", json.dumps(kept))
        mlflow.set_terminated(run.info.run_id)
    return run.info.run_id


def test_a_running_search_is_read_as_it_stands(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "live", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={"prunetune.kind": "search"}).info.run_id  # still RUNNING
    _trial(mlflow, experiment, parent, [0, 1, 2, 3], "complete", 0.595)
    _trial(mlflow, experiment, parent, [0, 1], "running", None)

    search = find_search(open_store(uri), "live")
    assert search.run_id == parent and search.status == "RUNNING"
    frame = search_runs_frame(mlflow, search)
    assert sorted(frame["status"]) == ["complete", "running"]
    assert tables.status_counts(frame) == {"complete": 1, "running": 1}
    # Only finished trials answer: the running one (deeper, no score yet) is listed but not counted.
    assert frame.set_index("status").loc["running", "kept_layers"] == [0, 1]
    answer = tables.max_droppable(frame, [0.01]).iloc[0]
    assert answer["max_layers_dropped"] == 2 and answer["val_score"] == pytest.approx(0.595)


def test_missing_store_and_unknown_names_are_named_and_nothing_is_created(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(AnalysisError, match="no MLflow store at .*--tracking-uri"):
        open_store(f"sqlite:///{missing}")
    assert not missing.exists()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).create_experiment("empty")
    with pytest.raises(AnalysisError, match="experiment 'empty' holds no prunetune search yet"):
        find_search(open_store(uri), "empty")
    with pytest.raises(AnalysisError, match="no search 'typo'.*empty"):
        find_search(open_store(uri), "typo")


def test_every_search_of_an_experiment_lists_trials_references_and_scratch_runs(tmp_path) -> None:
    from mlflow.tracking import MlflowClient
    from prunetune.analysis.query import experiment_frame

    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = experiment_id(mlflow, "many", (tmp_path / "artifacts").as_uri())
    runs = {}
    for kind in ("search", "trial", "reference", "scratch", "recheck"):
        runs[kind] = mlflow.create_run(experiment, tags={"prunetune.kind": kind}).info.run_id
        mlflow.set_terminated(runs[kind])
    frame = experiment_frame(mlflow, "many")
    assert sorted(frame["kind"]) == ["reference", "scratch", "trial"]
    assert set(frame["run_id"]) == {runs["trial"], runs["reference"], runs["scratch"]}
    with pytest.raises(AnalysisError, match="no experiment 'nothing'"):
        experiment_frame(mlflow, "nothing")


def test_a_folder_names_the_search_its_store_holds(tmp_path) -> None:
    """`prunetune trials DIR`: DIR a storage_path holding mlflow.db (its one search), or a search's own folder in
    one; a folder with no store, or a store of several searches, is refused naming what to give instead."""
    from mlflow.tracking import MlflowClient
    from prunetune.analysis.query import search_and_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "headlines", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={"prunetune.kind": "search"}).info.run_id
    _, search = search_and_store(str(tmp_path), None)
    assert search.run_id == parent
    (tmp_path / "headlines").mkdir()
    _, search = search_and_store(str(tmp_path / "headlines"), None)
    assert search.run_id == parent
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    with pytest.raises(AnalysisError, match="deeper is a folder without mlflow.db: give a search's storage_path"):
        search_and_store(str(tmp_path / "elsewhere" / "deeper"), None)
    experiment_id(mlflow, "second", (tmp_path / "artifacts").as_uri())
    with pytest.raises(AnalysisError, match="holds 2 searches \\(headlines, second\\): name one"):
        search_and_store(str(tmp_path), None)
