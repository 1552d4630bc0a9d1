"""The maximum droppable layers under each tolerance, with what achieves it, re-checked over seeds.

How it needs far fewer trials than the exhaustive grid (every strategy x block x learning rate):

1. One constrained search at the loosest tolerance: Optuna's TPE, told the budget as a constraint,
   concentrates on the deepest drops that stay feasible instead of sweeping every depth, and ASHA
   stops hopeless trials after their first epoch.
2. The same trials answer every tighter tolerance: a trial within 1 % is also within 2 % and 3 %.
3. Only the finalists — the deepest drop within each tolerance — are re-trained over extra seeds,
   with a reference per seed. A finalist whose mean drop over the seeds exceeds the tolerance gives way
   to the next candidate (seed noise moves degraded configs by several points; DESIGN.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean
from typing import Any

from prunetune.search.spec import SearchSpec
from prunetune.trainables.config import TrialConfig


@dataclass(frozen=True)
class Answer:
    tolerance: float
    layers_dropped: int
    strategy: str
    kept_layers: list[int]
    learning_rate: float
    epochs: int
    score: float  # mean validation score over the seeds
    drop: float  # mean drop vs the seed-matched reference
    seeds: list[int]


def candidates(spec: SearchSpec, runs: list[Any], reference: float, tolerance: float) -> list[dict[str, Any]]:
    """Complete trials within ``tolerance`` of the reference, deepest drop first, ties by score."""
    rows = []
    for run in runs:
        if (
            run.data.tags.get("prunetune.kind", "trial") != "trial"
            or run.data.tags.get("prunetune.status") != "complete"
        ):
            continue
        score = run.data.metrics.get("final_val_score")
        if score is None:
            continue
        drop = reference - score
        if spec.budget.relative:
            drop /= reference
        if drop <= tolerance:
            config = TrialConfig.from_flat(run.data.params)
            rows.append({"config": config, "score": score, "drop": drop})
    rows.sort(key=lambda r: (-(len(_all(r["config"])) - len(r["config"].kept_layers)), -r["score"]))
    return rows


def _all(config: TrialConfig) -> list[int]:
    from prunetune.search.runner import model_num_layers

    return list(range(model_num_layers(config.model)))


def recheck(
    spec: SearchSpec, candidate: dict[str, Any], seeds: list[int], mlflow: Any, experiment: str, parent_run_id: str
) -> tuple[float, float, list[int]]:
    """Mean score and mean drop of a candidate over its own seed plus ``seeds`` (each with its reference).
    Every re-check job is an MLflow run under the search (``prunetune.kind`` recheck / recheck-reference)."""
    import ray
    from prunetune.search.names import PARENT
    from prunetune.search.runner import finish_job_run, launch_job, open_job_run

    config: TrialConfig = candidate["config"]
    scores, drops = [candidate["score"]], [candidate["drop"]]
    extra = [s for s in seeds if s != config.training.seed]
    jobs = []
    for seed in extra:  # all launched at once: they run in parallel where the cluster has room
        pruned = config.with_overrides({"training.seed": seed})
        reference = spec.trial.with_overrides({"training.seed": seed, "drop.strategy": "none", "kept_layers": None})
        pair = []
        for kind, trial in (("recheck", pruned), ("recheck-reference", reference)):
            run_id = open_job_run(spec, mlflow, experiment, trial, kind, {PARENT: parent_run_id})
            pair.append((run_id, trial, launch_job(spec, trial)))
        jobs.append(pair)
    for pair in jobs:
        (pruned_run, pruned, pruned_ref), (reference_run, reference, reference_ref) = pair
        score = finish_job_run(mlflow, pruned_run, pruned, lambda r=pruned_ref: ray.get(r))["val_score"]
        ref = finish_job_run(mlflow, reference_run, reference, lambda r=reference_ref: ray.get(r))["val_score"]
        drop = (ref - score) / ref if spec.budget.relative else ref - score
        scores.append(score)
        drops.append(drop)
    return mean(scores), mean(drops), [config.training.seed, *extra]


def max_drop(
    spec: SearchSpec, tolerances: list[float], seeds: list[int], *, resume: bool = False, say: Any = print
) -> list[Answer | None]:
    """Search once at the loosest tolerance, then answer each tolerance, finalists re-checked over ``seeds``."""
    from mlflow.tracking import MlflowClient
    from prunetune.search.runner import run_search
    from prunetune.search.store import experiment_id, paged_runs

    loosest = spec.with_overrides({"budget.tolerance": max(tolerances)})
    result = run_search(loosest, resume=resume, say=say)
    client = MlflowClient(loosest.resolved_tracking_uri())
    experiment = experiment_id(client, loosest.name)
    runs = list(paged_runs(client, [experiment], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"))
    answers: list[Answer | None] = []
    checked: dict[tuple, tuple[float, float, list[int]]] = {}
    for tolerance in sorted(tolerances):
        answer = None
        for candidate in candidates(loosest, runs, result.reference_score, tolerance):
            config = candidate["config"]
            key = (config.kept_layers, config.training.learning_rate, config.training.epochs)
            if key not in checked:
                say(f"re-checking {config.drop.strategy} kept {list(config.kept_layers)} over seeds {seeds}")
                checked[key] = recheck(loosest, candidate, seeds, client, experiment, result.parent_run_id)
            score, drop, used = checked[key]
            if drop <= tolerance:
                answer = Answer(
                    tolerance,
                    len(_all(config)) - len(config.kept_layers or ()),
                    config.drop.strategy,
                    list(config.kept_layers or ()),
                    config.training.learning_rate,
                    config.training.epochs,
                    score,
                    drop,
                    used,
                )
                break
        answers.append(answer)
    return answers
