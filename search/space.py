"""What a search samples, and how a sampled point becomes a trial: pure, no Ray (the replay benchmark uses it too).

* The **learning rate** is sampled as a multiple of the tuned reference's (``space.learning_rate_scale``) or
  in an absolute range (``space.learning_rate``), log-uniformly, then put on a half-octave grid
  (``anchor · 2^(k/2)``). Pruned models want higher rates than the full model, and the deeper the drop the
  higher (docs/design.md §3); a multiple of the tuned reference's rate follows the model and the task without the
  user guessing. The grid makes "the same point" well defined, so no trial is spent twice.
* The **contribution threshold** τ is sampled over the range the search's own layer scores span
  (:func:`~prunetune.trainables.strategies.threshold_range`), so every τ drops between min_count and
  max_count layers.
* Ranges stay static for the whole search (Optuna's samplers need that, docs/design.md §2).
* The **warm start** (``space.warm_start``) gives the sampler its first points: the angular block of each depth
  at twice the reference's learning rate (:func:`warm_start_points`).
"""

from __future__ import annotations

import math
from typing import Any

from prunetune.search.spec import WARM_START_STRATEGIES, SearchSpec, droppable_depths, warm_starts
from prunetune.trainables.strategies import (
    STRATEGIES,
    Strategy,
    StrategyError,
    angular_block,
    count_limit,
    get_strategy,
    threshold_range,
)

from prunetune.libs import optuna
from prunetune.records import LayerScores, drop, within

__all__ = [
    "CONSTRAINT", "DefineSpace", "NO_DISTILL", "OBJECTIVE", "OBJECTIVE_NAME", "PointKey", "WARM_START_LR_SCALE",
    "budget_excess", "check_space", "distill_params", "distilled", "objective", "on_grid", "point_key", "searchable",
    "strategy_params", "tell_repeat", "trial_config", "warm_start_line", "warm_start_points"
]  # fmt: skip


OBJECTIVE = "objective"
# The constrained objective, as optuna-dashboard names it: layers dropped + score within the budget.
OBJECTIVE_NAME = "layers_dropped+val_score (over budget: -excess)"
CONSTRAINT = "acc_drop_excess"  # the budget's name in Optuna (> 0 = over budget)
LR_STEPS_PER_OCTAVE = 2  # half-octaves: the seed table's optimum is broad (2e-4 vs 4e-4 within 0.4 points)
DISTILL_ALPHA = (0.0, 1.0)  # the soft term's weight, when a trial distils
DISTILL_TEMPERATURE = (1.0, 8.0)  # sampled log-uniformly
NO_DISTILL = (0.0, 0.0)  # (alpha, temperature) of a trial that does not distil: the temperature plays no part
# The warm start's learning rate, as a multiple of the tuned reference's. Pruned models want a higher rate than
# the full model (the seed table: 2x at 2 to 4 layers dropped, 4x at 5). At 1x the warm start was worse than none
# on the replay (57 / 71 / 96 % against 58 / 79 / 100 %); at 2x, and at 2x rising to 4x with depth, 83 / 100 /
# 100 % both (docs/benchmarks.md §1e), so the simpler rule.
WARM_START_LR_SCALE = 2.0


def on_grid(learning_rate: float, anchor: float, low: float, high: float) -> float:
    """``learning_rate`` moved to the nearest ``anchor · 2^(k/2)`` inside ``[low, high]``."""
    steps = round(LR_STEPS_PER_OCTAVE * math.log2(learning_rate / anchor))
    lowest = math.ceil(LR_STEPS_PER_OCTAVE * math.log2(low / anchor) - 1e-9)
    highest = math.floor(LR_STEPS_PER_OCTAVE * math.log2(high / anchor) + 1e-9)
    steps = min(max(steps, lowest), highest) if lowest <= highest else lowest
    return float(f"{anchor * 2 ** (steps / LR_STEPS_PER_OCTAVE):.6g}")


