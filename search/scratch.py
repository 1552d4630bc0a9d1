"""The scratch baselines: at each depth of ``spec.scratch_layers``, one model of the same architecture
trained from random init (or the small pre-trained model ``trial.scratch_model`` names) — "does pruning
beat training a small model from scratch?"."""

from __future__ import annotations

from typing import Any

from prunetune.search.decide import TunedReference
from prunetune.search.jobs import run_jobs
from prunetune.search.spec import SearchSpec
from prunetune.trainables.config import NOT_DISTILLED

from prunetune.records import (
    KIND_SCRATCH,
    PARENT,
    kept_layers,
    runs_where,
)


def scratch_baselines(
    spec: SearchSpec,
    mlflow: Any,
    experiment: str,
    parent_run_id: str,
    num_layers: int,
    reference: TunedReference,
    say: Any,
    shared: Any,
) -> None:
    """Train the depths this search has not trained yet (a resumed search trains none twice), at the tuned
    reference's learning rate and epochs: a baseline at an untuned rate would flatter pruning (random init
    at the trial config's default 5e-5 stays at chance on the demo's headlines)."""
    done = {
        len(kept_layers(run.data.tags) or ())
        for run in mlflow.search_runs(
            [experiment],
            filter_string=runs_where("FINISHED", parent=parent_run_id, kind=KIND_SCRATCH),
        )
    }
    depths = [depth for depth in spec.scratch_layers if depth not in done]
    if not depths:
        return
    say(f"scratch baselines: {depths} of {num_layers} layers, from random init")
    tuned = {"training.learning_rate": reference.learning_rate, "training.epochs": reference.epochs}
    trials = [
        spec.trial.with_overrides(
            {"drop.strategy": "none", "kept_layers": list(range(depth)), "variant": "scratch"} | tuned | NOT_DISTILLED
        )
        for depth in depths
    ]
    jobs = [(trial, KIND_SCRATCH, {PARENT: parent_run_id}) for trial in trials]
    run_jobs(spec, mlflow, experiment, jobs, shared, say)  # a line per finished baseline, with an ETA
