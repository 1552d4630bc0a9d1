"""A trial whose process dies is retried, and recorded once, as complete."""

from __future__ import annotations

import threading
import time

import psutil

from tests.e2e.test_search_cluster import child_runs, tiny_spec


def _kill_one_trial_process(deadline_s: float = 240) -> bool:
    """Kill the first running trial process (Ray titles it ray::ImplicitFunc…) once it has trained a moment."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if "ImplicitFunc" in " ".join(proc.info["cmdline"] or []):
                    time.sleep(2)
                    proc.kill()
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        time.sleep(0.2)
    return False


def test_a_killed_trial_is_retried_and_recorded_once(ray_cluster, mlflow_server, tiny_model, data_env, tmp_path) -> None:
    import ray

    from prunetune.search.runner import run_search

    spec = tiny_spec(
        tmp_path, tiny_model, mlflow_server, ray_cluster, num_trials=2, max_concurrent=1, scheduler="none",
        max_failures=2, **{"space.epochs": [2, 2], "trial.data.max_train_rows": 600},
    )
    killed: list[bool] = []
    killer = threading.Thread(target=lambda: killed.append(_kill_one_trial_process()))
    killer.start()
    try:
        result = run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()
        killer.join()
    assert killed == [True]
    runs = child_runs(spec, result.parent_run_id)
    assert len(runs) == 2 and len({r.data.tags["prunetune.ray_trial_id"] for r in runs}) == 2
    assert {r.data.tags["prunetune.status"] for r in runs} == {"complete"}
    assert {r.info.status for r in runs} == {"FINISHED"}
