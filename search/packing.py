"""How many trials run at once: ``gpus_per_trial: auto`` and an unset ``max_concurrent``, from the cluster.

The encoders prunetune prunes are small for a modern GPU (MiniLM trains in about 2 GB), so one trial per GPU
leaves it idle. ``auto`` packs as many trials per GPU as

* **memory** allows: a probe trains the *unpruned* model (the largest any trial trains) for a few steps on
  one GPU, with the spec's batch size at its full ``max_length``, and reads the GPU's memory in use at its
  peak (the CUDA context and PyTorch's cached blocks included). ``MEMORY_HEADROOM`` of the GPU is shared out
  by that peak;
* and the **CPUs** allow: a node's CPUs over ``cpus_per_trial``, spread over its GPUs.

Where Ray lists GPUs but the probe finds no CUDA (logical GPUs, as the tests declare), memory is no limit and
the CPUs alone decide. ``max_concurrent`` left unset runs as many trials as the live nodes hold at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prunetune.search.jobs import wait_for_result
from prunetune.search.spec import SearchSpec
from prunetune.trainables.memory import training_peak

from prunetune.libs import ray

__all__ = ["MEMORY_HEADROOM", "gpu_share", "memory_probe", "resolve_resources", "trials_at_once", "trials_per_gpu"]


# The share of a GPU's memory that trials may fill, by their probed peak: the rest absorbs fragmentation and
# what a trial's peak may exceed the probe's by (a pruned model's peak is lower, never higher).
MEMORY_HEADROOM = 0.9

Nodes = list[dict[str, float]]  # each live node's resources, as Ray lists them


def trials_per_gpu(
    node_cpus: float, node_gpus: float, cpus_per_trial: float, gpu_memory: int | None, trial_peak: int | None
) -> int:
    """Trials one GPU of a node holds: its share of the node's CPUs, and of its memory when measured."""
    fits = [math.floor(node_cpus / node_gpus / cpus_per_trial + 1e-9)]
    if gpu_memory is not None and trial_peak is not None:
        fits.append(math.floor(MEMORY_HEADROOM * gpu_memory / trial_peak))
    return max(1, min(fits))


def gpu_share(per_gpu: int) -> float:
    """A trial's share of a GPU for ``per_gpu`` trials per GPU, rounded down to the 4 decimals Ray keeps."""
    return math.floor(10_000 / per_gpu) / 10_000


def trials_at_once(nodes: Nodes, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials the live nodes hold at once (at least one)."""
    total = 0
    for node in nodes:
        fits = [math.floor(node.get("CPU", 0) / cpus_per_trial + 1e-9)]
        if gpus_per_trial > 0:
            fits.append(math.floor(node.get("GPU", 0) / gpus_per_trial + 1e-9))
        total += min(fits)
    return max(1, total)


def resolve_resources(
    spec: SearchSpec, nodes: Nodes, probe: Callable[[], tuple[int, int] | None], say: Callable[[str], None]
) -> SearchSpec:
    """``spec`` with ``gpus_per_trial`` and ``max_concurrent`` as numbers. ``probe()`` measures a trial's
    memory peak on a GPU: (peak bytes, GPU bytes), or None without CUDA; called only for ``auto``."""
    resources = spec.resources
    if resources.gpus_per_trial == "auto":
        gpu_nodes = [node for node in nodes if node.get("GPU", 0) > 0]
        if not gpu_nodes:
            share = 0.0
            say("gpus_per_trial auto: the cluster has no GPU, trials run on CPUs")
        else:
            measured = probe()
            gpu_memory, peak = measured[1] if measured else None, measured[0] if measured else None
            per_gpu = min(
                trials_per_gpu(node["CPU"], node["GPU"], resources.cpus_per_trial, gpu_memory, peak)
                for node in gpu_nodes
            )
            share = gpu_share(per_gpu)
            said = "no CUDA, so by CPUs alone" if peak is None else f"a trial's peak {peak / 2**30:.2f} GiB"
            say(f"gpus_per_trial auto: {per_gpu} trial(s) per GPU ({said})")
        spec = spec.with_overrides({"resources.gpus_per_trial": share})
    if spec.max_concurrent is None:
        # A cluster that adds nodes holds what is asked: the autoscaler starts nodes for waiting trials.
        at_once = (
            spec.trials
            if resources.autoscaling
            else trials_at_once(nodes, resources.cpus_per_trial, spec.resources.gpus)
        )
        spec = spec.with_overrides({"max_concurrent": min(at_once, spec.trials)})
    return spec


def memory_probe(spec: SearchSpec) -> tuple[int, int] | None:
    """Run :func:`~prunetune.trainables.memory.training_peak` as a Ray task on one whole GPU."""

    task = ray.remote(num_cpus=spec.resources.cpus_per_trial, num_gpus=1)(training_peak)

    found: tuple[int, int] | None = wait_for_result(task.remote(spec.trial))
    return found
