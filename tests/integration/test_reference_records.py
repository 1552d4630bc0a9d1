"""The tuned reference's records on a real MLflow store: a given score trains nothing; finished reference
runs are found again by key (reused), and only the missing ones would be trained."""

from __future__ import annotations

import dataclasses

import pytest
from mlflow.tracking import MlflowClient
from prunetune.search.context import SearchContext
from prunetune.search.max_drop import MaxDropAnswer, render
from prunetune.search.reference import finished_reference_runs, reference_trials, score_on_seed, tuned_reference
from prunetune.search.spec import load_spec, reference_key
from prunetune.search.store import experiment_id

from prunetune.records import TAG_KIND, TAG_REFERENCE_KEY


def _store(tmp_path):
    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = experiment_id(mlflow, "reference", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={TAG_KIND: "search"}).info.run_id
    return mlflow, experiment, parent


def test_a_given_reference_score_trains_nothing_and_is_every_seed_s_reference(tmp_path) -> None:
    mlflow, experiment, parent = _store(tmp_path)
    spec = load_spec(None, {"budget.reference_score": 0.677, "trial.training.learning_rate": 2e-4})
    lines: list[str] = []
    ctx = SearchContext(spec, mlflow, experiment, parent, lines.append)
    reference = tuned_reference(ctx)
    assert (reference.score, reference.learning_rate, reference.on_seeds()) == (0.677, 2e-4, 0.677)
    assert score_on_seed(ctx, reference, 42) == 0.677
    assert mlflow.get_run(parent).data.metrics["reference_score"] == 0.677
    kinds = [r.data.tags.get(TAG_KIND) for r in mlflow.search_runs([experiment])]
    assert kinds == ["search"]  # no reference run: nothing was trained
    assert "none trained" in lines[0]


def test_finished_reference_runs_are_found_by_key_unfinished_ones_are_not(tmp_path) -> None:
    mlflow, experiment, _ = _store(tmp_path)
    spec = load_spec(None, {"reference.learning_rates": "[1e-4, 2e-4]", "seeds": 2})
    trials = reference_trials(spec)
    assert [(t.training.learning_rate, t.training.seed) for t in trials] == [
        (1e-4, 43),
        (1e-4, 44),
        (2e-4, 43),
        (2e-4, 44),
    ]
    keys = [reference_key(t) for t in trials]
    assert len(set(keys)) == 4  # learning rate and seed make different experiments
    done = mlflow.create_run(experiment, tags={TAG_KIND: "reference", TAG_REFERENCE_KEY: keys[0]}).info.run_id
    mlflow.log_metric(done, "val_score", 0.65)
    mlflow.set_terminated(done, "FINISHED")
    killed = mlflow.create_run(experiment, tags={TAG_KIND: "reference", TAG_REFERENCE_KEY: keys[1]}).info.run_id
    mlflow.log_metric(killed, "val_score", 0.60)
    mlflow.set_terminated(killed, "KILLED")
    assert finished_reference_runs(mlflow, experiment, keys) == {keys[0]: (done, 0.65)}


def test_the_answer_reads_with_its_verdict_interval_and_selection_score() -> None:
    from prunetune.search.decide import Candidate, ToleranceAnswer, TunedReference, finding

    reference = TunedReference(2e-4, 2, {43: 0.68, 44: 0.69, 45: 0.67})
    candidate = Candidate((0, 5), 4, "window", 8e-4, 2, 0.6802)
    scores = {43: 0.6665, 44: 0.6821, 45: 0.6672}
    drops = {s: reference.scores[s] - scores[s] for s in scores}
    borderline = finding(candidate, scores, drops, 0.01, confidence=1 - 0.05 / 3)
    answer = MaxDropAnswer(
        [ToleranceAnswer(0.01, borderline, None, 2, (borderline,)), ToleranceAnswer(0.03, None, None, 0)],
        reference,
        [43, 44, 45],
        42,
        0.684,
        False,
        "run",
        16,
    )
    text = render(answer)
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert "| 4 | borderline | window | [0, 5] | 8.0e-04 | 2 |" in row and "0.6802" in row and "| none |" in row
    assert "| 3 | none within |" in text and "tolerances and drops in points" in text
    assert (
        "each interval is 98.33 %, so that the up to 3 finalists a run of 2 tolerances may re-train are falsely "
        "called within together at most 2.5 % of the time" in text
    )
    # The walk stopped at the borderline answer (seek_confident false): "none" is among those re-trained.
    assert "confidently within 1: none among the finalists re-trained" in text and "--set seek_confident=true" in text
    sought = render(dataclasses.replace(answer, seek_confident=True))
    assert "none among the finalists re-trained" not in sought
    document = answer.to_dict()
    assert document["seek_confident"] is False
    assert document["reference"]["score"] == pytest.approx(0.68)
    assert document["reference"]["search_seed_score"] == 0.684
    assert document["tolerances"][0]["answer"]["verdict"] == "borderline"


