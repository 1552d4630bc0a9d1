"""The reference, tuned like the trials: the unpruned model over a learning-rate (x epochs) sweep, each
configuration on every decision seed; the budget is measured against the best configuration's seed mean.

A reference at one fixed learning rate, against trials that each search their own, inflates every answer by
however far it sits below its best (docs/design.md §3: the full MiniLM scores 65.1 at 1e-4 and 67.8 at 2e-4).
Each run is keyed by everything that makes it the same experiment (model, task, data, training, seed), so a
later search with the same settings reuses it instead of training it again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from statistics import mean

from prunetune.search.context import Say, SearchContext
from prunetune.search.decide import TunedReference, best_reference
from prunetune.search.jobs import run_jobs
from prunetune.search.spec import SearchSpec, decision_seeds, reference_epochs, reference_key
from prunetune.search.store import TrackingClient, paged_runs
from prunetune.search.tracking import log_params_and_metrics

from prunetune.config import NOT_DISTILLED, TrialConfig
from prunetune.records import (
    EPSILON,
    KIND_REFERENCE,
    TAG_REFERENCE_KEY,
    TAG_REFERENCE_RUN,
    TAG_REFERENCE_RUNS,
    counted,
    final_value,
    runs_where,
)

__all__ = [
    "Config", "ScreenedSweep", "finished_reference_runs", "past_the_edge", "reference_trials", "score_on_seed",
    "sweep_past_edges", "tuned_reference"
]  # fmt: skip


Config = tuple[float, int]  # a reference configuration: learning rate, epochs


def reference_trials(spec: SearchSpec, learning_rates: Sequence[float] | None = None) -> list[TrialConfig]:
    """Every run of the sweep (or of ``learning_rates`` alone): learning rates x epochs x decision seeds, the
    unpruned model."""
    rates = spec.reference.learning_rates if learning_rates is None else learning_rates
    configs = [(lr, epochs) for lr in rates for epochs in reference_epochs(spec)]
    return config_trials(spec, configs, decision_seeds(spec))


def config_trials(spec: SearchSpec, configs: Sequence[Config], seeds: Sequence[int]) -> list[TrialConfig]:
    """The unpruned model at each of ``configs`` on each of ``seeds``."""
    base = spec.trial.with_overrides(
        {"drop.strategy": "none", "kept_layers": None, "variant": "pruned"} | NOT_DISTILLED
    )
    return [
        base.with_overrides({"training.learning_rate": lr, "training.epochs": epochs, "training.seed": seed})
        for lr, epochs in configs
        for seed in seeds
    ]


RunKey = tuple[float, int, int]  # a reference run: learning rate, epochs, seed


def worth_confirming(first_means: Mapping[Config, float], margin: float) -> list[Config]:
    """The configurations that may still be the best: mean on the screening seeds within ``margin`` of the
    best mean there. One that failed there (NaN) is not."""
    finite = {config: m for config, m in first_means.items() if not math.isnan(m)}
    if not finite:
        return []
    best = max(finite.values())
    return sorted(config for config, m in finite.items() if m >= best - margin - EPSILON)


class ScreenedSweep:
    """The sweep's training step, for :func:`sweep_past_edges`: called with learning rates, it trains them and
    returns the best configuration over every one trained so far on all ``seeds``.

    With ``screen_seeds`` (fewer than the seeds), each configuration trains on the first ``screen_seeds`` and on
    the rest only while :func:`worth_confirming` keeps it: a rate far below the best on those seeds cannot
    become the reference, and the rest of its seeds would buy nothing. ``train(configs, seeds)`` trains (or
    reuses) those runs and returns their scores."""

    def __init__(
        self,
        epochs: Sequence[int],
        seeds: Sequence[int],
        screen_seeds: int | None,
        margin: float,
        train: Callable[[list[Config], list[int]], Mapping[RunKey, float]],
        say: Say,
    ) -> None:
        self.epochs, self.seeds, self.margin, self._train, self._say = list(epochs), list(seeds), margin, train, say
        screened = screen_seeds is not None and screen_seeds < len(self.seeds)
        self.first = self.seeds[:screen_seeds] if screened else self.seeds
        self.scores: dict[RunKey, float] = {}
        self.screened_out: list[Config] = []

    def on(self, config: Config, seeds: Sequence[int]) -> list[float]:
        """``config``'s scores on those of ``seeds`` it was trained on."""
        return [self.scores[(*config, seed)] for seed in seeds if (*config, seed) in self.scores]

    def _trained(self, configs: list[Config], seeds: list[int]) -> None:
        if configs:
            self.scores.update(self._train(configs, seeds))

    def complete(self, config: Config) -> bool:
        """Trained on every seed: one that may be the reference."""
        return len(self.on(config, self.seeds)) == len(self.seeds)

    def __call__(self, rates: list[float]) -> TunedReference:
        self._trained([(lr, e) for lr in rates for e in self.epochs], self.first)
        if self.first != self.seeds:
            tried = sorted({(lr, epochs) for lr, epochs, _ in self.scores})
            means = {config: mean(self.on(config, self.first)) for config in tried}
            keep = worth_confirming(means, self.margin)
            for lr, epochs in (c for c in tried if c not in keep and c not in self.screened_out):
                self.screened_out.append((lr, epochs))
                m, margin = means[(lr, epochs)], self.margin * 100
                found = (
                    "failed on one"
                    if math.isnan(m)
                    else f"mean val_score {m:.4f}, over {margin:g} points below the best"
                )
                self._say(
                    f"reference: lr {lr:.1e}, {counted(epochs, 'epoch')} on seeds {self.first}: {found}; "
                    "not trained on the rest"
                )
            self._trained([c for c in keep if not self.complete(c)], self.seeds[len(self.first) :])
        complete = [(*key, score) for key, score in self.scores.items() if self.complete(key[:2])]
        return best_reference(complete)


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
    runs: dict[RunKey, str] = {}  # (lr, epochs, seed) -> run id

    def train(configs: list[Config], on: list[int]) -> dict[RunKey, float]:
        trials = config_trials(spec, configs, on)
        scores = {}
        for t, (run_id, score) in zip(trials, run_or_reuse(ctx, trials), strict=True):
            key = (t.training.learning_rate, t.training.epochs, t.training.seed)
            runs[key], scores[key] = run_id, score
        return scores

    reference = spec.reference
    sweep = ScreenedSweep(reference_epochs(spec), seeds, reference.screen_seeds, reference.screen_margin, train, say)
    best, rates = sweep_past_edges(reference.learning_rates, reference.edge_steps, sweep, say)
    best_runs = [runs[(best.learning_rate, best.epochs, seed)] for seed in seeds]
    for lr, epochs in sorted({(lr, e) for lr, e, _ in runs}):
        done = sweep.on((lr, epochs), seeds)
        marker = "  <- best" if (lr, epochs) == (best.learning_rate, best.epochs) else ""
        say(
            f"reference: lr {lr:.1e}, {counted(epochs, 'epoch')}: mean val_score {mean(done):.4f} "
            f"over {len(done)} seed(s){marker}"
        )
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
    done = finished_reference_runs(ctx.mlflow, ctx.experiment, keys)
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


def finished_reference_runs(mlflow: TrackingClient, experiment: str, keys: list[str]) -> dict[str, tuple[str, float]]:
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
