"""A trial whose process dies is retried, and recorded once, as complete."""

from __future__ import annotations

import re
import threading
import time

import psutil
from prunetune.search.spec import SearchSpec

from prunetune.records import TAG_CHECKPOINT_EPOCH, TAG_RETRIES
from tests.helpers import child_runs, tiny_spec


def _of_cluster(proc: psutil.Process, address: str) -> bool:
    """Whether ``proc`` was started by a node of the cluster at ``address``: its raylet names the cluster's
    GCS port (``--gcs-address=<node ip>:<port>``; the ip may be the machine's, not the loopback one). Another
    Ray instance on this machine, a user's own search, is never touched."""
    gcs = re.compile(rf"--gcs-address=\S+:{re.escape(address.rsplit(':', 1)[1])}(\s|$)")
    try:
        return any(gcs.search(" ".join(parent.cmdline())) for parent in proc.parents())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _kill_one_trial_process(spec: SearchSpec, address: str, deadline_s: float = 240) -> bool:
    """Kill this cluster's running trial process (Ray titles it ray::ImplicitFunc…) once Tune has registered
    the checkpoint of its first epoch (the recorder tags it in MLflow). Killing as soon as the checkpoint's
    folder appears would race Tune's registration, and the retry would rightly start from scratch."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    registered = f"tags.`{TAG_CHECKPOINT_EPOCH}` = '1' and attributes.status = 'RUNNING'"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        experiment = client.get_experiment_by_name(spec.name)
        if experiment is None or not client.search_runs(
            [experiment.experiment_id], filter_string=registered, max_results=1
        ):
            continue
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if "ImplicitFunc" in " ".join(proc.info["cmdline"] or []) and _of_cluster(proc, address):
                    proc.kill()
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
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
        checkpoint_every_s=0,  # a checkpoint after every epoch: the retry continues from epoch 1's
        # A given reference: nothing trained before the trials on these 6,000 rows (a third of the test's time).
        **{"budget.reference_score": 0.5},
        **{"space.epochs": [3, 3], "trial.data.max_train_rows": 6000},
    )
    killed: list[bool] = []
    errors: list[BaseException] = []

    def kill() -> None:
        try:
            killed.append(_kill_one_trial_process(spec, ray_cluster))
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
    assert sorted(r.data.tags.get(TAG_RETRIES, "0") for r in runs) == ["0", "1"]  # the killed one, retried once
    from prunetune.analysis.query import find_search, open_store, search_runs_frame

    store = open_store(spec.tracking_uri)
    frame = search_runs_frame(store, find_search(store, spec.name))
    assert sorted(frame.loc[frame["kind"] == "trial", "retries"]) == [0, 1]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    for run in runs:  # resumed, not restarted: every epoch was trained and logged exactly once
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert sorted(steps) == [1, 2, 3], steps
