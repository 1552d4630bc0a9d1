"""A whole search through a 60 s tracking outage: a real `mlflow server` killed once the first trial is
recorded and restarted a minute later on the same port and store, while a real search runs on a real Ray
cluster. The search finishes, every trial's every epoch is in MLflow once, and no run is left RUNNING."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import free_port, stop_server, tiny_spec
from tests.helpers import start_mlflow_server as start_server

OUTAGE_S = 60


@pytest.mark.slow  # a minute of outage by design
def test_a_search_through_a_minute_long_outage_loses_no_metric_and_leaves_nothing_running(
    ray_cluster, tiny_model, data_env, tmp_path, monkeypatch
) -> None:
    import ray
    from prunetune.search.runner import run_search

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the outage is ridden out by prunetune alone
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = [start_server(tmp_path, port)]
    spec = tiny_spec(tmp_path, tiny_model, uri, ray_cluster, num_trials=6, tracking_patience_s=300)
    mlflow = MlflowClient(uri)
    outage: dict[str, float] = {}

    def cut_once_a_trial_is_recorded() -> None:
        while "down" not in outage:
            try:
                found = mlflow.search_runs(
                    [e.experiment_id for e in mlflow.search_experiments()],
                    filter_string="tags.`prunetune.kind` = 'trial'",
                )
            except Exception:
                found = []
            if found:
                stop_server(server[0])
                outage["down"] = time.monotonic()
                time.sleep(OUTAGE_S)
                server[0] = start_server(tmp_path, port)
                outage["up"] = time.monotonic()
            time.sleep(0.5)

    cutter = threading.Thread(target=cut_once_a_trial_is_recorded, daemon=True)
    cutter.start()
    lines: list[str] = []
    try:
        result = run_search(spec, say=lines.append)
        cutter.join(timeout=OUTAGE_S + 120)
    finally:
        ray.shutdown()
    try:
        assert outage["up"] - outage["down"] >= OUTAGE_S
        experiment = mlflow.get_experiment_by_name(spec.name).experiment_id
        everything = mlflow.search_runs([experiment])
        assert [r.info.run_id for r in everything if r.info.status == "RUNNING"] == []
        trials = mlflow.search_runs(
            [experiment],
            filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}' and tags.`prunetune.kind` = 'trial'",
        )
        assert len(trials) == result.trials == spec.num_trials
        for run in trials:
            epochs = int(run.data.metrics["final_epoch"])
            steps = sorted(m.step for m in mlflow.get_metric_history(run.info.run_id, "val_score"))
            assert steps == list(range(1, epochs + 1)), (run.info.run_name, steps)  # each epoch once, none lost
    finally:
        stop_server(server[0])


@pytest.mark.slow  # 1.5-2 minutes on 2 cores; its parts are tested apart (tests/integration/test_tracking_outage.py)
def test_a_server_gone_for_good_stops_the_search_in_one_line_and_resume_closes_everything(
    ray_cluster, tiny_model, data_env, tmp_path, monkeypatch
) -> None:
    import optuna
    import ray
    from prunetune.search.runner import run_search
    from prunetune.search.store import TrackingUnreachable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    spec = tiny_spec(tmp_path, tiny_model, uri, ray_cluster, num_trials=4, tracking_patience_s=5)
    mlflow = MlflowClient(uri)

    def cut_once_a_trial_is_recorded() -> None:
        while True:
            try:
                if mlflow.search_runs(
                    [e.experiment_id for e in mlflow.search_experiments()],
                    filter_string="tags.`prunetune.kind` = 'trial'",
                ):
                    stop_server(server)
                    return
            except Exception:
                pass
            time.sleep(0.5)

    cutter = threading.Thread(target=cut_once_a_trial_is_recorded, daemon=True)
    cutter.start()
    try:
        with pytest.raises(TrackingUnreachable, match="did not answer for 5 s.*--resume"):
            run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()
    cutter.join()

    server = start_server(tmp_path, port)
    try:
        try:
            result = run_search(spec, resume=True, say=lambda line: None)
        finally:
            ray.shutdown()
        experiment = mlflow.get_experiment_by_name(spec.name).experiment_id
        assert [r.info.run_name for r in mlflow.search_runs([experiment]) if r.info.status == "RUNNING"] == []
        trials = mlflow.search_runs(
            [experiment],
            filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}' and tags.`prunetune.kind` = 'trial'",
        )
        assert len([r for r in trials if r.data.tags["prunetune.status"] != "interrupted"]) == spec.num_trials
        storage = f"sqlite:///{spec.storage / 'optuna.db'}"
        for name in optuna.study.get_all_study_names(storage):
            study = optuna.load_study(study_name=name, storage=storage)
            assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []
    finally:
        stop_server(server)
