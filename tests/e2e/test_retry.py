"""A trial whose process dies is retried, and recorded once, as complete."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil

from tests.e2e.test_search_cluster import child_runs, tiny_spec


def _kill_one_trial_process(experiment: Path, deadline_s: float = 240) -> bool:
    """Kill the running trial process (Ray titles it ray::ImplicitFunc…) once it has checkpointed an epoch."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not list(experiment.glob("*/checkpoint_*")):
            time.sleep(0.2)
            continue
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if "ImplicitFunc" in " ".join(proc.info["cmdline"] or []):
                    proc.kill()
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        time.sleep(0.2)
    return False


def test_a_killed_trial_resumes_from_its_last_epoch_and_is_recorded_once(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path
) -> None:
    import ray
    from prunetune.search.runner import run_search

    spec = tiny_spec(
        tmp_path,
        tiny_model,
        mlflow_server,
        ray_cluster,
        num_trials=2,
        max_concurrent=1,
        scheduler="none",
        max_failures=2,
        **{"space.epochs": [3, 3], "trial.data.max_train_rows": 6000},
    )
    killed: list[bool] = []
    errors: list[BaseException] = []

    def kill() -> None:
        try:
            killed.append(_kill_one_trial_process(spec.storage / spec.name))
        except BaseException as err:  # surfaced by the assertion below
            errors.append(err)

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        result = run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()
        killer.join()
    assert not errors and killed == [True], errors
    runs = child_runs(spec, result.parent_run_id)
    assert len(runs) == 2 and len({r.data.tags["prunetune.ray_trial_id"] for r in runs}) == 2
    assert {r.data.tags["prunetune.status"] for r in runs} == {"complete"}
    assert {r.info.status for r in runs} == {"FINISHED"}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    for run in runs:  # resumed, not restarted: every epoch was trained and logged exactly once
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert sorted(steps) == [1, 2, 3], steps