def test_a_resumed_max_drop_finds_the_finished_rechecks_again(tmp_path) -> None:
    from prunetune.search.max_drop import finished_rechecks
    from prunetune.search.tracking import log_params_and_metrics

    from prunetune.config import TrialConfig

    mlflow, experiment, parent = _store(tmp_path)
    base = TrialConfig().with_overrides({"kept_layers": [0, 5], "training.learning_rate": 8e-4, "training.epochs": 2})
    for seed, status in ((43, "FINISHED"), (44, "KILLED")):
        run = mlflow.create_run(experiment, tags={TAG_KIND: "recheck", "mlflow.parentRunId": parent}).info.run_id
        config = base.with_overrides({"training.seed": seed})
        log_params_and_metrics(mlflow, run, config.to_flat(), {"val_score": 0.66 + seed / 1000})
        mlflow.set_terminated(run, status)
    children = mlflow.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    not_distilled = (0.0, 0.0)
    assert finished_rechecks(children) == {(((0, 5), 8e-4, 2, not_distilled), 43): pytest.approx(0.703)}


def test_a_screened_sweep_asks_the_other_seeds_only_of_the_rates_near_the_best(tmp_path) -> None:
    """Every rate on the first two of three decision seeds; 1e-4, 8 points below there, is not asked for on
    the third. The runs are recorded already, so each stage's request shows as runs reused."""
    mlflow, experiment, parent = _store(tmp_path)
    spec = load_spec(
        None,
        {
            "reference.learning_rates": "[1e-4, 2e-4]",
            "seeds": 3,
            "reference.edge_steps": 0,
            "reference.screen_seeds": 2,
            "reference.screen_margin": 0.015,
        },
    )
    scores = {(1e-4, 43): 0.60, (1e-4, 44): 0.61, (1e-4, 45): 0.62, (2e-4, 43): 0.68, (2e-4, 44): 0.69}
    scores[(2e-4, 45)] = 0.67
    for trial in reference_trials(spec):
        key = (trial.training.learning_rate, trial.training.seed)
        run = mlflow.create_run(
            experiment, tags={TAG_KIND: "reference", TAG_REFERENCE_KEY: reference_key(trial)}
        ).info.run_id
        mlflow.log_metric(run, "val_score", scores[key])
        mlflow.set_terminated(run, "FINISHED")
    lines: list[str] = []
    reference = tuned_reference(SearchContext(spec, mlflow, experiment, parent, lines.append))
    # 1e-4's third seed is recorded but never asked for: its mean is over the two seeds it was screened on.
    assert (reference.learning_rate, reference.scores) == (2e-4, {43: 0.68, 44: 0.69, 45: 0.67})
    asked = [line for line in lines if line.startswith("reference: ") and "runs reused" in line]
    assert asked == ["reference: 4 runs reused, 0 to train", "reference: 1 runs reused, 0 to train"]
    assert any(
        "lr 1.0e-04, 2 epochs on seeds [43, 44]: mean val_score 0.6050, over 1.5 points below" in x for x in lines
    )
    assert any(x.startswith("reference: lr 1.0e-04, 2 epochs: mean val_score 0.6050 over 2 seed(s)") for x in lines)
    assert mlflow.get_run(parent).data.metrics["reference_score"] == pytest.approx(0.68)
