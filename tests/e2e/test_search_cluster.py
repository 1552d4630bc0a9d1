"""A constrained search on a real three-node Ray cluster, recorded in a real `mlflow server`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import assert_loads_the_same, child_runs, reference_runs, tiny_spec

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


def test_search_spreads_over_nodes_records_every_trial_and_honours_the_budget(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path
) -> None:
    import ray
    from prunetune.search.runner import run_search

    # 2 lrs x 2 decision seeds, every one trained (not screened on the first seed: that is test_reference_reuse's)
    sweep = {"reference.learning_rates": [3e-4, 1e-3], "seeds": 2, "reference.screen_seeds": None, "save_model": True}
    # A relative budget (a fraction of the reference), so that its unit is checked where the user sees it; every
    # complete trial is within 90 % of the reference: the search has an answer to check.
    sweep |= {"budget.tolerance": 0.9, "budget.relative": True}
    spec = tiny_spec(tmp_path, tiny_model, mlflow_server, ray_cluster, **sweep)
    lines: list[str] = []
    try:
        result = run_search(spec, say=lines.append)
    finally:
        ray.shutdown()

    children = child_runs(spec, result.parent_run_id, kind=None)
    runs = [r for r in children if r.data.tags["prunetune.kind"] == "trial"]
    assert len(runs) == spec.num_trials == result.trials
    # The only other child: the answer's model, trained once more (when a trial was within the budget).
    assert [r.data.tags["prunetune.kind"] for r in children if r not in runs] == ["model"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["prunetune.status"] for r in runs} <= {"complete", "early-stopped"}
    assert len({r.data.tags["prunetune.ray_trial_id"] for r in runs}) == spec.num_trials
    assert len({r.data.tags["prunetune.node_id"] for r in runs}) > 1  # trials ran on more than one node
    # Each trial trains on as many threads as the CPUs it holds (Ray's OMP_NUM_THREADS reaches torch).
    assert {r.data.tags["prunetune.torch_threads"] for r in runs} == {str(int(spec.resources.cpus_per_trial))}
    # The search records how long its trials took apart from its set-up and the answer's model.
    search_run = MlflowClient(spec.tracking_uri).get_run(result.parent_run_id)
    trial_phase = search_run.data.metrics["trial_phase_seconds"]
    assert 0 < trial_phase < (search_run.info.end_time - search_run.info.start_time) / 1000
    assert result.best is not None  # the search's row in MLflow's runs table reads as its answer
    assert search_run.data.metrics["val_score"] == pytest.approx(result.best.val_score)
    assert search_run.data.metrics["layers_kept"] == len(result.best.kept_layers)
    for run in runs:  # typed params: the full TrialConfig, kept layers as a list
        assert run.data.params["drop.strategy"] in spec.space.strategies
        assert run.data.params["kept_layers"].startswith("[")
        assert run.data.metrics["layers_kept"] == len(eval(run.data.params["kept_layers"]))
    # The reported best is within budget, and no complete feasible trial dropped more layers.
    assert result.best.drop <= spec.budget.tolerance + 1e-9
    feasible = [
        r for r in runs if r.data.tags["prunetune.status"] == "complete" and r.data.metrics.get("final_feasible") == 1.0
    ]
    assert max(r.data.metrics["layers_dropped"] for r in feasible) == result.best.layers_dropped
    assert any("trials 6/6 done" in line for line in lines)
    # The dashboards read the search right. MLflow: the experiment opens on its runs, the search's run
    # carries the spec, every trial its data as dataset inputs (same rows, same digest).
    client = MlflowClient(spec.tracking_uri)
    assert client.get_experiment_by_name(spec.name).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_run(result.parent_run_id).data.params["spec.num_trials"] == "6"
    digests = set()
    for run in runs:
        inputs = {i.dataset.name: i.dataset for i in client.get_run(run.info.run_id).inputs.dataset_inputs}
        assert set(inputs) == {"indicnews:english:shc:train", "indicnews:english:shc:validation"}  # no test split here
        assert json.loads(inputs["indicnews:english:shc:train"].profile)["num_rows"] == 160
        digests.add(tuple(sorted(d.digest for d in inputs.values())))
    assert len(digests) == 1
    # Optuna: named objective, each epoch's score as an intermediate value, the trial's layers and MLflow run.
    import optuna

    storage = f"sqlite:///{spec.storage / 'optuna.db'}"
    (study_name,) = optuna.study.get_all_study_names(storage)
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert study.metric_names == ["layers_dropped+val_score (over budget: -excess)"]
    ran = [t for t in study.trials if t.state != optuna.trial.TrialState.FAIL and "repeat_of" not in t.user_attrs]
    assert ran and all(1 in t.intermediate_values for t in ran), [(t.number, t.intermediate_values) for t in ran]
    assert all(t.user_attrs["mlflow_search_run_id"] == result.parent_run_id for t in ran)
    assert all(t.user_attrs["kept_layers"] for t in ran)
    # Each trial's own MLflow run, linked while the trial runs (one opened after its trial ended cannot be).
    run_of = {r.data.tags["prunetune.ray_trial_id"]: r.info.run_id for r in runs}
    linked = [t for t in ran if "mlflow_run_id" in t.user_attrs]
    assert linked and all(t.user_attrs["mlflow_run_id"] == run_of[t.user_attrs["ray_trial_id"]] for t in linked)
    assert all(t.user_attrs["mlflow_run"].endswith(f"/runs/{t.user_attrs['mlflow_run_id']}") for t in linked)
    # optuna-dashboard reads as a pruning search: the objective explained, each trial's real learning rate, score
    # and drop, and the objective (not the score) per epoch, so a trial stopped early shares the complete ones' axis.
    assert "layers dropped + val_score" in study.user_attrs["objective"]
    assert all({"learning_rate", "val_score", "drop", "strategy"} <= set(t.user_attrs) for t in ran)
    lr_of = {r.data.tags["prunetune.ray_trial_id"]: float(r.data.params["training.learning_rate"]) for r in runs}
    assert all(t.user_attrs["learning_rate"] == lr_of[t.user_attrs["ray_trial_id"]] for t in ran)
    complete = [t for t in ran if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(t.intermediate_values[max(t.intermediate_values)] == t.value for t in complete)

    # Disk stays bounded: finished trials keep no checkpoint; trial folders are named by id and strategy.
    from pathlib import Path

    folders = [p for p in Path(result.experiment_path).iterdir() if p.is_dir() and p.name != "model"]
    assert len(folders) == spec.num_trials
    assert all(p.name.split("-", 1)[1] in spec.space.strategies and len(p.name) < 40 for p in folders)
    assert list(Path(result.experiment_path).glob("*/checkpoint_*")) == []
    # The answer is a model, logged to the search's run.
    assert result.model is not None and (result.model.path / "README.md").exists()
    assert_loads_the_same(str(result.model.path), result.model.model_uri, spec.tracking_uri)
    assert MlflowClient(spec.tracking_uri).get_run(result.parent_run_id).outputs.model_outputs

    # The tuned reference: every learning rate on every decision seed is a reference run; the budget is
    # measured against the configuration with the best mean over the seeds, not the best single run.
    references = reference_runs(spec)
    assert {r.info.status for r in references} == {"FINISHED"}
    by_lr: dict[str, dict[str, float]] = {}
    for run in references:
        by_lr.setdefault(run.data.params["training.learning_rate"], {})[run.data.params["training.seed"]] = (
            run.data.metrics["val_score"]
        )
    assert all(sorted(seeds) == ["43", "44"] for seeds in by_lr.values())  # never the search's own seed, 42
    means = {float(lr): sum(v.values()) / 2 for lr, v in by_lr.items()}
    # Two rates cannot bracket an optimum: the sweep went an octave past whichever edge was best, and on while
    # the best stayed at the edge (reference.edge_steps, 2), and trained no other rate.
    from prunetune.search.reference import past_the_edge

    tried = [3e-4, 1e-3]
    for _ in range(spec.reference.edge_steps):
        beyond = past_the_edge(tried, max(tried, key=lambda lr: (means[lr], -lr)))
        if beyond is None:
            break
        tried.append(beyond)
        assert any(f"trying lr {beyond:.1e} too" in line for line in lines)
    assert sorted(means) == sorted(tried) and len(references) == 2 * len(tried) > 4
    best_lr = max(means, key=lambda lr: (means[lr], -lr))
    assert result.reference_score == pytest.approx(means[best_lr])
    assert result.reference.learning_rate == best_lr
    parent = MlflowClient(spec.tracking_uri).get_run(result.parent_run_id)
    assert parent.data.metrics["reference_score"] == pytest.approx(means[best_lr])
    assert parent.data.params["reference.learning_rate"] == str(best_lr)
    for run in runs:  # each trial's drop is measured against that mean, as a fraction of it (budget.relative)
        expected = (means[best_lr] - run.data.metrics["val_score"]) / means[best_lr]
        assert run.data.metrics["drop"] == pytest.approx(expected, abs=1e-6)  # metrics are recorded to 6 decimals
    # What the user reads is in that unit too: the printed answer and the model's card.
    from prunetune.search.render import render_search

    shown = render_search(result, spec.budget.tolerance, spec.budget.relative)
    assert "drop in % of the reference, within the budget of 90 % of the reference" in shown
    assert f"| {100 * result.best.drop:+.2f} |" in shown
    card = (result.model.path / "README.md").read_text()
    assert f"{100 * result.best.drop:+.2f} % of the reference (tolerance 90)" in card

    # A second search of the same model x task x data reuses every reference run.
    before = len(lines)
    again = run_search(spec.with_overrides({"num_trials": 1, "name": spec.name}), say=lines.append)
    ray.shutdown()
    assert any("4 runs reused, 0 to train" in line for line in lines)
    assert all(line.endswith(" 0 to train") for line in lines[before:] if "runs reused" in line)  # extension too
    assert len(reference_runs(spec)) == len(references)
    assert again.reference_score == result.reference_score


def test_killed_driver_resumes_and_records_every_trial_once(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path
) -> None:
    import yaml

    spec = tiny_spec(tmp_path, tiny_model, mlflow_server, ray_cluster, num_trials=8, max_concurrent=2, scheduler="none")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.to_dict()))
    command = [sys.executable, "-m", "prunetune.cli", "search", str(spec_file)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    seen = []
    deadline = time.monotonic() + 300
    for line in driver.stdout:  # kill the driver once some trials are done
        seen.append(line)
        if "trials 3/8 done" in line or time.monotonic() > deadline:
            break
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert any("trials 3/8 done" in line for line in seen), "".join(seen[-30:])

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    parent = (spec.storage / spec.name / "parent_run_id").read_text().strip()
    runs = child_runs(spec, parent)
    recorded = [r.data.tags["prunetune.ray_trial_id"] for r in runs]
    assert len(recorded) == len(set(recorded))  # no trial recorded twice
    from ray.tune import ExperimentAnalysis

    tune_trials = {t.trial_id for t in ExperimentAnalysis(str(spec.storage / spec.name)).trials}
    assert len(tune_trials) == 8 and tune_trials <= set(recorded)  # none of the search's trials lost
    # Trials the driver started after Tune's last snapshot are unknown to the resumed Tune: each is either
    # finished (it ended before the kill) or closed as interrupted, never left running.
    for run in runs:
        if run.data.tags["prunetune.ray_trial_id"] not in tune_trials:
            assert (run.info.status, run.data.tags["prunetune.status"]) in {
                ("FINISHED", "complete"),
                ("KILLED", "interrupted"),
            }
        else:
            assert run.info.status == "FINISHED"
    import optuna

    storage = f"sqlite:///{spec.storage / 'optuna.db'}"
    (name,) = optuna.study.get_all_study_names(storage)
    states = {t.state for t in optuna.load_study(study_name=name, storage=storage).trials}
    assert optuna.trial.TrialState.RUNNING not in states


def test_multi_objective_search_gives_a_pareto_front(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path
) -> None:
    import optuna
    import ray
    from prunetune.search.runner import run_search

    # A budget every trial meets (within 90 % of the reference): Optuna's front holds feasible trials only, and a
    # tiny random model's trials can all collapse to one class, 5 points and more below its reference (seen in CI:
    # an empty front). The front is what this test checks, not the budget.
    within_any = {"budget.tolerance": 0.9, "budget.relative": True}
    spec = tiny_spec(
        tmp_path, tiny_model, mlflow_server, ray_cluster, objective="multi", multi_axis="latency_ms", num_trials=4,
        **within_any,
    )  # fmt: skip
    try:
        result = run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()
    assert len(child_runs(spec, result.parent_run_id)) == 4
    storage = f"sqlite:///{spec.storage / 'optuna.db'}"
    (name,) = optuna.study.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(len(t.values) == 2 for t in complete)  # (val_score, latency_ms)
    latencies = {r.data.metrics["latency_ms"] for r in child_runs(spec, result.parent_run_id)}
    assert {t.values[1] for t in complete} <= latencies  # the latency each trial measured and MLflow recorded
    front = study.best_trials
    assert front
    assert name in _optuna_dashboard_studies(storage)  # optuna-dashboard can watch the same study
    for a in front:  # no trial on the front is dominated by another complete trial
        assert not any(
            b.values[0] >= a.values[0] and b.values[1] <= a.values[1] and b.values != a.values for b in complete
        )


def _optuna_dashboard_studies(storage: str) -> list[str]:
    """Start a real optuna-dashboard on the study's database and list the studies it serves."""
    import json
    import urllib.request

    from tests.helpers import BIN, free_port

    port = free_port()
    proc = subprocess.Popen(
        [BIN / "optuna-dashboard", storage, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as answer:
                    return [s["study_name"] for s in json.load(answer)["study_summaries"]]
            except OSError:
                time.sleep(0.5)
        raise AssertionError("optuna-dashboard did not answer within 30 s")
    finally:
        proc.kill()
        proc.wait()
