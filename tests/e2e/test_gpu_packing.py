"""Fractional GPUs: gpus_per_trial auto packs trials per GPU by what the node holds; each trial sees the GPU
Ray gave it."""

from __future__ import annotations

from collections import Counter

from tests.helpers import child_runs, tiny_spec


def test_half_gpu_trials_share_the_two_logical_gpus(gpu_node_cluster, tiny_model, data_env, tmp_path) -> None:
    import ray
    import torch
    from prunetune.search.runner import run_search

    spec = tiny_spec(
        tmp_path,
        tiny_model,
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        gpu_node_cluster,
        num_trials=4,
        max_concurrent=None,  # as many as the cluster holds
        scheduler="none",
        **{
            "resources.gpus_per_trial": "auto",
            "resources.cpus_per_trial": 1,
            "trial.training.epochs": 1,
            "space.epochs": [1, 1],
        },
    )
    try:
        result = run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()
    # Two logical GPUs, no CUDA to measure a peak on: the node's 4 CPUs decide, two trials per GPU, four at once.
    assert result.spec.resources.gpus_per_trial == 0.5 and result.spec.max_concurrent == 4
    runs = child_runs(spec, result.parent_run_id)
    assert len(runs) == 4
    devices = Counter(r.data.tags["prunetune.cuda_visible_devices"] for r in runs)
    assert set(devices) <= {"0", "1"}  # one GPU each, as Ray assigned it

    # Packing: two trials ran at the same time on the same GPU.
    def overlap(a, b) -> bool:
        return a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time

    shared = [
        (a, b)
        for i, a in enumerate(runs)
        for b in runs[i + 1 :]
        if a.data.tags["prunetune.cuda_visible_devices"] == b.data.tags["prunetune.cuda_visible_devices"]
        and overlap(a, b)
    ]
    assert shared
    # A logical GPU without CUDA: the trial runs on the CPU; with CUDA it would take the GPU.
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert {r.data.tags["prunetune.device"] for r in runs} == {expected}
