"""After a killed driver, a resumed search leaves no record open: real MLflow and Optuna stores.

Tune restores a search from its last snapshot, taken every few seconds, so the records of the
trials started or finished after it must be closed by prunetune itself. The e2e resume test
kills a real driver, but whether a trial falls in that window depends on timing; here the
window's two cases are set up exactly.
"""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from mlflow.tracking import MlflowClient
from prunetune.search.spec import load_spec
from prunetune.search.store import experiment_id
from prunetune.search.study import fail_orphaned_trials, study_name
from prunetune.search.tracking import TrialRecorder

from prunetune.config import TrialConfig
from prunetune.records import PARENT, TAG_KIND, TAG_STATUS, TAG_TRIAL

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


def _open_trial_run(mlflow: MlflowClient, experiment: str, parent: str, trial_id: str) -> str:
    tags = {PARENT: parent, TAG_KIND: "trial", TAG_TRIAL: trial_id, TAG_STATUS: "running"}
    return mlflow.create_run(experiment, tags=tags).info.run_id


def test_settle_closes_what_tune_finished_and_what_it_lost(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "resumed", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={TAG_KIND: "search"}).info.run_id
    finished_in_tune = _open_trial_run(mlflow, experiment, parent, "aaaa0001")  # its closing was still queued
    lost = _open_trial_run(mlflow, experiment, parent, "aaaa0002")  # started after Tune's last snapshot
    config = {"trial": TrialConfig().with_overrides({"kept_layers": [0, 1, 2], "training.epochs": 2}).to_dict()}
    # The fields of ray.tune.Result the recorder reads, as Tune fills them.
    result = SimpleNamespace(
        metrics={"trial_id": "aaaa0001", "epoch": 2, "val_score": 0.61, "drop": 0.01, "node_id": "n1"},
        config=config,
        error=None,
    )

    recorder = TrialRecorder(uri, experiment, parent, "resumed", tmp_path / "spool.jsonl")
    assert recorder.settle([result]) == 1

    closed = mlflow.get_run(finished_in_tune)
    assert closed.info.status == "FINISHED" and closed.data.tags[TAG_STATUS] == "complete"
    assert closed.data.metrics["final_val_score"] == 0.61 and closed.data.tags["prunetune.kept_layers"] == "[0, 1, 2]"
    interrupted = mlflow.get_run(lost)
    assert interrupted.info.status == "KILLED" and interrupted.data.tags[TAG_STATUS] == "interrupted"
    assert recorder.settle([result]) == 0  # nothing left open: settling again changes nothing


def test_optuna_trials_left_running_are_failed(tmp_path) -> None:
    spec = load_spec(None, {"name": "resumed", "storage_path": str(tmp_path)})
    storage = f"sqlite:///{spec.storage / 'optuna.db'}"
    study = optuna.create_study(study_name=study_name(spec, "0123456789abcdef"), storage=storage)
    done, orphan = study.ask(), study.ask()
    study.tell(done, 1.0)

    assert fail_orphaned_trials(spec, "0123456789abcdef") == 1
    states = {t.number: t.state for t in optuna.load_study(study_name=study.study_name, storage=storage).trials}
    assert states == {done.number: optuna.trial.TrialState.COMPLETE, orphan.number: optuna.trial.TrialState.FAIL}
    assert fail_orphaned_trials(spec, "ffffffffffffffff") == 0  # no such study: nothing to do


def test_baseline_jobs_left_running_by_the_driver_are_closed_on_resume(tmp_path) -> None:
    from prunetune.search.runner import close_interrupted_jobs

    from prunetune.records import TAG_SEARCH

    spec = load_spec(None, {"name": "resumed", "storage_path": str(tmp_path)})
    mlflow = MlflowClient(spec.resolved_tracking_uri())
    experiment = experiment_id(mlflow, spec.name, (tmp_path / "artifacts").as_uri())

    def run(kind: str, search: str = spec.name) -> str:
        return mlflow.create_run(experiment, tags={TAG_KIND: kind, TAG_SEARCH: search}).info.run_id

    reference, scratch, trial, other = run("reference"), run("scratch"), run("trial"), run("reference", "another")
    finished = run("reference")
    mlflow.set_terminated(finished)
    lines: list[str] = []

    close_interrupted_jobs(spec, mlflow, experiment, lines.append)

    status = {run_id: mlflow.get_run(run_id).info.status for run_id in (reference, scratch, trial, other, finished)}
    assert status == {
        reference: "KILLED",
        scratch: "KILLED",
        trial: "RUNNING",  # trials are Tune's to resume, and settled after it
        other: "RUNNING",  # another search's job
        finished: "FINISHED",
    }
    assert mlflow.get_run(reference).data.tags[TAG_STATUS] == "interrupted" and len(lines) == 2


