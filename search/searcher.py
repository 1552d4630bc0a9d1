"""Optuna, through Ray Tune, under an accuracy-drop budget.

:class:`BudgetSearch` is a Tune searcher (Tune's public ``Searcher`` interface) over an Optuna study (Optuna's
public ``ask`` / ``tell``), so nothing of Ray's or Optuna's non-public state is read. What it does beyond asking
and telling:

* the kept layers decided on the driver from the sampled strategy (pure functions, :mod:`.space`);
* the budget constraint handed to Optuna's sampler for every trial (``trial.set_constraint``: Tune
  passes only results), a trial ASHA stopped early included: it is told as PRUNED, never as COMPLETE with a
  half-trained score, and its constraint is set from its last result, as Optuna's own pruning
  convention does — so TPE never takes an over-budget trial for a feasible one;
* the warm start, then the frontier's probes (:mod:`.frontier`), as enqueued Optuna trials, and ``FINISHED`` when
  no tolerance's answer is open;
* no point trained twice on one seed: a sampled (kept layers, learning rate, epochs) the search already
  ran is told to Optuna with the earlier trial's outcome, and the sampler is asked again.

The constrained objective is ``layers_dropped + val_score`` for a trial within budget (the
score, below 1, only settles ties between equal drops) and ``-excess`` for one over it, so any
feasible trial ranks above every infeasible one.
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from collections.abc import Sequence
from typing import Any, cast

from prunetune.search.frontier import Step, Tried, next_step
from prunetune.search.samplers import make_sampler
from prunetune.search.space import (
    CONSTRAINT,
    OBJECTIVE,
    OBJECTIVE_NAME,
    DefineSpace,
    PointKey,
    distill_params,
    point_key,
    strategy_params,
    tell_repeat,
    trial_config,
    warm_start_points,
)
from prunetune.search.spec import SearchSpec, droppable_depths, trial_counts
from prunetune.trainables.strategies import StrategyError, kept_layers
from ray.tune.search import Searcher

from prunetune.libs import optuna
from prunetune.records import LayerScores

__all__ = ["BudgetSearch", "FINISHED"]


log = logging.getLogger(__name__)

# Tune's signal that a searcher has no more trials: documented as a return of ``Searcher.suggest``, whose
# signature says a config dict or None, so it is typed as what the signature takes.
FINISHED: dict[str, Any] | None = cast("dict[str, Any]", Searcher.FINISHED)


OBJECTIVE_MEANING = (
    "layers dropped + val_score for a trial within the budget (so one more layer dropped always ranks higher); "
    "for a trial over it, minus its budget excess (below every trial within). Each trial's learning_rate, "
    "val_score and drop are its user attributes; the intermediate values are the objective per epoch."
)
MULTI_MEANING = "val_score (maximised) and the multi_axis (minimised): the Pareto front of score against size or speed"


class BudgetSearch(Searcher):
    """Tune's searcher for a prunetune search: an Optuna study, asked and told through Optuna's public ``ask`` /
    ``tell``, behind Tune's public :class:`~ray.tune.search.Searcher` interface."""

    def __init__(
        self,
        spec: SearchSpec,
        num_layers: int,
        scores: LayerScores | None,
        *,
        anchor_lr: float | None = None,
        storage: optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        sampler: optuna.samplers.BaseSampler | None = None,
        links: dict[str, str] | None = None,
        tolerances: Sequence[float] = (),
    ) -> None:
        """Args:
        spec: the search spec.
        num_layers: the model's encoder layers.
        scores: the search's layer scores (the contribution and angular strategies, the probes).
        anchor_lr: the tuned reference's learning rate, which ``space.learning_rate_scale`` multiplies
            (default: the spec's own trial learning rate).
        storage: where the Optuna study lives (optuna-dashboard reads it; a resumed search finds it
            there); in memory by default.
        study_name: the study's name in ``storage`` (an existing study of that name is continued).
        sampler: the Optuna sampler (default: :func:`~prunetune.search.samplers.make_sampler`).
        links: user attributes every trial carries (the search's MLflow run), so optuna-dashboard leads
            to the records.
        tolerances: where the search looks for answers still open (:mod:`.frontier`; max-drop's
            tolerances), the budget's alone by default.
        """
        multi = spec.objective == "multi"
        # Tune's metric and mode serve its own reporting: a Pareto front has no single one (as the TuneConfig).
        super().__init__(metric=None if multi else OBJECTIVE, mode=None if multi else "max")
        self.objectives = ["val_score", spec.multi_axis] if multi else [OBJECTIVE]  # what Optuna is told
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        anchor = anchor_lr or spec.trial.training.learning_rate
        self.space = DefineSpace(spec, num_layers, anchor, scores)
        self.least_trials, self.most_trials = trial_counts(spec, num_layers)
        self.warm_start = warm_start_points(self.space, spec, num_layers, scores, anchor, self.least_trials)
        self.study = optuna.create_study(
            storage=self.storage,
            sampler=sampler if sampler is not None else make_sampler(multi, spec.sampler_seed),
            pruner=optuna.pruners.NopPruner(),  # ASHA stops trials, in Tune; Optuna is told, never asked
            study_name=study_name or "prunetune",
            load_if_exists=True,  # a resumed search goes on with its study
            directions=["maximize", "minimize"] if multi else ["maximize"],
        )
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)  # looked up once per search
        for point in self.warm_start:
            self.study.enqueue_trial(point, user_attrs={"chosen_by": "warm start"})
        self.spec = spec
        self.links = links or {}
        # optuna-dashboard names the objectives by these, not "Objective 0" (experimental in Optuna since 3.2,
        # and stable in use since: its warning says nothing to a user).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(self.objectives if multi else [OBJECTIVE_NAME])
        # What the objective means, where optuna-dashboard shows it (the study's user attributes).
        self.study.set_user_attr("objective", OBJECTIVE_MEANING if not multi else MULTI_MEANING)
        self.study.set_user_attr("budget", f"tolerance {spec.budget.tolerance:g}, relative: {spec.budget.relative}")
        self.num_layers = num_layers
        self.layer_scores = scores
        self.asked: dict[str, optuna.Trial] = {}  # Tune's trial id -> the Optuna trial asked for it, until told
        self.told: set[str] = set()  # Tune's trial ids whose outcome Optuna has
        self.planned_epochs: dict[str, int] = {}
        self.reported: set[tuple[str, int]] = set()  # (trial, epoch) scores Optuna has as intermediate values
        self.points: dict[PointKey, int] = {}  # point -> number of the Optuna trial that ran it
        self.tolerances = tuple(sorted(tolerances)) or (spec.budget.tolerance,)
        self.depths = droppable_depths(spec.space, num_layers)
        self.finished: dict[PointKey, Tried] = {}  # the frontier's view of each finished trial (tried)
        self.stop_reason = ""  # why the search stopped asking for trials (search/frontier.py), for the terminal

    def recorded(self, number: int) -> optuna.trial.FrozenTrial:
        """The Optuna trial ``number`` as its storage holds it."""
        return self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))

    def tried(self) -> list[Tried]:
        """Every point run so far as the frontier reads it: kept layers, sampled parameters, and the drop (None while
        it runs; a failed trial or one without a drop counts as over every tolerance)."""
        found = []
        for point, number in self.points.items():
            if point not in self.finished:  # a finished trial's outcome never changes: read from storage once
                trial = self.recorded(number)
                if not trial.state.is_finished():
                    found.append(Tried(point[0], trial.params, None))
                    continue
                self.finished[point] = Tried(point[0], trial.params, float(trial.user_attrs.get("drop", math.inf)))
            found.append(self.finished[point])
        return found

    def frontier(self) -> Step | None:
        """The frontier's next step once the warm start has run (None before: its points are queued already)."""
        if len(self.points) < len(self.warm_start):
            return None
        if self.spec.objective == "multi":  # a Pareto front has no tolerance whose answer could be open
            stop = len(self.points) >= self.least_trials
            return Step("stop", f"stopped after {len(self.points)} trials (a multi-objective search)") if stop else None
        fallback = self.warm_start[0] if self.warm_start else {}
        return next_step(
            self.tried(), self.num_layers, self.tolerances, self.depths, self.least_trials, self.most_trials,
            self.layer_scores, fallback, self.space.strategies,
        )  # fmt: skip

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's config; None while Tune should ask again later, or Tune's ``Searcher.FINISHED``
        (which Tune's signature types as the config) once the search is done."""
        step = self.frontier()
        if step is not None and step.kind == "stop":
            self.stop_reason = step.reason
            log.info("%s", step.reason)
            return FINISHED
        if step is not None and step.kind == "wait":
            return None  # Tune asks again once a running trial has reported
        if step is not None and step.kind == "probe":
            assert step.params is not None
            log.info("probe at %s layers dropped: %s", step.depth, step.reason)
            self.study.enqueue_trial(dict(step.params), user_attrs={"chosen_by": "probe"})
        repeats = 0
        for _ in range(100):  # a point the strategy cannot realise, or one already run, is re-asked
            ot_trial = self.study.ask()
            self.space(ot_trial)
            params = dict(ot_trial.params)
            drop_params = strategy_params(params, self.num_layers)
            try:
                kept = kept_layers(params["strategy"], self.num_layers, drop_params, self.layer_scores)
            except StrategyError as err:
                log.info("sampled point not realisable (%s); asking again", err)
                self.study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
                continue
            learning_rate = self.space.learning_rate(params)
            base = self.spec.trial.distill
            distill = distill_params(params, (base.alpha, base.temperature))
            point = point_key(kept, learning_rate, params["epochs"], distill)
            if point in self.points:
                tell_repeat(self.study, ot_trial, self.recorded(self.points[point]))
                repeats += 1
                continue
            self.asked[trial_id] = ot_trial
            self.points[point] = ot_trial.number
            self.planned_epochs[trial_id] = params["epochs"]
            # What a dashboard user looks for first, and where the trial's MLflow run is (tagged by this id).
            shown = {
                "kept_layers": list(kept),
                "strategy": params["strategy"],
                "learning_rate": learning_rate,  # the real one: the sampled param is its multiple of the reference's
                "epochs": params["epochs"],
                "ray_trial_id": trial_id,
                **self.links,
            }
            for key, value in shown.items():
                ot_trial.set_user_attr(key, value)
            return {
                "trial": trial_config(self.spec, params, drop_params, kept, learning_rate, distill),
                "optuna_trial": ot_trial.number,
            }
        if repeats:
            log.warning("the search space holds no point not already run (%d repeats in a row): done", repeats)
            return FINISHED
        raise RuntimeError("the search space keeps producing points no strategy can realise; widen it")

    def live(self, trial_id: str) -> optuna.Trial | None:
        """The Optuna trial of a Tune trial whose outcome Optuna does not have yet; None once it has."""
        return None if trial_id in self.told else self.asked.get(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Each epoch's validation score as the trial's intermediate value, at its epoch: learning curves,
        and where ASHA stopped a trial, in optuna-dashboard. (For a multi-objective study Optuna takes no
        intermediate values.)"""
        ot_trial = self.live(trial_id)
        if ot_trial is not None:
            self._report(ot_trial, trial_id, result)

    def _report(self, ot_trial: optuna.Trial, trial_id: str, result: dict[str, Any]) -> None:
        """The epoch's objective as the intermediate value: a trial stopped early is then plotted on the same axis
        as a complete one (optuna-dashboard's History plots a pruned trial's last intermediate value); its
        score and drop are user attributes."""
        step = int(result.get("epoch", 0))
        if self.objectives != [OBJECTIVE] or OBJECTIVE not in result or (trial_id, step) in self.reported:
            return
        self.reported.add((trial_id, step))
        ot_trial.report(float(result[OBJECTIVE]), step)
        for key in ("val_score", "drop"):
            if key in result:
                ot_trial.set_user_attr(key, float(result[key]))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's outcome: COMPLETE with its objective(s), PRUNED when ASHA stopped it early
        (its score is half-trained: the sampler must not learn from it) or it has none, FAIL on an error."""
        ot_trial = self.live(trial_id)
        self.told.add(trial_id)
        self.asked.pop(trial_id, None)
        if ot_trial is None:
            return
        result = result if result and not error else None  # Tune hands a trial's last result to this call only
        if result is not None:
            self._report(ot_trial, trial_id, result)
            if "budget_excess" in result:
                # Every trial with a result carries the budget, a pruned one too (from its last epoch).
                ot_trial.set_constraint(CONSTRAINT, float(result["budget_excess"]))
        planned = self.planned_epochs.get(trial_id)
        values = [result.get(name) for name in self.objectives] if result is not None else [None]
        if error:
            self.study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        elif result is None or None in values or (planned is not None and result.get("epoch", planned) < planned):
            self.study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(ot_trial, [float(v) for v in values if v is not None])

    def save(self, checkpoint_path: str) -> None:
        """Tune's checkpoint of the searcher: its whole state (the study is in its storage, the samplers pickle)."""
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__.copy(), file)

    def restore(self, checkpoint_path: str) -> None:
        """The state :meth:`save` wrote, on resume. Tune may re-run trials its last checkpoint saw running although
        the study (in its database) recorded their outcome since: those count as told, read once here."""
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
        for trial_id, ot_trial in list(self.asked.items()):
            if self.recorded(ot_trial.number).state.is_finished():
                self.told.add(trial_id)
                del self.asked[trial_id]
