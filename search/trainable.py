"""The Ray Tune trainable: one trial = one :func:`prunetune.trainables.jobs.run_job`, reported per epoch."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

from prunetune.search.shared import SharedWork
from prunetune.search.space import OBJECTIVE, budget_excess, objective
from prunetune.search.spec import SearchSpec
from prunetune.trainables.jobs import run_job
from prunetune.trainables.models import pick_device
from prunetune.trainables.training import Checkpointing

from prunetune.config import TrialConfig
from prunetune.libs import ray, torch, transformers, tune
from prunetune.records import drop, measured, within

__all__ = [
    "ALREADY_RECORDED", "DERIVED", "MODEL_FILES", "REPORTED", "ignore_exit_in_callbacks", "job_task", "run_trial"
]  # fmt: skip


# What a trial reports to Tune each epoch: numbers only (Tune and MLflow want scalars).
REPORTED = (
    "epoch",
    "train_loss",
    "val_score",
    "test_score",
    "val_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "val_spearman",
    "test_spearman",
)

# Derived per epoch by the trainable from the job's metrics and the budget.
DERIVED = ("parameters", "latency_ms", "drop", "budget_excess", "feasible", "layers_kept", "layers_dropped", OBJECTIVE)

# Marks a result that a resumed trial reports from its MLflow record instead of training again: Tune and the
# searcher learn it, the recorder does not log it twice.
ALREADY_RECORDED = "already_recorded"


def run_trial(
    config: dict[str, Any],
    spec: SearchSpec,
    reference_score: float,
    num_layers: int,
    shared: SharedWork | None = None,
    recorded: dict[str, dict[str, float]] | None = None,
) -> None:
    """Tune function trainable; ``spec``, ``reference_score`` and the work ``shared`` by the whole search (the
    data, the teacher's outputs) come through ``tune.with_parameters`` (Ray's object store). ``recorded``: on
    resume, the final results of trials MLflow holds as finished, which Tune's last snapshot showed running."""

    finished = (recorded or {}).get(tune.get_context().get_trial_id())
    if finished is not None:  # trained and recorded before the driver died: not trained again
        tune.report(finished | {ALREADY_RECORDED: 1.0})
        return
    _quiet()

    trial = TrialConfig.from_dict(config["trial"])
    assert trial.kept_layers is not None  # decided on the driver by BudgetSearch
    kept = len(trial.kept_layers)
    dropped = num_layers - kept
    # Recorded per trial: where it ran, and on which of the GPUs Ray assigned it (CUDA_VISIBLE_DEVICES).
    placement = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "device": pick_device(trial.training.device),
        "torch_threads": torch.get_num_threads(),
    }

    def report(metrics: dict[str, Any]) -> None:
        if "epoch" not in metrics:  # the NLI phase of a sentence task: progress only, not the objective
            return
        excess = budget_excess(spec, reference_score, metrics["val_score"])
        row: dict[str, Any] = {k: float(metrics[k]) for k in (*REPORTED, "parameters", "latency_ms") if k in metrics}
        row |= {
            "drop": drop(reference_score, metrics["val_score"], spec.budget.relative),  # in the spec's unit
            "budget_excess": excess,
            "feasible": float(within(excess, 0.0)),
            "layers_kept": float(kept),
            "layers_dropped": float(dropped),
            OBJECTIVE: objective(dropped, metrics["val_score"], excess),
        } | placement
        # The training state saved after this epoch, if one was due (``checkpoint_every_s``; never after the
        # last), is the trial's checkpoint: a retry continues from it. Each costs a copy to storage and a
        # snapshot of the experiment (benchmark 3).
        row = {k: measured(v) if isinstance(v, float) else v for k, v in row.items()}  # what Optuna and MLflow get
        saved = checkpointing.saved_epoch == metrics["epoch"]
        tune.report(row, checkpoint=tune.Checkpoint.from_directory(work) if saved else None)

    previous = tune.get_checkpoint()
    with tempfile.TemporaryDirectory(prefix="prunetune-trial-") as work:
        resume_from = previous.to_directory() if previous is not None else None
        checkpointing = Checkpointing(work, resume_from, every_s=spec.checkpoint_every_s)
        run_job(trial, report, checkpointing=checkpointing, **_shared_inputs(trial, shared))


# The result key of a job asked to keep its model: the saved model's files (relative path -> bytes). They
# travel back through Ray's object store, so the driver gets them whichever node trained the model.
MODEL_FILES = "model_files"


def job_task(
    trial: TrialConfig, shared: SharedWork | None = None, keep_model: bool = False, train_outputs: bool = False
) -> dict[str, Any]:
    """A whole job as a Ray task (the reference, the teacher, seed re-checks, the answer's model): it runs where
    trials run, with their resources. ``keep_model``: the trained model comes back too (:data:`MODEL_FILES`);
    ``train_outputs``: its outputs on the training rows (:data:`TRAIN_OUTPUTS`), to teach the trials."""
    from pathlib import Path

    _quiet()
    inputs = _shared_inputs(trial, shared)
    if not keep_model:
        return dict(run_job(trial, train_outputs=train_outputs, **inputs))
    with tempfile.TemporaryDirectory(prefix="prunetune-model-") as saved:
        result = dict(run_job(trial, output_dir=saved, train_outputs=train_outputs, **inputs))
        files = {str(p.relative_to(saved)): p.read_bytes() for p in sorted(Path(saved).rglob("*")) if p.is_file()}
    return result | {MODEL_FILES: files}


def _shared_inputs(trial: TrialConfig, shared: SharedWork | None) -> dict[str, Any]:
    """run_job's inputs from the search's shared work: the prepared data, and the teacher's outputs for a
    distilled job (read from the object store only then)."""
    if shared is None:
        return {}
    return {"prepared": shared.prepared(), "teacher": shared.teacher_outputs() if trial.distill.on else None}


def _quiet() -> None:
    sys.unraisablehook = ignore_exit_in_callbacks
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # progress, not load reports
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def ignore_exit_in_callbacks(unraisable: Any) -> None:
    """A worker's hook for exceptions Python cannot raise (in a weakref callback, a ``__del__``): the exit Ray
    asks of a worker it no longer needs goes unshown, the rest as Python shows it.

    Ray ends a trial's process after the search, or any worker when the driver leaves, with SIGTERM, which its
    handler turns into ``SystemExit`` wherever the worker is. Landing in a weakref callback, the exit cannot be
    raised there, and Python printed "Exception ignored in ... Traceback ... SystemExit: 1" to the worker's
    stderr, which Ray forwards to the user's terminal under a finished search. The exit itself is unchanged:
    an ignored one was never raised, and Ray kills the process after its grace period as before."""
    if isinstance(unraisable.exc_value, SystemExit):
        return
    sys.__unraisablehook__(unraisable)