def test_a_search_killed_before_tune_started_is_continued_not_restarted(tmp_path) -> None:
    """Killed in its reference sweep: no Tune state yet, but --resume continues the same search run and
    closes the reference run the killed driver left open."""
    from prunetune.search.runner import open_search_store

    from prunetune.records import TAG_SEARCH

    spec = load_spec(None, {"name": "killed-early", "storage_path": str(tmp_path)})
    lines: list[str] = []
    first = open_search_store(spec, False, lines.append)
    left_open = first.mlflow.create_run(
        first.experiment, tags={TAG_KIND: "reference", TAG_SEARCH: spec.name}
    ).info.run_id

    again = open_search_store(spec, True, lines.append)

    assert again.parent == first.parent and not again.resuming  # the same search; Tune starts afresh
    assert first.mlflow.get_run(left_open).info.status == "KILLED"
    assert not any("nothing to resume" in line for line in lines)
    fresh = open_search_store(spec, False, lines.append)
    assert fresh.parent != first.parent  # without --resume, a new search run


def a_search_with_a_trial(tmp_path, name: str, epochs: int) -> tuple[str, MlflowClient, str, str, SimpleNamespace]:
    """A local store with a search's run, and a trial as Tune hands it to callbacks (id, config, last result)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, name, (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={TAG_KIND: "search"}).info.run_id
    spec = load_spec(None, {"trial.kept_layers": "[0, 5]", "trial.training.epochs": epochs})
    trial = SimpleNamespace(trial_id="t1", config={"trial": spec.trial.to_dict()}, last_result={})
    return uri, mlflow, experiment, parent, trial


class _EveryTrial(dict):
    """Tune names its trials itself: this hands the one recorded result to whichever trial asks."""

    def get(self, key, default=None):  # noqa: ANN001, ANN201
        return dict.get(self, "any", default)


def test_a_trial_mlflow_holds_as_finished_is_not_trained_or_logged_again(tmp_path) -> None:
    """Killed just after a trial finished, Tune's snapshot still shows it running: on resume it reports its
    recorded result (for Tune and Optuna to learn) instead of training again, and nothing is logged twice."""
    import ray
    from prunetune.search.tracking import recorded_results
    from prunetune.search.trainable import ALREADY_RECORDED, run_trial
    from ray import tune

    uri, mlflow, experiment, parent, trial = a_search_with_a_trial(tmp_path, "resumed", epochs=2)
    recorder = TrialRecorder(uri, experiment, parent, "resumed", tmp_path / "spool.jsonl")
    recorder.on_trial_start(0, [], trial)
    for epoch, score in ((1, 0.61), (2, 0.66)):
        trial.last_result = {"epoch": epoch, "val_score": score, "drop": 0.68 - score, "feasible": 1.0}
        recorder.on_trial_result(0, [], trial, trial.last_result)
    recorder.on_trial_complete(0, [], trial)
    recorder.flush()

    recorded = recorded_results(mlflow, experiment, parent)
    assert recorded == {"t1": {"val_score": 0.66, "drop": 0.68 - 0.66, "feasible": 1.0, "epoch": 2.0}}

    # The resumed trial: a model that does not exist, so training it at all would fail the trial.
    missing_model = load_spec(None, {"trial.model": str(tmp_path / "no-such-model"), "trial.kept_layers": "[0]"})
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        trainable = tune.with_parameters(
            run_trial, spec=missing_model, reference_score=0.68, num_layers=6, recorded=_EveryTrial(any=recorded["t1"])
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": missing_model.trial.to_dict()},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        )
        (result,) = tuner.fit()
    finally:
        ray.shutdown()
    assert result.error is None and result.metrics["val_score"] == 0.66 and result.metrics[ALREADY_RECORDED] == 1.0

    # The recorder of the resumed driver logs nothing for it: one value per epoch, closed once.
    resumed = TrialRecorder(uri, experiment, parent, "resumed", tmp_path / "spool.jsonl")
    trial.last_result = result.metrics
    resumed.on_trial_result(0, [], trial, result.metrics)
    resumed.on_trial_complete(0, [], trial)
    resumed.flush()
    run_id = recorder.run_ids["t1"]
    assert [(m.step, m.value) for m in mlflow.get_metric_history(run_id, "val_score")] == [(1, 0.61), (2, 0.66)]
    assert len(mlflow.get_metric_history(run_id, "final_val_score")) == 1


def test_epochs_a_retry_trains_again_are_not_logged_twice(tmp_path) -> None:
    """With sparse checkpoints (checkpoint_every_s), a retried trial, or a trial of a resumed search, may
    continue from epochs back: the epochs it trains again were logged by its first attempt and stay logged once."""
    uri, mlflow, experiment, parent, trial = a_search_with_a_trial(tmp_path, "retried", epochs=3)

    def epochs(recorder: TrialRecorder, *scores: tuple[int, float]) -> None:
        for epoch, score in scores:
            trial.last_result = {"epoch": epoch, "val_score": score}
            recorder.on_trial_result(0, [], trial, trial.last_result)
        recorder.flush()

    recorder = TrialRecorder(uri, experiment, parent, "retried", tmp_path / "spool.jsonl")
    recorder.on_trial_start(0, [], trial)
    epochs(recorder, (1, 0.61), (1, 0.60))  # its process died after epoch 1, retried from scratch
    # The driver died too: a resumed search (a new recorder) runs the trial again from scratch.
    resumed = TrialRecorder(uri, experiment, parent, "retried", tmp_path / "spool.jsonl")
    epochs(resumed, (1, 0.59), (2, 0.64), (3, 0.66))
    history = mlflow.get_metric_history(recorder.run_ids["t1"], "val_score")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.61), (2, 0.64), (3, 0.66)]
