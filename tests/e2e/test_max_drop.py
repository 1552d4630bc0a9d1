"""max-drop: one search answers every tolerance; finalists are re-trained over seeds with seed-matched references."""

from __future__ import annotations

from tests.e2e.test_search_cluster import child_runs, tiny_spec


def test_max_drop_answers_each_tolerance_with_a_rechecked_finalist(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path
) -> None:
    import ray
    from prunetune.search.max_drop import max_drop

    spec = tiny_spec(tmp_path, tiny_model, mlflow_server, ray_cluster, num_trials=5, scheduler="none")
    lines: list[str] = []
    try:
        answers = max_drop(spec, [0.5, 0.0], seeds=[42, 43], say=lines.append)
    finally:
        ray.shutdown()
    tight, loose = answers  # sorted by tolerance
    assert loose is not None  # a 50-point budget admits any trained model
    assert loose.drop <= 0.5 and loose.seeds == [42, 43] and 1 <= loose.layers_dropped <= 3
    assert len(loose.kept_layers) == 4 - loose.layers_dropped
    if tight is not None:
        assert tight.drop <= 0.0 and tight.layers_dropped <= loose.layers_dropped
    assert any(line.startswith("re-checking") for line in lines)
    # Every re-check job is an MLflow run of the search: the finalist and its reference, at the extra seed.
    parent = next(
        r.data.tags["mlflow.parentRunId"] for r in child_runs_of_search(spec) if "mlflow.parentRunId" in r.data.tags
    )
    rechecks = [r for r in child_runs(spec, parent) if r.data.tags["prunetune.kind"].startswith("recheck")]
    kinds = sorted(r.data.tags["prunetune.kind"] for r in rechecks)
    assert kinds and kinds.count("recheck") == kinds.count("recheck-reference")
    assert all(
        r.data.tags["prunetune.status"] == "complete" and r.data.params["training.seed"] == "43" for r in rechecks
    )


def child_runs_of_search(spec):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    return client.search_runs([client.get_experiment_by_name(spec.name).experiment_id])
