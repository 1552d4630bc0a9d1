"""`prunetune export RUN_ID`: any recorded job's model re-created from its MLflow run (trials keep no weights),
the same model as the run's (same config, same seed: the same score), with its card; a run that is not a job
is refused in one line."""

from __future__ import annotations

import subprocess
import sys

from mlflow.tracking import MlflowClient
from prunetune.search.context import SearchContext
from prunetune.search.jobs import finish_job_run, open_job_run
from prunetune.search.spec import load_spec
from prunetune.search.store import experiment_id
from prunetune.trainables.jobs import run_job

from prunetune.records import KIND_SEARCH, KIND_TRIAL, TAG_KIND


def test_export_re_creates_a_recorded_trials_model(tiny_model, data_env, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification

    spec = load_spec(None, {"trial.model": tiny_model, "trial.kept_layers": "[0, 3]", "trial.training.epochs": 1,
                            "trial.data.max_train_rows": 120, "trial.data.max_eval_rows": 60,
                            "trial.training.max_length": 24})  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "export", (tmp_path / "artifacts").as_uri())
    search_run = mlflow.create_run(experiment, tags={TAG_KIND: KIND_SEARCH}).info.run_id
    trial_run = open_job_run(SearchContext(spec, mlflow, experiment, search_run, print), spec.trial, KIND_TRIAL, {})
    recorded = finish_job_run(mlflow, trial_run, spec.trial, lambda: run_job(spec.trial))

    def export(run_id: str, folder: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "prunetune.cli", "export", run_id, "-o", folder, "--tracking-uri", uri]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)

    done = export(trial_run, "exported")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"val_score {recorded['val_score']:.4f}" in done.stdout  # the same model: the same score
    folder = tmp_path / "exported"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2
    card = (folder / "README.md").read_text()
    assert f"MLflow run {trial_run}" in card and "| layers kept | [0, 3] |" in card

    refused = export(search_run, "other")
    assert refused.returncode == 2 and "is a search run, not a job" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "other").exists()
