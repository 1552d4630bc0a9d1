"""The most layers droppable within each tolerance, decided over seeds against the tuned reference.

1. **One search** at the loosest tolerance, its trials on the spec's seed, the budget measured against
   the tuned reference (:mod:`.reference`): TPE, told the budget as a constraint, concentrates on the deepest
   drops that stay feasible, and the same trials answer every tighter tolerance.
2. **Finalists re-trained on the decision seeds**, seeds the search never selected on: a trial's own score
   is the best of many on one seed, biased upward, so it only picks finalists and is reported apart.
   Each finalist's drop is paired seed by seed with the reference's best configuration on the same seed.
3. **A verdict per tolerance** (:mod:`.decide`): the deepest drop whose mean is within, *within* when
   its whole interval is, else *borderline*; and the deepest that is confidently within. Each interval's level
   is set so that a tolerance's finalists together are falsely *within* at most 2.5 % of the time
   (:func:`.decide.family_confidence`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunetune.search.answer_model import ModelFacts, SavedModel, keep_trained, kept_trained, save_answer_model
from prunetune.search.context import Say, SearchContext
from prunetune.search.decide import (
    FAMILY_CONFIDENCE,
    Candidate,
    ConfigKey,
    Finding,
    ToleranceAnswer,
    TunedReference,
    answer_tolerance,
    answers_by_configuration,
    paired_drops,
)
from prunetune.search.jobs import run_jobs
from prunetune.search.outcome import SearchResult
from prunetune.search.reference import score_on_seed
from prunetune.search.runner import Checked, close_running_runs, refuse_early, run_search
from prunetune.search.space import distilled
from prunetune.search.spec import SearchSpec, decision_seeds, recheck_plan
from prunetune.search.store import TrackingClient, client, experiment_id, paged_runs, search_lock
from prunetune.search.trainable import MODEL_FILES
from prunetune.search.tuner import stop_ray

from prunetune import stops
from prunetune.config import TrialConfig
from prunetune.libs import mlflow_entities
from prunetune.records import (
    KIND_RECHECK,
    KIND_TRIAL,
    MAX_DROP_ARTIFACT,
    METRIC_DROP,
    METRIC_MEAN_DROP,
    METRIC_MEAN_DROP_HIGH,
    METRIC_MEAN_DROP_LOW,
    PARENT,
    TAG_ANSWER,
    TAG_KIND,
    TAG_STATUS,
    budget_unit,
    counted,
    drop,
    final_value,
    in_budget_unit,
    is_result,
    runs_where,
    within,
)
from prunetune.records import measured as recorded

if TYPE_CHECKING:
    from mlflow.entities import Run  # MLflow's type, for mypy: the runs come from a client

__all__ = [
    "MaxDropAnswer", "Rechecks", "finalists", "finished_rechecks", "max_drop", "model_folder", "render", "say_collapses"
]  # fmt: skip


@dataclass(frozen=True)
class MaxDropAnswer:
    tolerances: list[ToleranceAnswer]  # loosest last
    reference: TunedReference
    seeds: list[int]  # the decision seeds
    search_seed: int  # the seed the search's trials ran on (selection only)
    reference_on_search_seed: float  # the tuned reference's configuration on that seed: finalists are paired with it
    relative: bool
    parent_run_id: str
    trials: int
    # seek_confident: whether the walk went on past each answer for a finding confidently within.
    seek_confident: bool = False
    models: dict[float, SavedModel] = field(default_factory=dict)  # tolerance -> its answer's model

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": {
                "learning_rate": self.reference.learning_rate,
                "epochs": self.reference.epochs,
                "score": self.reference.score,
                "scores": {str(s): v for s, v in self.reference.scores.items()},
                "given": self.reference.given is not None,
                "search_seed_score": self.reference_on_search_seed,
            },
            "seeds": self.seeds,
            "search_seed": self.search_seed,
            "relative": self.relative,
            "search_run_id": self.parent_run_id,
            "trials": self.trials,
            "seek_confident": self.seek_confident,
            "tolerances": [answer.to_dict() | self._model_of(answer.tolerance) for answer in self.tolerances],
        }

    def _model_of(self, tolerance: float) -> dict[str, Any]:
        model = self.models.get(tolerance)
        if model is None:
            return {"model": None}
        return {"model": {"path": str(model.path), "mlflow_model_uri": model.model_uri, "scores": model.scores}}


def complete_trials(runs: list[Run]) -> list[tuple[Candidate, TrialConfig]]:
    """The search's complete trials, each as a candidate and the config that trained it."""
    found = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        selection_score = final_value(metrics, "val_score")
        if not is_result(tags.get(TAG_KIND), tags.get(TAG_STATUS)) or selection_score is None:
            continue
        config = TrialConfig.from_flat(run.data.params)
        candidate = Candidate(
            kept_layers=tuple(config.kept_layers or ()),
            layers_dropped=int(metrics["layers_dropped"]),
            strategy=config.drop.strategy,
            learning_rate=config.training.learning_rate,
            epochs=config.training.epochs,
            selection_score=selection_score,
            distill=config_key(config)[3],
        )
        found.append((candidate, config))
    return found


