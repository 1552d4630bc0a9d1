"""Jobs the driver runs outside Tune — the reference sweep, scratch baselines, max-drop's re-checks — each a
Ray task with a trial's resources, recorded as an MLflow run of its own ``kind``."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

from prunetune.search.context import SearchContext
from prunetune.search.progress import clock, time_left
from prunetune.search.shared import SharedWork
from prunetune.search.spec import SearchSpec
from prunetune.search.store import TrackingClient
from prunetune.search.tracking import log_params_and_metrics
from prunetune.search.trainable import job_task

from prunetune.config import TrialConfig
from prunetune.libs import ray
from prunetune.records import (
    COMPLETE,
    FAILED,
    KIND_REFERENCE,
    RUNNING,
    TAG_KEPT,
    TAG_KIND,
    TAG_SEARCH,
    TAG_STATUS,
    closing_metrics,
    counted,
    measured,
)

__all__ = ["finish_job_run", "numbers", "open_job_run", "run_jobs", "wait_for_result"]


def launch_job(
    spec: SearchSpec,
    trial: TrialConfig,
    shared: SharedWork | None = None,
    keep_model: bool = False,
    train_outputs: bool = False,
) -> Any:
    """Start ``trial`` as a Ray task with a trial's resources; the ObjectRef of its result."""

    remote = ray.remote(num_cpus=spec.resources.cpus_per_trial, num_gpus=spec.resources.gpus)(job_task)
    return remote.remote(trial, shared, keep_model, train_outputs)


def wait_for_result(ref: Any) -> Any:
    """``ray.get(ref)`` in one-second waits: a stop signal's handler (:mod:`prunetune.stops`) runs between them.
    Inside one long ``ray.get`` a Ctrl-C was seen to wait for minutes (two tries in three)."""
    while not ray.wait([ref], timeout=1.0)[0]:
        pass
    return ray.get(ref)


def open_job_run(ctx: SearchContext, trial: TrialConfig, kind: str, tags: dict[str, str]) -> str:
    """The MLflow run of a job the driver runs outside Tune, status running."""
    seed = trial.training.seed
    if kind == KIND_REFERENCE:
        name = f"reference-lr{trial.training.learning_rate:.2g}-ep{trial.training.epochs}-seed{seed}"
    else:
        name = f"{kind}-{len(trial.kept_layers or ())}-layers-seed{seed}"
    tags = {TAG_KIND: kind, TAG_SEARCH: ctx.spec.name, TAG_STATUS: RUNNING} | tags
    return str(ctx.mlflow.create_run(ctx.experiment, run_name=name, tags=tags).info.run_id)


def finish_job_run(
    mlflow: TrackingClient, run_id: str, trial: TrialConfig, result_of: Callable[[], Any]
) -> dict[str, Any]:
    """Wait for the job (``result_of()``) and record it in ``run_id``: params, metrics per epoch, final status.
    A failed job is recorded as failed, then re-raised."""
    try:
        result = dict(result_of())
    except Exception:
        mlflow.set_tag(run_id, TAG_STATUS, FAILED)
        mlflow.set_terminated(run_id, "FAILED")
        raise
    history = result.pop("history")
    for epoch_metrics in history:
        log_params_and_metrics(mlflow, run_id, {}, numbers(epoch_metrics), int(epoch_metrics.get("epoch", 0)))
    log_params_and_metrics(mlflow, run_id, trial.to_flat(), numbers(result))
    tags = {TAG_KEPT: json.dumps(result["kept_layers"]), TAG_STATUS: COMPLETE}
    log_params_and_metrics(mlflow, run_id, {}, closing_metrics(result), int(result.get("epoch", 0)), tags)
    mlflow.set_terminated(run_id, "FINISHED")
    return result


Job = tuple[TrialConfig, str, dict[str, str]]  # what to train, its run's kind, its run's tags


def run_jobs(
    ctx: SearchContext,
    jobs: list[Job],
    keep_model: bool | Callable[[TrialConfig], bool] = False,
    train_outputs: bool = False,
    progress: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """Run jobs all at once (in parallel where the cluster has room); each job's (run id, result), in order.
    Every run is opened before any job starts, and every one is closed. ``progress``: a line per finished job,
    so minutes of baselines show progress. ``keep_model``: each result carries its trained model's files too (or
    those of the jobs it is true of); ``train_outputs``: its outputs on the training rows (logits, embeddings)."""
    launched, started = [], time.monotonic()
    for trial, kind, tags in jobs:
        run_id = open_job_run(ctx, trial, kind, tags)
        keep = keep_model(trial) if callable(keep_model) else keep_model
        launched.append((run_id, trial, launch_job(ctx.spec, trial, ctx.shared, keep, train_outputs)))
    results, failure = [], None
    for number, (run_id, trial, ref) in enumerate(launched, 1):
        try:
            result = finish_job_run(ctx.mlflow, run_id, trial, functools.partial(wait_for_result, ref))
        except Exception as err:  # the others are still waited for and recorded: nothing left RUNNING
            failure = failure or err
            continue
        results.append((run_id, result))
        if progress:
            t, elapsed, kept = trial.training, time.monotonic() - started, len(result["kept_layers"])
            ctx.say(
                f"  [{clock(elapsed)}] {jobs[number - 1][1]} {number}/{len(launched)}: "
                f"kept {counted(kept, 'layer')}, lr {t.learning_rate:.1e}, {counted(t.epochs, 'epoch')}, "
                f"seed {t.seed}: val_score {result['val_score']:.4f} · "
                f"about {clock(time_left(elapsed, number, len(launched)))} to go"
            )
    if failure is not None:
        raise failure
    return results


def numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric values of ``metrics``, each as it is recorded (:func:`~prunetune.records.measured`)."""
    return {k: measured(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
