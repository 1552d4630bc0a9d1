"""Optuna, through Ray Tune, under an accuracy-drop budget.

:class:`BudgetSearch` is Ray's ``OptunaSearch`` plus what it lacks:

* the kept layers decided on the driver from the sampled strategy (pure functions, :mod:`.space`);
* the budget constraint handed to Optuna's sampler for every trial (``trial.set_constraint``; Ray passes
  only objective values), a trial ASHA stopped early included: it is told as PRUNED, never as COMPLETE
  with a half-trained score, and its constraint is set from its last result, as Optuna's own pruning
  convention does — so TPE never takes an over-budget trial for a feasible one;
* no point trained twice on one seed: a sampled (kept layers, learning rate, epochs) the search already
  ran is told to Optuna with the earlier trial's outcome, and the sampler is asked again.

The constrained objective is ``layers_dropped + val_score`` for a trial within budget (the
score, below 1, only settles ties between equal drops) and ``-excess`` for one over it, so any
feasible trial ranks above every infeasible one.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

from prunetune.search import upstream
from prunetune.search.frontier import Step, Tried, next_step
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
from prunetune.search.upstream import check_private_state, completed_trials, make_sampler, optuna_trials
from prunetune.trainables.strategies import STRATEGIES, Strategy, StrategyError, get_strategy, kept_layers
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from prunetune.libs import optuna
from prunetune.records import LayerScores

log = logging.getLogger(__name__)


def check_space(spec: SearchSpec, num_layers: int) -> None:
    """Refuse, before anything runs, a space whose strategies cannot drop layers from this model."""
    for key in ("min_count", "max_count"):
        count = getattr(spec.space, key)
        if count is not None and count > num_layers - 1:
            raise StrategyError(
                f"space.{key}={count} cannot fit {spec.trial.model} ({num_layers} layers): "
                f"at most {num_layers - 1} can be dropped"
            )
    for name in spec.space.strategies:
        strategy = get_strategy(name)
        if not searchable(strategy):
            names = ", ".join(s.name for s in STRATEGIES.values() if searchable(s))
            raise StrategyError(
                f"strategy {name!r} cannot be searched (it takes {list(strategy.params)}); searchable: {names}"
            )
        if name.startswith("alternate") and spec.space.min_count > (num_layers + 1) // 2:
            raise StrategyError(f"{name} cannot drop {spec.space.min_count} of {num_layers} layers")


def searchable(strategy: Strategy) -> bool:
    """A strategy the search can sample: it drops by ``count`` (a window's place is sampled as ``start_fraction``)
    and needs nothing else, so a registered strategy is searchable as soon as it takes a count."""
    return "count" in strategy.params and set(strategy.required) <= {"count", "start_fraction"}


OBJECTIVE_MEANING = (
    "layers dropped + val_score for a trial within the budget (so one more layer dropped always ranks higher); "
    "for a trial over it, minus its budget excess (below every trial within). Each trial's learning_rate, "
    "val_score and drop are its user attributes; the intermediate values are the objective per epoch."
)
MULTI_MEANING = "val_score (maximised) and the multi_axis (minimised): the Pareto front of score against size or speed"


class BudgetSearch(OptunaSearch):
    def __init__(
        self,
        spec: SearchSpec,
        num_layers: int,
        scores: LayerScores | None,
        *,
        anchor_lr: float | None = None,
        storage: Any = None,
        study_name: str | None = None,
        sampler: Any = None,
        links: dict[str, str] | None = None,
        tolerances: Sequence[float] = (),
    ) -> None:
        """``anchor_lr``: the tuned reference's learning rate, which ``space.learning_rate_scale`` multiplies
        (default: the spec's own trial learning rate). ``links``: user attributes every trial carries (the
        search's MLflow run), so optuna-dashboard leads to the records. ``tolerances``: where the search looks for
        answers still open (:mod:`.frontier`; max-drop's tolerances), the budget's alone by default."""
        multi = spec.objective == "multi"
        metric: Any = ["val_score", spec.multi_axis] if multi else OBJECTIVE
        mode: Any = ["max", "min"] if multi else "max"
        if sampler is None:
            sampler = make_sampler(multi, spec.sampler_seed)
        # The storage is kept for reading trials back by number (Optuna's public storage API); without one
        # the study lives in memory, as Ray's default.
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        anchor = anchor_lr or spec.trial.training.learning_rate
        self.space = DefineSpace(spec, num_layers, anchor, scores)
        self.least_trials, self.most_trials = trial_counts(spec, num_layers)
        self.warm_start = warm_start_points(self.space, spec, num_layers, scores, anchor, self.least_trials)
        super().__init__(
            space=self.space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            storage=self.storage,
            study_name=study_name,
            points_to_evaluate=self.warm_start or None,
        )
        check_private_state(self)
        self.spec = spec
        self.links = links or {}
        # optuna-dashboard names the objectives by these, not "Objective 0" (experimental in Optuna since 3.2,
        # and stable in use since: its warning says nothing to a user).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(["val_score", spec.multi_axis] if multi else [OBJECTIVE_NAME])
        # What the objective means, where optuna-dashboard shows it (the study's user attributes).
        self.study.set_user_attr("objective", OBJECTIVE_MEANING if not multi else MULTI_MEANING)
        self.study.set_user_attr("budget", f"tolerance {spec.budget.tolerance:g}, relative: {spec.budget.relative}")
        self.num_layers = num_layers
        self.layer_scores = scores
        self.planned_epochs: dict[str, int] = {}
        self.reported: set[tuple[str, int]] = set()  # (trial, epoch) scores Optuna has as intermediate values
        self.points: dict[PointKey, int] = {}  # point -> number of the Optuna trial that ran it
        self.tolerances = tuple(sorted(tolerances)) or (spec.budget.tolerance,)
        self.depths = droppable_depths(spec.space, num_layers)
        self.finished: dict[PointKey, Tried] = {}  # the frontier's view of each finished trial (tried)
        self.stop_reason = ""  # why the search stopped asking for trials (search/frontier.py), for the terminal

    @property
    def study(self) -> Any:
        """The Optuna study (OptunaSearch creates it in its constructor when given a space)."""
        return upstream.study(self)

    def recorded(self, number: int) -> Any:
        """The Optuna trial ``number`` as its storage holds it (a FrozenTrial)."""
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(study_id, number))

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

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # or FINISHED
        step = self.frontier()
        if step is not None and step.kind == "stop":
            self.stop_reason = step.reason
            log.info("%s", step.reason)
            return Searcher.FINISHED
        if step is not None and step.kind == "wait":
            return None  # Tune asks again once a running trial has reported
        if step is not None and step.kind == "probe":
            assert step.params is not None
            log.info("probe at %s layers dropped: %s", step.depth, step.reason)
            self.study.enqueue_trial(dict(step.params), user_attrs={"chosen_by": "probe"})
        repeats = 0
        for _ in range(100):  # a point the strategy cannot realise, or one already run, is re-asked
            params = super().suggest(trial_id)
            if params is None:
                return None
            drop_params = strategy_params(params, self.num_layers)
            try:
                kept = kept_layers(params["strategy"], self.num_layers, drop_params, self.layer_scores)
            except StrategyError as err:
                log.info("sampled point not realisable (%s); asking again", err)
                self.study.tell(optuna_trials(self).pop(trial_id), state=optuna.trial.TrialState.FAIL)
                continue
            learning_rate = self.space.learning_rate(params)
            base = self.spec.trial.distill
            distill = distill_params(params, (base.alpha, base.temperature))
            point = point_key(kept, learning_rate, params["epochs"], distill)
            if point in self.points:
                tell_repeat(self.study, optuna_trials(self).pop(trial_id), self.recorded(self.points[point]))
                repeats += 1
                continue
            ot_trial = optuna_trials(self)[trial_id]
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
            return Searcher.FINISHED
        raise RuntimeError("the search space keeps producing points no strategy can realise; widen it")

    def _told(self, trial_id: str) -> bool:
        """Whether Optuna already has this trial's outcome. After a resume, Tune may re-run trials
        its last checkpoint saw running although the study (in its database) recorded them since."""
        ot_trial = optuna_trials(self).get(trial_id)
        if ot_trial is None:
            return True
        return bool(self.recorded(ot_trial.number).state.is_finished())

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Each epoch's validation score as the trial's intermediate value, at its epoch: learning curves,
        and where ASHA stopped a trial, in optuna-dashboard. (Ray's own reports the objective per Tune
        iteration; for a multi-objective study Optuna takes no intermediate values.)"""
        if not self._told(trial_id) and trial_id not in completed_trials(self):
            self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict[str, Any]) -> None:
        """The epoch's objective as the intermediate value: a trial stopped early is then plotted on the same axis
        as a complete one (optuna-dashboard's History plots a pruned trial's last intermediate value); its
        score and drop are user attributes."""
        step = int(result.get("epoch", 0))
        if isinstance(self.metric, list) or OBJECTIVE not in result or (trial_id, step) in self.reported:
            return
        self.reported.add((trial_id, step))
        ot_trial = optuna_trials(self)[trial_id]
        ot_trial.report(float(result[OBJECTIVE]), step)
        for key in ("val_score", "drop"):
            if key in result:
                ot_trial.set_user_attr(key, float(result[key]))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in completed_trials(self) or self._told(trial_id):
            completed_trials(self).add(trial_id)
            return
        ot_trial = optuna_trials(self)[trial_id]
        if result and not error:  # Tune hands a trial's last result to this call only
            self._report(trial_id, result)
        if result and not error and "budget_excess" in result:
            # Every trial with a result carries the budget, a pruned one too (from its last epoch).
            ot_trial.set_constraint(CONSTRAINT, float(result["budget_excess"]))
        planned = self.planned_epochs.get(trial_id)
        if result and not error and planned is not None and result.get("epoch", planned) < planned:
            # Stopped early by ASHA: its score is half-trained; the sampler must not learn from it.
            self.study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            completed_trials(self).add(trial_id)
            return
        super().on_trial_complete(trial_id, result, error)