class DefineSpace:
    """Samples strategy, drop count (or contribution threshold), window position, learning rate and epochs.

    A picklable object, not a closure: Ray pickles the searcher at every experiment checkpoint."""

    def __init__(self, spec: SearchSpec, num_layers: int, anchor_lr: float, scores: LayerScores | None) -> None:
        self.strategies = list(spec.space.strategies)
        depths = droppable_depths(spec.space, num_layers)
        self.min_count, self.max_count = depths.start, depths.stop - 1
        self.epochs = tuple(int(e) for e in spec.space.epochs)
        self.distill = spec.space.distill
        self.temperature = spec.trial.task == "classification"  # embeddings are matched without one
        absolute = spec.space.learning_rate
        # Optuna samples lr_name in lr_range; times lr_unit it is the learning rate, put on a grid from lr_anchor.
        if absolute is not None:  # an absolute range: the grid starts at its low end
            self.lr_name, self.lr_range, self.lr_unit, self.lr_anchor = (
                "learning_rate",
                tuple(absolute),
                1.0,
                absolute[0],
            )
        else:
            self.lr_name, self.lr_unit, self.lr_anchor = "learning_rate_scale", anchor_lr, anchor_lr
            self.lr_range = tuple(spec.space.learning_rate_scale)
        self.thresholds = (
            threshold_range(scores, self.min_count, self.max_count)
            if "contribution" in self.strategies and scores is not None
            else None
        )

    def __call__(self, trial: Any) -> None:
        strategy = trial.suggest_categorical("strategy", self.strategies)
        if strategy == "contribution" and self.thresholds is not None:
            trial.suggest_float("threshold", *self.thresholds)
        else:
            trial.suggest_int("count", self.min_count, self.max_count)
        if strategy == "window":
            trial.suggest_float("start_fraction", 0.0, 1.0)
        trial.suggest_float(self.lr_name, *self.lr_range, log=True)
        trial.suggest_int("epochs", *self.epochs)
        # Conditional: alpha and the temperature exist only for a trial that distils.
        if self.distill and trial.suggest_categorical("distill", [False, True]):
            trial.suggest_float("distill_alpha", *DISTILL_ALPHA)
            if self.temperature:
                trial.suggest_float("distill_temperature", *DISTILL_TEMPERATURE, log=True)

    def learning_rate(self, params: dict[str, Any]) -> float:
        """The learning rate a sampled point trains with: on the half-octave grid, inside the range."""
        low, high = (bound * self.lr_unit for bound in self.lr_range)
        return on_grid(params[self.lr_name] * self.lr_unit, self.lr_anchor, low, high)


def warm_start_points(
    space: DefineSpace, spec: SearchSpec, num_layers: int, scores: LayerScores | None, anchor_lr: float, num_trials: int
) -> list[dict[str, Any]]:
    """The search's first points, in ``space``'s own parameters: at each depth from ``min_count`` to ``max_count``
    (at most half the search's ``num_trials``, for the sampler needs the rest; spread evenly from the shallowest
    depth to the deepest when there are more), the block whose input and output
    are closest in angle (Gromov et al.; the layer scores the search computes), at :data:`WARM_START_LR_SCALE`
    times ``anchor_lr``, the tuned reference's learning rate; the spec's epochs, no distillation. A window at the
    block's start expresses it, else the angular-block strategy; none without either strategy or the scores."""
    limit = num_trials // 2
    if not warm_starts(spec.space) or scores is None or limit < 1:
        return []
    strategy = next(s for s in WARM_START_STRATEGIES if s in space.strategies)
    depths = list(range(space.min_count, space.max_count + 1))
    if len(depths) > limit:
        step = (len(depths) - 1) / max(limit - 1, 1)
        depths = sorted({depths[round(i * step)] for i in range(limit)})
    low, high = space.lr_range
    lr = min(max(WARM_START_LR_SCALE * anchor_lr / space.lr_unit, low), high)
    epochs = min(max(spec.trial.training.epochs, space.epochs[0]), space.epochs[1])
    points = []
    for count in depths:
        point: dict[str, Any] = {"strategy": strategy, "count": count}
        if strategy == "window":
            start = min(angular_block(num_layers, scores, count))
            point["start_fraction"] = start / (num_layers - count)
        point |= {space.lr_name: lr, "epochs": epochs}
        if space.distill:
            point["distill"] = False
        points.append(point)
    return points