def config_key(config: TrialConfig) -> ConfigKey:
    """A job's configuration as :attr:`Candidate.key` names it."""
    t, d = config.training, config.distill
    return (tuple(config.kept_layers or ()), t.learning_rate, t.epochs, distilled(d.alpha, d.temperature))


def finished_rechecks(runs: list[Run]) -> dict[tuple[ConfigKey, int], float]:
    """(configuration, seed) -> val_score of the search's finished re-check runs."""
    found = {}
    for run in runs:
        if run.data.tags.get(TAG_KIND) != KIND_RECHECK or run.info.status != "FINISHED":
            continue
        config = TrialConfig.from_flat(run.data.params)
        score = final_value(run.data.metrics, "val_score")
        if score is not None:
            found[(config_key(config), config.training.seed)] = score
    return found


def finalists(
    trials: list[tuple[Candidate, TrialConfig]], reference: float, tolerance: float, relative: bool
) -> list[Candidate]:
    """The candidates within ``tolerance`` of ``reference``, the tuned reference on the search's own seed:
    paired, so that seed's luck (±0.9 points, as large as a tolerance) does not decide who is a finalist."""
    return [c for c, _ in trials if within(drop(reference, c.selection_score, relative), tolerance)]


def max_drop(
    spec: SearchSpec,
    tolerances: list[float],
    *,
    resume: bool = False,
    say: Say = print,
    register: str | None = None,
) -> MaxDropAnswer:
    """The most layers droppable within each tolerance: one search at the loosest, then each tolerance decided on
    the decision seeds against the tuned reference; what ``prunetune max-drop`` runs.

    Args:
        spec: the search spec; its ``seeds`` decision seeds (at least 2) and ``budget.relative`` are used.
        tolerances: the accuracy drops to answer, in the budget's unit (0.01 is 1 point).
        resume: continue the max-drop of this name (finished trials and re-checks are not trained again).
        say: where progress lines go.
        register: the MLflow registered-model name of the answers' models, if any.

    Returns:
        The :class:`MaxDropAnswer`: per tolerance the verdict of the deepest drop whose mean is within, its mean
        drop and interval, the deepest confidently within, and (with ``spec.save_model``) its model.

    Raises:
        PrunetuneError: a spec, model, data, storage or tracking store refused before anything starts.
        stops.Interrupted: a stop signal; ``resume`` continues.

    Example:
        >>> from prunetune.search.spec import load_spec                                      # doctest: +SKIP
        >>> answer = max_drop(load_spec("examples/max-drop-minilm-indicnews.yaml"), [0.01, 0.02])  # doctest: +SKIP
        >>> [(a.tolerance, a.mean_within.candidate.layers_dropped) for a in answer.tolerances]  # doctest: +SKIP
    """
    loosest = spec.with_overrides({"budget.tolerance": max(tolerances)})
    checked = refuse_early(loosest)  # before the lock: a refused max-drop leaves nothing behind
    with search_lock(loosest.storage, loosest.name):  # held from the search through the last re-check
        return _max_drop(loosest, tolerances, resume, say, register, checked)


