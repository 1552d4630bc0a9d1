"""The reference, tuned like the trials: the unpruned model over a learning-rate (x epochs) sweep, each
configuration on every decision seed; the budget is measured against the best configuration's seed mean.

A reference at one fixed learning rate, against trials that each search their own, inflates every answer by
however far it sits below its best (docs/design.md §3: the full MiniLM scores 65.1 at 1e-4 and 67.8 at 2e-4).
Each run is keyed by everything that makes it the same experiment (model, task, data, training, seed), so a
later search with the same settings reuses it instead of training it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from prunetune.search.context import Say, SearchContext
from prunetune.search.decide import TunedReference, best_reference
from prunetune.search.jobs import run_jobs
from prunetune.search.spec import SearchSpec, decision_seeds, reference_epochs, reference_key
from prunetune.search.store import TrackingClient, paged_runs
from prunetune.search.tracking import log_params_and_metrics
from prunetune.trainables.config import NOT_DISTILLED, TrialConfig

from prunetune.records import (
    KIND_REFERENCE,
    TAG_REFERENCE_KEY,
    TAG_REFERENCE_RUN,
    TAG_REFERENCE_RUNS,
    final_value,
    runs_where,
)


def reference_trials(spec: SearchSpec, learning_rates: Sequence[float] | None = None) -> list[TrialConfig]:
    """Every run of the sweep (or of ``learning_rates`` alone): learning rates x epochs x decision seeds, the
    unpruned model."""
    base = spec.trial.with_overrides(
        {"drop.strategy": "none", "kept_layers": None, "variant": "pruned"} | NOT_DISTILLED
    )
    return [
        base.with_overrides({"training.learning_rate": lr, "training.epochs": epochs, "training.seed": seed})
        for lr in (spec.reference.learning_rates if learning_rates is None else learning_rates)
        for epochs in reference_epochs(spec)
        for seed in decision_seeds(spec)
    ]


def past_the_edge(learning_rates: Sequence[float], best: float) -> float | None:
    """The learning rate to try next when ``best`` is the highest (x2) or the lowest (/2) of two or more swept
    rates; None when it lies inside the sweep, or when the sweep is one rate (a reference the user fixed)."""
    rates = sorted(set(learning_rates))
    if len(rates) < 2:
        return None
    if best == rates[-1]:
        return best * 2
    if best == rates[0]:
        return best / 2
    return None


def sweep_past_edges(
    learning_rates: Sequence[float], steps: int, train: Callable[[list[float]], TunedReference], say: Say
) -> tuple[TunedReference, list[float]]:
    """The sweep, then one rate an octave past its edge while the best sits there, at most ``steps`` times.
    ``train(rates)`` trains those rates (on every decision seed) and returns the best of every rate trained so
    far. Returns that best and the rates tried: the best is at their edge still only if ``steps`` ran out."""
    tried = list(learning_rates)
    best = train(list(tried))  # a copy: ``tried`` grows below
    for _ in range(steps):
        beyond = past_the_edge(tried, best.learning_rate)
        if beyond is None:
            break
        say(f"reference: lr {best.learning_rate:.1e} is the best and the sweep's edge: trying lr {beyond:.1e} too")
        tried.append(beyond)
        best = train([beyond])
    return best, tried


def tuned_reference(ctx: SearchContext) -> TunedReference:
    """Run (or reuse) the sweep, record which configuration won on the search's run, and return it."""
    spec, mlflow, parent_run_id, say = ctx.spec, ctx.mlflow, ctx.parent, ctx.say
    if spec.budget.reference_score is not None:
        say(f"reference: the given score {spec.budget.reference_score:.4f} (budget.reference_score); none trained")
        log_params_and_metrics(mlflow, parent_run_id, {}, {"reference_score": spec.budget.reference_score})
        trial = spec.trial.training
        return TunedReference(trial.learning_rate, trial.epochs, {}, given=spec.budget.reference_score)

    seeds = decision_seeds(spec)
    say(
        f"reference: the unpruned {spec.trial.model} at learning rates {list(spec.reference.learning_rates)} x "
        f"epochs {list(reference_epochs(spec))} x seeds {seeds}"
    )
    runs: dict[tuple[float, int, int], tuple[str, float]] = {}  # (lr, epochs, seed) -> (run id, val_score)

    def train(rates: list[float]) -> TunedReference:
        trials = reference_trials(spec, rates)
        done = run_or_reuse(ctx, trials)
        for t, run in zip(trials, done, strict=True):
            runs[(t.training.learning_rate, t.training.epochs, t.training.seed)] = run
        return best_reference([(lr, epochs, seed, score) for (lr, epochs, seed), (_, score) in runs.items()])

    best, rates = sweep_past_edges(spec.reference.learning_rates, spec.reference.edge_steps, train, say)
    best_runs = [runs[(best.learning_rate, best.epochs, seed)][0] for seed in seeds]
    for lr, epochs in sorted({(lr, e) for lr, e, _ in runs}):
        mean = sum(runs[(lr, epochs, s)][1] for s in seeds) / len(seeds)
        marker = "  <- best" if (lr, epochs) == (best.learning_rate, best.epochs) else ""
        say(f"reference: lr {lr:.1e}, {epochs} epochs: mean val_score {mean:.4f} over {len(seeds)} seed(s){marker}")
    if past_the_edge(rates, best.learning_rate) is not None:
        say(
            f"reference: warning: lr {best.learning_rate:.1e}, the best, is still the edge of the learning rates tried "
            f"({spec.reference.edge_steps} step(s) past the sweep): the reference may not be tuned, and every drop "
            "is measured against it; widen reference.learning_rates or raise reference.edge_steps"
        )
    mlflow.set_tag(parent_run_id, TAG_REFERENCE_RUN, best_runs[0])
    mlflow.set_tag(parent_run_id, TAG_REFERENCE_RUNS, json.dumps(best_runs))
    log_params_and_metrics(
        mlflow,
        parent_run_id,
        {"reference.learning_rate": str(best.learning_rate), "reference.epochs": str(best.epochs)},
        {"reference_score": best.score},
    )
    return best


