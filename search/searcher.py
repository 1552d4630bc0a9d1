"""Optuna, through Ray Tune, under an accuracy-drop budget.

* :class:`DefineSpace` is the define-by-run space: a picklable object (Ray pickles the searcher
  at every experiment checkpoint, so no lambdas), sampling only — no real work.
* :class:`BudgetSearch` is Ray's ``OptunaSearch`` plus what it lacks: the kept layers decided
  on the driver from the sampled strategy (pure functions), the budget constraint handed to
  Optuna's sampler (``trial.set_constraint``; Ray passes only objective values), and trials
  stopped early by ASHA told to Optuna as PRUNED instead of COMPLETE with a half-trained score.

The constrained objective is ``layers_dropped + val_score`` for a trial within budget (the
score, below 1, only settles ties between equal drops) and ``-excess`` for one over it, so any
feasible trial ranks above every infeasible one.
"""

from __future__ import annotations

import logging
from typing import Any

from prunetune.search.spec import SearchSpec
from prunetune.trainables.scores import LayerScores
from prunetune.trainables.strategies import StrategyError, get_strategy, kept_layers
from ray.tune.search.optuna import OptunaSearch

log = logging.getLogger(__name__)

OBJECTIVE = "objective"


class DefineSpace:
    """Samples strategy, drop count, window position, learning rate and epochs."""

    def __init__(self, spec: SearchSpec, num_layers: int) -> None:
        self.strategies = list(spec.space.strategies)
        self.min_count = spec.space.min_count
        self.max_count = min(spec.space.max_count or num_layers - 1, num_layers - 1)
        self.learning_rate = tuple(spec.space.learning_rate)
        self.epochs = tuple(int(e) for e in spec.space.epochs)

    def __call__(self, trial: Any) -> None:
        strategy = trial.suggest_categorical("strategy", self.strategies)
        trial.suggest_int("count", self.min_count, self.max_count)
        if strategy == "window":
            trial.suggest_float("start_fraction", 0.0, 1.0)
        trial.suggest_float("learning_rate", *self.learning_rate, log=True)
        trial.suggest_int("epochs", *self.epochs)


def check_space(spec: SearchSpec, num_layers: int) -> None:
    """Refuse, before anything runs, a space whose strategies cannot drop layers from this model."""
    if spec.space.min_count > num_layers - 1:
        raise StrategyError(
            f"space.min_count={spec.space.min_count} cannot fit {spec.trial.model} ({num_layers} layers): "
            f"at most {num_layers - 1} can be dropped"
        )
    for name in spec.space.strategies:
        strategy = get_strategy(name)
        missing = set(strategy.required) - {"count", "start_fraction"}
        if missing or not {"count"} <= set(strategy.params):
            raise StrategyError(
                f"strategy {name!r} cannot be searched (it takes {list(strategy.params)}); "
                "searchable: top, bottom, middle, window, alternate-even, alternate-odd, contribution, angular-block"
            )
        if name.startswith("alternate") and spec.space.min_count > (num_layers + 1) // 2:
            raise StrategyError(f"{name} cannot drop {spec.space.min_count} of {num_layers} layers")


def trial_config(spec: SearchSpec, params: dict[str, Any], kept: tuple[int, ...]) -> dict[str, Any]:
    """The TrialConfig (as a dict) of one sampled point: the spec's base with its values replaced."""
    drop: dict[str, Any] = {"drop.strategy": params["strategy"], "drop.count": params["count"]}
    if "start_fraction" in params:
        drop["drop.start_fraction"] = params["start_fraction"]
    return spec.trial.with_overrides(
        drop
        | {
            "kept_layers": list(kept),
            "training.learning_rate": params["learning_rate"],
            "training.epochs": params["epochs"],
        }
    ).to_dict()


def budget_excess(spec: SearchSpec, reference_score: float, score: float) -> float:
    """How far the score's drop exceeds the tolerance (> 0 = over budget)."""
    drop = reference_score - score
    if spec.budget.relative:
        drop /= reference_score
    return drop - spec.budget.tolerance


def objective(layers_dropped: int, score: float, excess: float) -> float:
    return layers_dropped + score if excess <= 0 else -excess


class BudgetSearch(OptunaSearch):
    def __init__(
        self,
        spec: SearchSpec,
        num_layers: int,
        scores: LayerScores | None,
        *,
        storage: Any = None,
        study_name: str | None = None,
        sampler: Any = None,
    ) -> None:
        import optuna

        multi = spec.objective == "multi"
        metric: Any = ["val_score", spec.multi_axis] if multi else OBJECTIVE
        mode: Any = ["max", "min"] if multi else "max"
        if sampler is None:
            sampler = (
                optuna.samplers.NSGAIISampler(seed=spec.sampler_seed)
                if multi
                else optuna.samplers.TPESampler(seed=spec.sampler_seed, n_startup_trials=4)
            )
        super().__init__(
            space=DefineSpace(spec, num_layers),
            metric=metric,
            mode=mode,
            sampler=sampler,
            storage=storage,
            study_name=study_name,
        )
        self.spec = spec
        self.num_layers = num_layers
        self.layer_scores = scores
        self.planned_epochs: dict[str, int] = {}

    @property
    def study(self) -> Any:
        """The Optuna study (OptunaSearch creates it in its constructor when given a space)."""
        assert self._ot_study is not None
        return self._ot_study

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        import optuna

        for _ in range(100):  # a sampled point the strategy cannot realise is failed and re-asked
            params = super().suggest(trial_id)
            if params is None:
                return None
            try:
                kept = kept_layers(params["strategy"], self.num_layers, _strategy_params(params), self.layer_scores)
            except StrategyError as err:
                log.info("sampled point not realisable (%s); asking again", err)
                self.study.tell(self._ot_trials.pop(trial_id), state=optuna.trial.TrialState.FAIL)
                continue
            self.planned_epochs[trial_id] = params["epochs"]
            return {"trial": trial_config(self.spec, params, kept), "optuna_trial": self._ot_trials[trial_id].number}
        raise RuntimeError("the search space keeps producing points no strategy can realise; widen it")

    def _told(self, trial_id: str) -> bool:
        """Whether Optuna already has this trial's outcome. After a resume, Tune may re-run trials
        its last checkpoint saw running although the study (in its database) recorded them since."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return True
        return self.study._storage.get_trial(ot_trial._trial_id).state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if not self._told(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        if trial_id in self._completed_trials or self._told(trial_id):
            self._completed_trials.add(trial_id)
            return
        ot_trial = self._ot_trials[trial_id]
        planned = self.planned_epochs.get(trial_id)
        if result and not error and planned is not None and result.get("epoch", planned) < planned:
            # Stopped early by ASHA: its score is half-trained; the sampler must not learn from it.
            self.study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        if result and not error and "budget_excess" in result:
            ot_trial.set_constraint("acc_drop_excess", float(result["budget_excess"]))
        super().on_trial_complete(trial_id, result, error)


def _strategy_params(params: dict[str, Any]) -> dict[str, Any]:
    strategy = get_strategy(params["strategy"])
    return {k: params[k] for k in ("count", "start_fraction") if k in params and k in strategy.params}