def _max_drop(
    loosest: SearchSpec, tolerances: list[float], resume: bool, say: Say, register: str | None, checked: Checked
) -> MaxDropAnswer:
    # The answers' models are saved below, not the search's.
    result = run_search(
        loosest, resume=resume, say=say, save_best=False, checked=checked, tolerances=tuple(sorted(tolerances))
    )
    loosest = result.spec  # as it ran: its jobs take the trials' resolved resources
    mlflow = client(loosest.resolved_tracking_uri(), patience_s=loosest.tracking_patience_s)
    ctx = SearchContext(loosest, mlflow, experiment_id(mlflow, loosest.name), result.parent_run_id, say, result.shared)
    try:
        return _decide(ctx, tolerances, result, register)
    except KeyboardInterrupt:  # a stop signal between or during the re-checks and the answers' models
        raise _stop(loosest, mlflow, ctx.experiment, say) from None


def _stop(spec: SearchSpec, mlflow: TrackingClient, experiment: str, say: Say) -> stops.Interrupted:
    """The search had finished: its re-check and model jobs are cancelled and their runs closed as interrupted."""
    say("stopping while re-checking the finalists: cancelling the running jobs and closing their records")
    stop_ray()
    close_running_runs(spec, mlflow, experiment)
    done = sum(1 for _ in paged_runs(mlflow, [experiment], runs_where("FINISHED", kind=KIND_RECHECK, search=spec.name)))
    return stops.interrupted(f"after the search, with {done} re-check job(s) recorded")


@dataclass
class Rechecks:
    """The finalists re-trained on the decision seeds, each configuration on each seed once whatever the tolerance
    that asks (a resumed max-drop reuses the re-checks MLflow holds), each paired with the reference on its seed.
    Called as ``answer_tolerance``'s measure."""

    ctx: SearchContext
    reference: TunedReference
    configs: dict[ConfigKey, TrialConfig]  # each finalist's configuration, as the search ran it
    recorded: dict[tuple[ConfigKey, int], float]  # the scores of re-checks already finished
    seeds: list[int]  # the decision seeds
    staging: Path  # where the first seed's models wait until the answers are known
    measured: dict[ConfigKey, tuple[dict[int, float], dict[int, float]]] = field(default_factory=dict)

    def has(self, candidate: Candidate) -> bool:
        """Whether the finalist has been re-checked (on however many seeds)."""
        return candidate.key in self.measured

    def keeps_model(self, trial: TrialConfig) -> bool:
        """The first decision seed's re-check keeps its model, when the spec asks for models."""
        return self.ctx.spec.save_model and trial.training.seed == self.seeds[0]

    def __call__(self, candidate: Candidate, wanted: int) -> tuple[dict[int, float], dict[int, float]]:
        """The finalist re-trained on at least the first ``wanted`` decision seeds; every seed it has is weighed.
        Returns (score per seed, paired drop per seed)."""
        known = self.measured[candidate.key][0] if self.has(candidate) else {}
        scores = {s: self.recorded[(candidate.key, s)] for s in self.seeds if (candidate.key, s) in self.recorded}
        scores |= known
        todo = [seed for seed in self.seeds[:wanted] if seed not in scores]
        ran: list[tuple[str, dict[str, Any]]] = []
        if todo:
            self.ctx.say(
                f"re-checking {candidate.strategy} kept {list(candidate.kept_layers)} "
                f"(lr {candidate.learning_rate:.1e}, {counted(candidate.epochs, 'epoch')}) on seeds {todo}"
            )
            base = self.configs[candidate.key]
            tags = {PARENT: self.ctx.parent}
            jobs = [(base.with_overrides({"training.seed": seed}), KIND_RECHECK, tags) for seed in todo]
            ran = run_jobs(self.ctx, jobs, keep_model=self.keeps_model)
            for run_id, r in ran:
                if MODEL_FILES in r:  # the first seed's: the answer's model, should this finalist answer
                    keep_trained(r, run_id, self.staging / model_folder(candidate))
            scores |= {seed: float(r["val_score"]) for seed, (_, r) in zip(todo, ran, strict=True)}
        scores = dict(sorted(scores.items()))
        drops = paired_drops(self.reference.on_seeds(), scores, self.ctx.spec.budget.relative)
        for seed, (run_id, _) in zip(todo, ran, strict=True):  # each re-check's own drop, paired on its seed
            if seed in drops and math.isfinite(drops[seed]):
                metric = mlflow_entities.Metric(METRIC_DROP, recorded(drops[seed]), int(time.time() * 1000), 0)
                self.ctx.mlflow.log_batch(run_id, metrics=[metric])
        self.measured[candidate.key] = (scores, drops)
        return scores, drops