def warm_start_line(points: list[dict[str, Any]], learning_rate: float) -> str:
    """What the terminal says of the warm start before the trials, e.g. "the first 3 trials (space.warm_start):
    the angular block of 1, 3 and 5 layers, at lr 4.0e-04 (2x the reference's); the sampler picks the rest"."""
    counts = [str(p["count"]) for p in points]
    depths = counts[0] if len(counts) == 1 else ", ".join(counts[:-1]) + " and " + counts[-1]
    first = "the first trial" if len(counts) == 1 else f"the first {len(counts)} trials"
    layers = "layer" if counts == ["1"] else "layers"
    return (
        f"{first} (space.warm_start): the angular block of {depths} {layers}, at lr {learning_rate:.1e} "
        f"({WARM_START_LR_SCALE:g}x the reference's); the sampler picks the rest"
    )


def strategy_params(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """The sampled values the strategy takes (count or threshold, start fraction), the count mapped into
    what the strategy can drop: the range stays static while alternate-even/odd drop at most half the layers
    (a count beyond that realises the strategy's deepest drop, so it is a repeat, not a failed point)."""
    name = params["strategy"]
    accepted = get_strategy(name).params
    taken: dict[str, Any] = {
        k: params[k] for k in ("count", "threshold", "start_fraction") if k in params and k in accepted
    }
    if "count" in taken:
        taken["count"] = min(taken["count"], count_limit(name, num_layers))
    return taken


def distill_params(params: dict[str, Any], base: tuple[float, float] = NO_DISTILL) -> tuple[float, float]:
    """(alpha, temperature) of a sampled point, rounded (two points this close teach the same); ``base``, the
    spec's own, when the search samples no distillation."""
    if "distill" not in params:
        return distilled(*base)
    if not params["distill"]:
        return NO_DISTILL
    return distilled(round(params["distill_alpha"], 2), round(params.get("distill_temperature", 1.0), 1))


def distilled(alpha: float, temperature: float) -> tuple[float, float]:
    """The (alpha, temperature) that names a trial's distillation: :data:`NO_DISTILL` when alpha is 0."""
    return NO_DISTILL if alpha == 0 else (float(alpha), float(temperature))


def trial_config(
    spec: SearchSpec,
    params: dict[str, Any],
    drop_params: dict[str, Any],
    kept: tuple[int, ...],
    learning_rate: float,
    distill: tuple[float, float] = NO_DISTILL,
) -> dict[str, Any]:
    """The TrialConfig (as a dict) of one sampled point: the spec's base with its values replaced."""
    drop: dict[str, Any] = {"drop.strategy": params["strategy"]}
    drop |= {f"drop.{k}": v for k, v in drop_params.items()}
    overrides: dict[str, Any] = {
        "kept_layers": list(kept),
        "training.learning_rate": learning_rate,
        "training.epochs": params["epochs"],
    }
    if distill != NO_DISTILL or "distill" in params:
        overrides |= {"distill.alpha": distill[0], "distill.temperature": distill[1] or spec.trial.distill.temperature}
    return dict(spec.trial.with_overrides(drop | overrides).to_dict())


PointKey = tuple[tuple[int, ...], float, int, tuple[float, float]]


def point_key(
    kept: tuple[int, ...], learning_rate: float, epochs: int, distill: tuple[float, float] = NO_DISTILL
) -> PointKey:
    """What makes two trials the same experiment on one seed: a repeat would teach nothing."""
    return (tuple(kept), learning_rate, int(epochs), distill)


def tell_repeat(study: Any, trial: Any, earlier: Any) -> None:
    """A repeat of the earlier (frozen) trial costs no training: Optuna is told what the earlier one gave, with
    its constraint (or FAIL while that is unknown), so the sampler is not misled and moves on."""
    trial.set_user_attr("repeat_of", earlier.number)
    for key, value in (earlier.constraints or {}).items():
        trial.set_constraint(key, value)
    if earlier.state == optuna.trial.TrialState.COMPLETE:
        study.tell(trial, earlier.values)
    elif earlier.state == optuna.trial.TrialState.PRUNED:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def budget_excess(spec: SearchSpec, reference_score: float, score: float) -> float:
    """How far the score's drop exceeds the tolerance (> 0 = over budget)."""
    return drop(reference_score, score, spec.budget.relative) - spec.budget.tolerance


def objective(layers_dropped: int, score: float, excess: float) -> float:
    """Constrained objective: every feasible trial (drops + score < 1) ranks above every infeasible one."""
    return layers_dropped + score if within(excess, 0.0) else -excess


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
