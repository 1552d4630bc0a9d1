"""How many trials run at once: gpus_per_trial auto and an unset max_concurrent, on hand-made clusters."""

from __future__ import annotations

import pytest
from prunetune.search.packing import gpu_share, resolve_resources, trials_at_once, trials_per_gpu
from prunetune.search.spec import load_spec

from prunetune.config import ConfigError

GiB = 2**30
H100_NODE = {"CPU": 16.0, "GPU": 1.0}
CPU_NODE = {"CPU": 8.0}


def test_a_gpu_holds_what_its_memory_and_its_share_of_the_node_cpus_allow() -> None:
    # MiniLM's measured ~2.2 GiB on an 80 GiB H100: memory would allow 32; the node's 16 CPUs allow 16.
    assert trials_per_gpu(16, 1, 1, 80 * GiB, int(2.2 * GiB)) == 16
    assert trials_per_gpu(64, 1, 1, 80 * GiB, 10 * GiB) == 7  # 0.9 x 80 / 10: memory decides
    assert trials_per_gpu(16, 4, 1, 24 * GiB, 2 * GiB) == 4  # four GPUs share the node's CPUs
    assert trials_per_gpu(16, 1, 1, None, None) == 16  # no CUDA to measure: CPUs alone
    assert trials_per_gpu(2, 1, 4, 80 * GiB, 2 * GiB) == 1  # never less than one


def test_a_share_is_what_ray_accepts_and_fits_its_count() -> None:
    assert gpu_share(1) == 1.0 and gpu_share(2) == 0.5 and gpu_share(3) == 0.3333
    assert all(k * gpu_share(k) <= 1.0 for k in range(1, 40))


def test_trials_at_once_sums_what_each_live_node_holds() -> None:
    assert trials_at_once([H100_NODE, CPU_NODE], cpus_per_trial=2, gpus_per_trial=0) == 12
    assert trials_at_once([H100_NODE, CPU_NODE], cpus_per_trial=1, gpus_per_trial=0.25) == 4  # CPU node: no GPU
    assert trials_at_once([{"CPU": 1.0}], cpus_per_trial=4, gpus_per_trial=0) == 1


def test_auto_resolves_from_the_probe_and_max_concurrent_follows_the_cluster() -> None:
    spec = load_spec(None, {"resources.gpus_per_trial": "auto", "num_trials": 40})
    said: list[str] = []
    probed = resolve_resources(spec, [H100_NODE, CPU_NODE], lambda: (int(2.2 * GiB), 80 * GiB), said.append)
    assert probed.resources.gpus_per_trial == 0.0625 and probed.max_concurrent == 16
    assert "16 trial(s) per GPU" in said[0] and "2.20 GiB" in said[0]
    unmeasured = resolve_resources(spec, [{"CPU": 4.0, "GPU": 2.0}], lambda: None, said.append)
    assert unmeasured.resources.gpus_per_trial == 0.5 and unmeasured.max_concurrent == 4
    assert "CPUs alone" in said[-1]
    no_gpu = resolve_resources(spec, [CPU_NODE], lambda: pytest.fail("no GPU: nothing to probe"), said.append)
    assert no_gpu.resources.gpus_per_trial == 0.0 and no_gpu.max_concurrent == 8
    assert "no GPU" in said[-1]


def test_what_the_spec_sets_is_kept_and_the_probe_not_run() -> None:
    never = lambda: pytest.fail("gpus_per_trial is set: nothing to probe")  # noqa: E731
    spec = load_spec(None, {"resources.gpus_per_trial": 0.5, "max_concurrent": 3})
    assert resolve_resources(spec, [H100_NODE], never, print) == spec
    few = load_spec(None, {"num_trials": 2})
    assert resolve_resources(few, [CPU_NODE], never, print).max_concurrent == 2  # no more than the trials
    scaling = load_spec(None, {"resources.autoscaling": True, "num_trials": 20})
    assert resolve_resources(scaling, [CPU_NODE], never, print).max_concurrent == 20  # nodes come on demand


def test_gpus_per_trial_takes_a_share_whole_gpus_or_auto() -> None:
    assert load_spec(None, {"resources.gpus_per_trial": "auto"}).resources.gpus_per_trial == "auto"
    assert load_spec(None, {"resources.gpus_per_trial": "2"}).resources.gpus == 2.0
    for bad in ("many", "1.5", "-0.5"):
        with pytest.raises(ConfigError, match="gpus_per_trial"):
            load_spec(None, {"resources.gpus_per_trial": bad})
    with pytest.raises(ValueError, match="resolved by the search"):
        _ = load_spec(None, {"resources.gpus_per_trial": "auto"}).resources.gpus
    assert load_spec(None, {"max_concurrent": "null"}).max_concurrent is None