def _decide(ctx: SearchContext, tolerances: list[float], result: SearchResult, register: str | None) -> MaxDropAnswer:
    loosest, say = ctx.spec, ctx.say
    children = list(paged_runs(ctx.mlflow, [ctx.experiment], runs_where(parent=ctx.parent)))
    trials = complete_trials(children)
    seeds = decision_seeds(loosest)
    relative = loosest.budget.relative
    # With a model asked for, each finalist's re-check on the first seed keeps its model until the answers are
    # known: an answer's model is then the one its re-check trained (same configuration, same seed), not a job more.
    staging = loosest.storage / loosest.name / "recheck-models"
    configs = {candidate.key: config for candidate, config in trials}
    rechecks = Rechecks(ctx, result.reference, configs, finished_rechecks(children), seeds, staging)

    on_search_seed = score_on_seed(ctx, result.reference, loosest.trial.training.seed)
    answers = [
        answer_tolerance(
            t,
            finalists(trials, on_search_seed, t, relative),
            rechecks,
            loosest.max_finalists,
            measured=rechecks.has,
            plan=recheck_plan(loosest, len(tolerances)),
            seek_confident=loosest.seek_confident,
        )
        for t in sorted(tolerances)
    ]
    say_collapses(answers, loosest.collapse_margin, relative, say)
    _mark_answers(ctx, answers, children)
    answer = MaxDropAnswer(
        answers,
        result.reference,
        seeds,
        loosest.trial.training.seed,
        on_search_seed,
        relative,
        result.parent_run_id,
        result.trials,
        loosest.seek_confident,
    )
    if not loosest.save_model:
        _log_answer(ctx, answer)
        return answer
    models: dict[ConfigKey, SavedModel] = {}
    for key, answered in answers_by_configuration(answers).items():  # one model may answer several tolerances
        found = answered[0][1]
        trial = configs[key].with_overrides({"training.seed": seeds[0]})
        name = model_folder(found.candidate)
        trained = kept_trained(staging / name)  # none if a killed driver had not written it: trained once more
        facts = _model_facts(answer, answered)
        models[key] = save_answer_model(ctx, trial, loosest.storage / loosest.name / name, facts, register, trained)
    shutil.rmtree(staging, ignore_errors=True)  # the finalists that answer nothing
    chosen = {i.tolerance: models[i.mean_within.candidate.key] for i in answers if i.mean_within is not None}
    answer = dataclasses.replace(answer, models=chosen)
    _log_answer(ctx, answer)
    return answer


def _log_answer(ctx: SearchContext, answer: MaxDropAnswer) -> None:
    """The answer, as ``--output`` writes it, on the search's run (:data:`MAX_DROP_ARTIFACT`): the report leads
    with it."""
    path = ctx.spec.storage / ctx.spec.name / MAX_DROP_ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(answer.to_dict(), indent=1) + "\n", encoding="utf-8")
    ctx.mlflow.log_artifact(ctx.parent, str(path))


def model_folder(c: Candidate) -> str:
    """A folder name per configuration: two answers may drop as many layers differently, and two finalists may
    keep the same layers at sampled learning rates that differ in their second digit (1.4e-4, 1.3e-4), so the
    rate is written to 6 significant digits."""
    kept = "-".join(map(str, c.kept_layers))
    taught = f"-kd{c.distill[0]:g}-t{c.distill[1]:g}" if c.distill[0] else ""
    return f"model-kept-{kept}-lr{c.learning_rate:g}-ep{c.epochs}{taught}"


