"""One record schema: every writer (the trial recorder, the driver's own jobs) closes a finished run with the
same final metrics and kept-layers tag, and the reader gets the same row back from either."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from prunetune.analysis.query import runs_frame
from prunetune.search.context import SearchContext
from prunetune.search.jobs import finish_job_run, open_job_run
from prunetune.search.spec import load_spec
from prunetune.search.store import experiment_id
from prunetune.search.tracking import TrialRecorder

from prunetune import records
from prunetune.records import FINAL, KIND_RECHECK, KIND_TRIAL, PARENT, TAG_KIND, TAG_TRIAL

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


def test_closing_metrics_and_final_value_are_one_pair() -> None:
    result = {"val_score": 0.7, "drop": 0.01, "feasible": True, "epoch": 2, "strategy": "top", "seconds": 3.0}
    closing = records.closing_metrics(result)
    assert closing == {"final_val_score": 0.7, "final_drop": 0.01, "final_feasible": 1.0, "final_epoch": 2.0}
    assert all(records.final_value(closing, name) == float(result[name]) for name in ("val_score", "drop", "epoch"))
    assert records.final_value({"val_score": 0.6}, "val_score") == 0.6  # a run recorded before one schema
    assert records.final_value({}, "test_score") is None
    assert records.kept_layers({records.TAG_KEPT: "[0, 5]"}) == [0, 5] and records.kept_layers({}) is None


def test_every_writer_closes_a_run_the_same_way_and_reads_back_the_same(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "schema", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={TAG_KIND: "search"}).info.run_id
    spec = load_spec(None, {"trial.kept_layers": "[0, 5]", "trial.training.epochs": 2})
    history = [{"epoch": 1, "val_score": 0.6}, {"epoch": 2, "val_score": 0.71, "test_score": 0.69}]
    result = {"val_score": 0.71, "test_score": 0.69, "epoch": 2, "kept_layers": [0, 5], "layers_dropped": 4}

    job_run = open_job_run(
        SearchContext(spec, mlflow, experiment, parent, print), spec.trial, KIND_RECHECK, {PARENT: parent}
    )
    finish_job_run(mlflow, job_run, spec.trial, lambda: result | {"history": history})

    recorder = TrialRecorder(uri, experiment, parent, spec.name, tmp_path / "spool.jsonl")
    trial_run = mlflow.create_run(experiment, tags={PARENT: parent, TAG_KIND: KIND_TRIAL, TAG_TRIAL: "t1"})
    recorder.run_ids["t1"] = trial_run.info.run_id
    recorder._finish("t1", {"trial": spec.trial.to_dict()}, result, error=False)
    recorder.flush()

    runs = [mlflow.get_run(run_id) for run_id in (job_run, trial_run.info.run_id)]
    for run in runs:
        closing = {k: v for k, v in run.data.metrics.items() if k.startswith(FINAL)}
        assert closing == records.closing_metrics(result)
        assert records.kept_layers(run.data.tags) == [0, 5]
    frame = runs_frame(runs)
    assert list(frame["val_score"]) == pytest.approx([0.71, 0.71])
    assert list(frame["test_score"]) == pytest.approx([0.69, 0.69])
    assert list(frame["epochs_run"]) == [2, 2] and list(frame["kept_layers"]) == [[0, 5], [0, 5]]
