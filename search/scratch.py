"""The scratch baselines: at each depth of ``spec.scratch_layers``, one model of the same architecture
trained from random init (or the small pre-trained model ``trial.scratch_model`` names) — "does pruning
beat training a small model from scratch?"."""

from __future__ import annotations

from prunetune.search.context import SearchContext
from prunetune.search.decide import TunedReference
from prunetune.search.jobs import run_jobs

from prunetune.config import NOT_DISTILLED
from prunetune.records import (
    KIND_SCRATCH,
    PARENT,
    kept_layers,
    runs_where,
)

__all__ = ["scratch_baselines"]


def scratch_baselines(ctx: SearchContext, num_layers: int, reference: TunedReference) -> None:
    """Train the depths this search has not trained yet (a resumed search trains none twice), at the tuned
    reference's learning rate and epochs: a baseline at an untuned rate would flatter pruning (random init
    at the trial config's default 5e-5 stays at chance on the demo's headlines)."""
    spec = ctx.spec
    done = {
        len(kept_layers(run.data.tags) or ())
        for run in ctx.mlflow.search_runs(
            [ctx.experiment], filter_string=runs_where("FINISHED", parent=ctx.parent, kind=KIND_SCRATCH)
        )
    }
    depths = [depth for depth in spec.scratch_layers if depth not in done]
    if not depths:
        return
    ctx.say(f"scratch baselines: {depths} of {num_layers} layers, from random init")
    tuned = {"training.learning_rate": reference.learning_rate, "training.epochs": reference.epochs}
    trials = [
        spec.trial.with_overrides(
            {"drop.strategy": "none", "kept_layers": list(range(depth)), "variant": "scratch"} | tuned | NOT_DISTILLED
        )
        for depth in depths
    ]
    jobs = [(trial, KIND_SCRATCH, {PARENT: ctx.parent}) for trial in trials]
    run_jobs(ctx, jobs)  # a line per finished baseline, with an ETA