def say_collapses(answers: list[ToleranceAnswer], margin: float | None, relative: bool, say: Say) -> None:
    """Why a finalist whose mean may look within is over: the decision found one of its seeds collapsed (said once
    per finalist). ``margin``: the plan's ``collapse_margin``, for the message."""
    told: set[ConfigKey] = set()
    for answer in answers:
        for found in answer.findings:
            if found.collapsed and found.candidate.key not in told:
                told.add(found.candidate.key)
                c, seeds = found.candidate, list(found.collapsed)
                worst = max(found.drops[s] for s in seeds)
                tolerance = in_budget_unit(answer.tolerance, relative)
                past = f"collapse_margin ({in_budget_unit(margin or 0.0, relative)}) past {tolerance}"
                say(
                    f"over: {c.strategy} kept {list(c.kept_layers)} "
                    f"(lr {c.learning_rate:.1e}, {counted(c.epochs, 'epoch')}) "
                    f"collapsed: it dropped {in_budget_unit(worst, relative)} on seed(s) {seeds}, more than {past}"
                )


def _mark_answers(ctx: SearchContext, answers: list[ToleranceAnswer], children: list[Run]) -> None:
    """Each answer marked where a user looks (:data:`TAG_ANSWER`): on the trial that found it, the tolerances it
    answers with their verdicts; on the search's run, the answer per tolerance."""
    relative = ctx.spec.budget.relative
    by_key = answers_by_configuration(answers)
    for run in children:
        if run.data.tags.get(TAG_KIND) != KIND_TRIAL or run.info.status != "FINISHED":
            continue
        answered = by_key.get(config_key(TrialConfig.from_flat(run.data.params)))
        if answered:
            verdicts = "; ".join(f"{in_budget_unit(t, relative)}: {f.verdict}" for t, f in answered)
            ctx.mlflow.set_tag(run.info.run_id, TAG_ANSWER, f"max-drop answer at {verdicts}")
    lines = []
    for item in answers:
        found = item.mean_within
        what = "none within" if found is None else f"{found.candidate.layers_dropped} layers ({found.verdict})"
        lines.append(f"{in_budget_unit(item.tolerance, relative)}: {what}")
    ctx.mlflow.set_tag(ctx.parent, TAG_ANSWER, "; ".join(lines))


def _model_facts(answer: MaxDropAnswer, answered: list[tuple[float, Finding]]) -> ModelFacts:
    """The card's rows, and the logged model's metrics (mean drop and its interval) and tags (verdict per
    tolerance)."""
    iv = answered[0][1].drops_interval
    # The finalist's mean over its seeds: its own names, so the run that trained the model keeps its own paired drop.
    metrics = {METRIC_MEAN_DROP: iv.mean} | (
        {METRIC_MEAN_DROP_LOW: iv.low, METRIC_MEAN_DROP_HIGH: iv.high} if iv.n > 1 else {}
    )
    tags = {f"verdict_{in_budget_unit(t)}": str(found.verdict) for t, found in answered}
    finite = {k: recorded(v) for k, v in metrics.items() if math.isfinite(v)}
    return ModelFacts(_card_facts(answer, answered), finite, tags)


def _card_facts(answer: MaxDropAnswer, answered: list[tuple[float, Finding]]) -> list[tuple[str, str]]:
    """The model card's rows on how a max-drop answer was decided: over which seeds, with what interval, and
    its verdict at each tolerance it answers (tightest first)."""
    unit = budget_unit(answer.relative)
    found = answered[0][1]
    iv = found.drops_interval
    spread = (
        "no interval (1 seed)" if iv.n == 1 else f"{_level(iv.confidence)} interval [{_pct(iv.low)}, {_pct(iv.high)}]"
    )
    scores = ", ".join(f"{s}: {v:.4f}" for s, v in sorted(found.scores.items()))
    verdicts = "; ".join(f"{f.verdict} at {in_budget_unit(t)}" for t, f in answered)
    return [
        ("answers", f"max-drop at tolerance(s) {', '.join(in_budget_unit(t) for t, _ in answered)} {unit}"),
        ("verdict", f"{verdicts} ({found.candidate.layers_dropped} layers dropped)"),
        ("reference", answer.reference.describe()),
        ("re-checked scores (seed: val_score)", scores),
        ("mean drop vs the reference", f"{_pct(iv.mean)} {unit}, {spread}"),
        ("search", f"MLflow run {answer.parent_run_id}, {answer.trials} trials"),
    ]