def run_or_reuse(ctx: SearchContext, trials: list[TrialConfig]) -> list[tuple[str, float]]:
    """(run id, val_score) of each reference job: a finished run with the same key is reused, the rest are
    trained, all at once."""
    keys = [reference_key(trial) for trial in trials]
    done = _finished_reference_runs(ctx.mlflow, ctx.experiment, keys)
    todo = [trial for trial, key in zip(trials, keys, strict=True) if key not in done]
    ctx.say(f"reference: {len(trials) - len(todo)} runs reused, {len(todo)} to train")
    jobs = [(trial, KIND_REFERENCE, {TAG_REFERENCE_KEY: reference_key(trial)}) for trial in todo]
    for (run_id, result), trial in zip(run_jobs(ctx, jobs), todo, strict=True):
        done[reference_key(trial)] = (run_id, float(result["val_score"]))
    return [done[key] for key in keys]


def score_on_seed(ctx: SearchContext, reference: TunedReference, seed: int) -> float:
    """The tuned reference's configuration trained on one more seed (the search's own, to pair the trials'
    scores with): reused when it exists. A given reference score is that score on every seed."""
    if reference.given is not None:
        return reference.given
    base = reference_trials(ctx.spec)[0]
    trial = base.with_overrides(
        {"training.learning_rate": reference.learning_rate, "training.epochs": reference.epochs, "training.seed": seed}
    )
    ((_, score),) = run_or_reuse(ctx, [trial])
    return float(score)


def _finished_reference_runs(mlflow: TrackingClient, experiment: str, keys: list[str]) -> dict[str, tuple[str, float]]:
    """Key -> (run id, val_score) of the finished reference runs with these keys. MLflow filters tags only by
    one value at a time, so every finished reference run of the experiment is listed (a page per 1,000)."""
    wanted = set(keys)
    query = runs_where("FINISHED", kind=KIND_REFERENCE)
    found: dict[str, tuple[str, float]] = {}
    for run in paged_runs(mlflow, [experiment], query):
        key, score = run.data.tags.get(TAG_REFERENCE_KEY), final_value(run.data.metrics, "val_score")
        if key in wanted and score is not None:
            found.setdefault(key, (run.info.run_id, float(score)))
    return found
