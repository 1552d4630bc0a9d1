"""A sentence-embedding search on the three-node cluster, every trial distilled: the tuned reference embeds
the STS training sentences once, and the trials learn from those embeddings (issue 13)."""

from __future__ import annotations

import numpy as np

from tests.helpers import child_runs, tiny_spec


def test_a_sentence_search_distils_every_trial_from_one_teacher(
    ray_cluster, mlflow_server, tiny_model, shared_data, tmp_path, monkeypatch
) -> None:
    import ray
    from mlflow.tracking import MlflowClient
    from prunetune.search.runner import run_search
    from prunetune.trainables.sources import cache_root

    monkeypatch.setenv("PRUNETUNE_DATA_DIR", str(shared_data))
    spec = tiny_spec(
        tmp_path,
        tiny_model,  # a plain encoder: sentence-transformers gives it mean pooling
        mlflow_server,
        ray_cluster,
        **{
            "trial.task": "sentence-similarity",
            "trial.data.source": "stsb:en",
            "trial.data.max_train_rows": 96,
            "trial.data.max_eval_rows": 64,
            "trial.training.max_length": 32,
            "space.strategies": ["top", "bottom"],
            "space.epochs": [1, 1],
            "num_trials": 3,
            "trial.distill.alpha": 0.5,
        },
    )
    try:
        result = run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()

    client = MlflowClient(spec.tracking_uri)
    trials = child_runs(spec, result.parent_run_id)
    assert len(trials) == spec.num_trials
    for run in trials:  # embeddings are matched without a temperature: none is recorded
        assert run.data.params["distill.alpha"] == "0.5" and run.data.params["distill.temperature"] == "1.0"
        assert np.isfinite(run.data.metrics["val_spearman"])
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    teachers = client.search_runs([experiment], filter_string="tags.`prunetune.teacher` = 'true'")
    assert len(teachers) == 1 and teachers[0].data.params["distill.alpha"] == "0.0"
    # The teacher's embeddings of both sentences of every training pair, cached for the next search.
    (cached,) = (cache_root() / "teacher-outputs").glob("*.npy")
    assert np.load(cached).shape == (2 * 96, 32)  # the tiny model's 32 dimensions