def render(answer: MaxDropAnswer) -> str:
    """The answer as a person reads it: the reference, then one table row per tolerance."""
    ref = answer.reference
    if ref.given is not None:
        lines = [f"reference: the given score {ref.score:.4f}"]
    else:
        lines = [
            f"reference: lr {ref.learning_rate:.1e}, {counted(ref.epochs, 'epoch')}, mean val_score {ref.score:.4f} "
            f"over seeds {answer.seeds}"
        ]
    lines += [
        f"finalists re-trained on seeds {answer.seeds}; the search's trials ({answer.trials}) ran on seed "
        f"{answer.search_seed}, whose score only picked them (selection score, biased upward)",
        "",
        "| tolerance | layers dropped | verdict | strategy | kept layers | lr | epochs | mean score | "
        "selection score | mean drop [interval] | confidently within |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for item in answer.tolerances:
        confident = "none" if item.confident is None else f"{item.confident.candidate.layers_dropped} layers"
        found = item.mean_within
        if found is None:
            lines.append(f"| {in_budget_unit(item.tolerance)} | none within | | | | | | | | | {confident} |")
            continue
        c, iv = found.candidate, found.drops_interval
        spread = {0: "no seed left", 1: "no interval (1 seed)"}.get(iv.n, f"[{_pct(iv.low)}, {_pct(iv.high)}]")
        if found.failed_seeds:  # NaN scores: diverged or collapsed runs, left out of the interval
            spread += f", seeds {found.failed_seeds} failed"
        lines.append(
            f"| {in_budget_unit(item.tolerance)} | {c.layers_dropped} | {found.verdict} | {c.strategy} | "
            f"{list(c.kept_layers)} | {c.learning_rate:.1e} | {c.epochs} | "
            f"{found.mean_score:.4f} | {c.selection_score:.4f} | "
            f"{_pct(iv.mean)} {spread} | {confident} |"
        )
    lines.append(
        f"\ntolerances and drops in {budget_unit(answer.relative)}; within: the whole interval under the tolerance; "
        "borderline: only the mean is"
    )
    unsure = [
        in_budget_unit(item.tolerance)
        for item in answer.tolerances
        if item.mean_within is not None and item.confident is None
    ]
    if unsure and not answer.seek_confident:
        lines.append(
            f"confidently within {', '.join(unsure)}: none among the finalists re-trained, as the walk stops at the "
            "answer; --set seek_confident=true re-trains more finalists in search of one"
        )
    levels = {
        f.drops_interval.confidence for item in answer.tolerances for f in item.findings if f.drops_interval.n > 1
    }
    if levels:
        level = min(levels)
        together = round((1 - FAMILY_CONFIDENCE) / (1 - level))
        family = (
            f", so that the up to {together} finalists a run of {counted(len(answer.tolerances), 'tolerance')} "
            "may re-train "
            f"are falsely called within together at most {100 * (1 - FAMILY_CONFIDENCE) / 2:g} % of the time"
        )
        lines.append(f"each interval is {_level(level)}" + (family if together > 1 else ""))
    for tolerance, model in sorted(answer.models.items()):
        lines.append(f"model for tolerance {in_budget_unit(tolerance)}: {model.path} (MLflow {model.model_uri})")
    return "\n".join(lines)


def _level(confidence: float) -> str:
    return f"{100 * confidence:.4g} %"


def _pct(value: float) -> str:
    return in_budget_unit(value, signed=True)
