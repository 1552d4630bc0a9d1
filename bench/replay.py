"""Benchmark 1b: replay max-drop against a table of seeds — how many trials until the right answer?

The table (``bench/tables/minilm-l6-indicnews-en-lr-seeds.csv``) holds the validation score of every
kept-layer set x learning rate (and the unpruned reference at every learning rate) on every seed. A replay
runs ``prunetune max-drop`` as it runs for real, reading scores from the table instead of training:

1. **The search seed** ``s`` is drawn (``random.Random(r)`` for replay seed ``r``) from the table's seeds;
   every trial of the search observes its score on ``s``. The table's other seeds are the **decision
   seeds**.
2. **The tuned reference** is the unpruned configuration with the best mean over the decision seeds
   (``best_reference``); its learning rate anchors the search space (``space.learning_rate_scale``) and
   its mean is what the search's budget (at the loosest tolerance) is measured against.
3. **The search** asks its sampler for a point exactly as ``BudgetSearch`` does (``DefineSpace``: strategy,
   drop count or contribution threshold, window start, learning rate, epochs), realises it with the same
   pure strategies, and snaps the learning rate to the nearest one of the table on a log scale (the table
   has only a few; a half-octave point exactly between two goes to the lower one, the nearer on a linear
   scale). "The same point" is ``point_key(kept, snapped lr, epochs)``: a repeat is told to Optuna with
   the earlier trial's outcome and the sampler asked again, costing no trial; 100 asks without a new point
   end the search, as in ``BudgetSearch``, and so does a space with no point left to run.
4. **After every trial**, max-drop's answer per tolerance ``t``: ``answer_tolerance`` over the trials
   within ``t`` of the tuned reference's configuration on the search seed (paired, as ``max_drop.finalists``
   picks them), the finalists measured on the decision seeds and paired seed by seed with the tuned
   reference. The answer is the depth of ``mean_within`` (0: none).

The **true answer** per tolerance comes from the table's seed means over all seeds: the reference is the
best mean over the table's learning rates, and the answer is the most layers dropped by any (kept layers,
learning rate) whose mean is within ``t`` of it. A replay has *reached* it at the first trial after which
its answer equals it.

Searchers compared, over many replay seeds:

* ``prunetune`` — TPE (``n_startup_trials=4``, seeded with the replay seed) with the budget as a
  constraint and the constrained objective, as ``BudgetSearch`` runs it;
* ``random`` — Optuna's RandomSampler over the same space and the same repeat rule;
* ``grid`` — every distinct pruned (kept layers, learning rate) of the table once, in a random order.
* ``cycled`` (measured, not the product's; not run unless named) — one TPE study per tolerance, the trials asked
  of each in turn, every trained point told to all (docs/benchmarks.md §1e).

The goal (issue 14): the right answer within a fifth of the grid's points, in at least 80 % of the replay
seeds, at every tolerance.

    bench/replay.py --seeds 100 --json bench/results/replay-seeds.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prunetune.search.decide import (
    Candidate,
    ToleranceAnswer,
    TunedReference,
    answer_tolerance,
    best_reference,
    paired_drops,
)
from prunetune.search.frontier import Tried, next_step
from prunetune.search.max_drop import finalists
from prunetune.search.samplers import TPE_STARTUP_TRIALS
from prunetune.search.space import (
    CONSTRAINT,
    DefineSpace,
    PointKey,
    budget_excess,
    objective,
    point_key,
    strategy_params,
    tell_repeat,
    warm_start_points,
)
from prunetune.search.spec import SearchSpec, droppable_depths, load_spec, trial_counts
from prunetune.trainables.strategies import StrategyError, kept_layers

from prunetune.records import EPSILON, LayerScores, drop

sys.path.insert(0, str(Path(__file__).resolve().parent))  # paths, beside this script
from paths import LAYER_SCORES, SEED_TABLE, shown  # noqa: E402

STRATEGIES = ["top", "bottom", "middle", "window", "alternate-even", "alternate-odd", "contribution"]
SEARCHERS = ("prunetune", "random", "grid", "cycled")
DEFAULT_SEARCHERS = SEARCHERS[:3]  # cycled: measured in docs/benchmarks.md §1e, not the product's
MAX_ASKS = 100  # as BudgetSearch.suggest: this many asks without a new point and the search is done
GOAL_SHARE = 0.8  # the goal: the right answer within a fifth of the grid in >= 80 % of replay seeds

Point = PointKey  # point_key: (kept layers, learning rate, epochs, distillation)


@dataclass(frozen=True)
class Table:
    """The seed table: every pruned point's and every reference configuration's score on each seed."""

    path: Path
    num_layers: int
    pruned: dict[Point, dict[int, float]]  # point -> seed -> val_score
    configs: dict[Point, str]  # point -> the table's config name (window:1:2, alt-even:2, ...)
    reference_runs: list[tuple[float, int, int, float]]  # (learning_rate, epochs, seed, val_score)
    seeds: list[int] = field(default_factory=list)

    @property
    def learning_rates(self) -> list[float]:
        return sorted({point[1] for point in self.pruned} | {lr for lr, _, _, _ in self.reference_runs})

    @property
    def epochs(self) -> list[int]:
        return sorted({point[2] for point in self.pruned})

    @property
    def grid(self) -> list[Point]:
        """Every distinct pruned point, in a fixed order."""
        return sorted(self.pruned)

    def score(self, point: Point, seed: int) -> float:
        try:
            return self.pruned[point][seed]
        except KeyError:
            raise KeyError(
                f"the table has no score for kept {list(point[0])}, lr {point[1]:g}, "
                f"{point[2]} epochs on seed {seed}: the search space reaches beyond the table"
            ) from None


def load_table(path: Path) -> Table:
    """Read the seed table; random-init rows (the from-scratch baseline) are left out."""
    pruned: dict[Point, dict[int, float]] = {}
    configs: dict[Point, str] = {}
    reference_runs: list[tuple[float, int, int, float]] = []
    num_layers = 0
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["variant"] == "random-init":
                continue
            kept = tuple(json.loads(row["kept_layers"]))
            lr, epochs, seed, score = (
                float(row["learning_rate"]),
                int(row["epochs"]),
                int(row["seed"]),
                float(row["val_score"]),
            )
            if row["variant"] == "reference":
                num_layers = max(num_layers, len(kept))
                reference_runs.append((lr, epochs, seed, score))
            elif row["variant"] == "pruned":
                point = point_key(kept, lr, epochs)
                pruned.setdefault(point, {})[seed] = score
                configs[point] = row["config"]
            else:
                raise ValueError(f"{path}: unknown variant {row['variant']!r}")
    if not reference_runs:
        raise ValueError(f"{path}: no reference rows")
    seeds = sorted({seed for _, _, seed, _ in reference_runs})
    incomplete = [p for p, by_seed in pruned.items() if sorted(by_seed) != seeds]
    if incomplete:
        raise ValueError(f"{path}: {len(incomplete)} pruned points lack a score on some of the seeds {seeds}")
    return Table(path, num_layers, pruned, configs, reference_runs, seeds)


def snap(learning_rate: float, rates: Sequence[float]) -> float:
    """The table's learning rate nearest ``learning_rate`` on a log scale; a tie (a half-octave point exactly
    between two table rates, up to the 6 digits ``on_grid`` keeps) goes to the lower rate."""
    distance = [abs(math.log(learning_rate) - math.log(rate)) for rate in rates]
    nearest = min(distance)
    return min(rate for rate, d in zip(rates, distance, strict=True) if d <= nearest + 1e-4)


def tuned_reference(table: Table, seeds: Iterable[int]) -> TunedReference:
    """The reference configuration with the best mean over ``seeds`` (lr tuned over the table's rates)."""
    keep = set(seeds)
    return best_reference([run for run in table.reference_runs if run[2] in keep])


def seed_means(table: Table) -> dict[Point, float]:
    return {point: statistics.mean(by_seed.values()) for point, by_seed in table.pruned.items()}


def true_answers(table: Table, tolerances: Sequence[float]) -> tuple[TunedReference, dict[float, int]]:
    """Per tolerance, the most layers any pruned point drops with its seed mean within ``t`` of the
    reference's best seed mean (all of the table's seeds; a drop of exactly ``t`` is within)."""
    reference = tuned_reference(table, table.seeds)
    means = seed_means(table)
    answers = {
        t: max(
            (
                table.num_layers - len(kept)
                for (kept, *_), m in means.items()
                if drop(reference.score, m) <= t + EPSILON
            ),
            default=0,
        )
        for t in tolerances
    }
    return reference, answers


def make_spec(table: Table, tolerances: Sequence[float], max_finalists: int, warm_start: bool = True) -> SearchSpec:
    return load_spec(
        None,
        {
            "space.strategies": STRATEGIES,
            "space.epochs": [min(table.epochs), max(table.epochs)],
            "space.warm_start": warm_start,
            "budget.tolerance": max(tolerances),
            "max_finalists": max_finalists,
        },
    )


def reachable_points(space: DefineSpace, table: Table, scores: LayerScores | None) -> set[Point]:
    """Every point the space can produce, after snapping: when all of them ran, the space holds no new one."""
    n = table.num_layers
    rates = table.learning_rates
    kept_sets: set[tuple[int, ...]] = set()
    for strategy in space.strategies:
        options: list[dict[str, Any]]
        if strategy == "contribution" and space.thresholds is not None:
            low, high = space.thresholds
            assert scores is not None
            # A threshold drops the layers scoring at least it: each score in range is one distinct set.
            cuts = [c for c in (scores.contribution(layer) for layer in range(n)) if low <= c <= high]
            options = [{"threshold": c} for c in cuts]
        else:
            counts = range(space.min_count, space.max_count + 1)
            if strategy == "window":
                options = [{"count": c, "start_fraction": i / max(n - c, 1)} for c in counts for i in range(n - c + 1)]
            else:
                options = [{"count": c} for c in counts]
        for params in options:
            try:
                kept_sets.add(kept_layers(strategy, n, params, scores))
            except StrategyError:
                pass
    low, high = space.lr_range
    lrs = set()
    for step in range(-64, 65):  # half-octave multiples of the anchor, as on_grid places them
        value = 2 ** (step / 2)
        if low - 1e-12 <= value <= high + 1e-12:
            lrs.add(snap(space.learning_rate({space.lr_name: value}), rates))
    return {point_key(k, lr, e) for k in kept_sets for lr in lrs for e in range(space.epochs[0], space.epochs[1] + 1)}


class Answers:
    """max-drop's answer per tolerance as trials arrive, recomputed only when a tolerance's candidates change."""

    def __init__(
        self,
        table: Table,
        reference: TunedReference,
        search_seed: int,
        decision_seeds: list[int],
        tolerances: Sequence[float],
        max_finalists: int,
    ) -> None:
        self.table, self.reference = table, reference
        self.search_seed, self.decision_seeds = search_seed, decision_seeds
        self.tolerances, self.max_finalists = list(tolerances), max_finalists
        # The tuned reference's configuration on the search seed: finalists are picked paired with it.
        self.on_search_seed = next(
            score
            for lr, epochs, seed, score in table.reference_runs
            if (lr, epochs, seed) == (reference.learning_rate, reference.epochs, search_seed)
        )
        self.candidates: dict[float, list[Candidate]] = {t: [] for t in self.tolerances}
        self.answers: dict[float, ToleranceAnswer | None] = dict.fromkeys(self.tolerances)
        self.measured: dict[tuple, tuple[dict[int, float], dict[int, float]]] = {}

    def measure(self, candidate: Candidate, seeds: int = 0) -> tuple[dict[int, float], dict[int, float]]:
        """A finalist "re-trained" on the decision seeds (all of the table's: ``seeds`` is not enough to spare
        any), its table scores paired with the reference's."""
        if candidate.key not in self.measured:
            point = point_key(candidate.kept_layers, candidate.learning_rate, candidate.epochs)
            scores = {seed: self.table.score(point, seed) for seed in self.decision_seeds}
            self.measured[candidate.key] = (scores, paired_drops(self.reference.on_seeds(), scores))
        return self.measured[candidate.key]

    def add(self, candidate: Candidate) -> None:
        for t in self.tolerances:
            if finalists([(candidate, None)], self.on_search_seed, t, False):  # as max_drop picks finalists
                self.candidates[t].append(candidate)
                self.answers[t] = answer_tolerance(
                    t, self.candidates[t], self.measure, self.max_finalists, seek_confident=SearchSpec.seek_confident
                )

    def depth(self, t: float) -> int:
        answer = self.answers[t]
        return 0 if answer is None or answer.mean_within is None else answer.mean_within.candidate.layers_dropped

    def verdict(self, t: float) -> str:
        answer = self.answers[t]
        return "none" if answer is None or answer.mean_within is None else answer.mean_within.verdict


def full_table_answer(
    table: Table, search_seed: int, tolerances: Sequence[float], max_finalists: int
) -> dict[float, tuple[int, str]]:
    """max-drop's answer (depth, verdict) per tolerance had the search tried every pruned point of the table:
    what a search that ran everything would answer with this search seed. Where it is not the truth, the
    decision (one search seed, the decision seeds, ``max_finalists``) misses, not the search. (Not a strict
    bound: a partial search whose deepest candidates are missing spends its finalists elsewhere.)"""
    decision = [seed for seed in table.seeds if seed != search_seed]
    reference = tuned_reference(table, decision)
    answers = Answers(table, reference, search_seed, decision, tolerances, max_finalists)
    for point in table.grid:
        kept, lr, epochs, _ = point
        answers.add(
            Candidate(
                kept, table.num_layers - len(kept), table.configs[point], lr, epochs, table.score(point, search_seed)
            )
        )
    return {t: (answers.depth(t), answers.verdict(t)) for t in tolerances}


@dataclass
class Replay:
    """One replayed max-drop: what it trained, and its answer per tolerance after every trial."""

    searcher: str
    replay_seed: int
    search_seed: int
    decision_seeds: list[int]
    reference: TunedReference
    points: list[Point] = field(default_factory=list)  # trained, in order (on the search seed)
    depths: dict[float, list[int]] = field(default_factory=dict)  # t -> answer after trial 1, 2, ...
    verdicts: dict[float, list[str]] = field(default_factory=dict)
    repeats: int = 0  # points sampled again and told the earlier outcome (no training)
    unrealisable: int = 0  # sampled points no strategy can realise (told FAIL, no training)
    stopped: str = ""

    def after(self, t: float, trials: int) -> tuple[int, str]:
        """The answer (depth, verdict) after ``trials`` trials (or after the last, if the search ran fewer)."""
        if not self.points or trials < 1:
            return 0, "none"
        i = min(trials, len(self.points)) - 1
        return self.depths[t][i], self.verdicts[t][i]

    def reached(self, t: float, truth: int) -> int | None:
        """1-based trial after which the answer first equals ``truth`` (None: never)."""
        return next((i + 1 for i, d in enumerate(self.depths[t]) if d == truth), None)


def replay(
    searcher: str,
    replay_seed: int,
    table: Table,
    layer_scores: LayerScores | None,
    tolerances: Sequence[float],
    max_finalists: int = SearchSpec.max_finalists,
    max_trials: int | None = None,
    startup_trials: int = TPE_STARTUP_TRIALS,
    warm_start: bool = True,
    frontier: bool = True,
) -> Replay:
    """One max-drop replayed by ``searcher`` (prunetune / random / grid) with replay seed ``replay_seed``."""
    rng = random.Random(replay_seed)
    search_seed = rng.choice(table.seeds)
    decision = [seed for seed in table.seeds if seed != search_seed]
    reference = tuned_reference(table, decision)
    spec = make_spec(table, tolerances, max_finalists, warm_start)
    answers = Answers(table, reference, search_seed, decision, tolerances, max_finalists)
    result = Replay(searcher, replay_seed, search_seed, decision, reference)
    result.depths = {t: [] for t in tolerances}
    result.verdicts = {t: [] for t in tolerances}
    n = table.num_layers

    def trained(point: Point, strategy: str) -> float:
        score = table.score(point, search_seed)
        result.points.append(point)
        answers.add(Candidate(point[0], n - len(point[0]), strategy, point[1], point[2], score))
        for t in tolerances:
            result.depths[t].append(answers.depth(t))
            result.verdicts[t].append(answers.verdict(t))
        return score

    if searcher == "grid":
        order = table.grid
        rng.shuffle(order)
        for point in order[:max_trials]:
            trained(point, table.configs[point])
        result.stopped = "grid done" if max_trials is None or max_trials >= len(order) else "max trials"
        return result

    result.stopped = sampled_search(
        searcher,
        replay_seed,
        spec,
        table,
        reference.learning_rate,
        reference.score,
        layer_scores,
        trained,
        max_trials,
        result,
        startup_trials,
        tolerances,
        frontier,
    )
    return result


def sampled_search(
    searcher: str,
    sampler_seed: int,
    spec: SearchSpec,
    table: Table,
    anchor_lr: float,
    reference_score: float,
    layer_scores: LayerScores | None,
    trained: Callable[[Point, str], float],
    max_trials: int | None,
    counts: Any = None,
    startup_trials: int = TPE_STARTUP_TRIALS,
    tolerances: Sequence[float] = (),
    frontier: bool = True,
) -> str:
    """A search as ``BudgetSearch`` runs it (``prunetune``: TPE; ``random``), each new point trained through
    ``trained(point, strategy) -> score``; why it stopped. ``counts`` (a :class:`Replay`) gets its repeats and
    unrealisable asks.

    ``cycled`` (measured, not the product's): one TPE study per tolerance in ``tolerances``, each with the
    budget at its own tolerance; trial i is asked of study i mod k, and every trained point is told to every
    study with that study's objective and constraint, so each sees all the evidence and aims at its own depth."""
    import optuna

    n = table.num_layers
    frontier_tolerances = sorted(tolerances) or [spec.budget.tolerance]
    budgets = sorted(tolerances) if searcher == "cycled" else [spec.budget.tolerance]
    if searcher == "cycled" and not budgets:
        raise ValueError("the cycled searcher needs the tolerances")

    def sampler(j: int) -> Any:
        if searcher in ("prunetune", "cycled"):  # as make_sampler
            return optuna.samplers.TPESampler(seed=sampler_seed + j, n_startup_trials=startup_trials)
        if searcher == "random":
            return optuna.samplers.RandomSampler(seed=sampler_seed)
        raise ValueError(f"unknown searcher {searcher!r}: one of {SEARCHERS}")

    specs = [replace(spec, budget=replace(spec.budget, tolerance=t)) for t in budgets]
    space = DefineSpace(spec, n, anchor_lr, layer_scores)
    reachable = reachable_points(space, table, layer_scores)
    studies = [optuna.create_study(direction="maximize", sampler=sampler(j)) for j in range(len(budgets))]
    depths = droppable_depths(spec.space, n)
    base, cap = (max_trials, max_trials) if max_trials is not None else trial_counts(spec, n)
    warm: list[dict[str, Any]] = []
    if searcher == "prunetune":  # as BudgetSearch: the warm start first (space.warm_start)
        warm = warm_start_points(space, spec, n, layer_scores, anchor_lr, base)
        for params in warm:
            studies[0].enqueue_trial(params)
    outcomes: list[dict[Point, Any]] = [{} for _ in budgets]  # per study: point -> its frozen trial there
    tried: list[Tried] = []  # what the frontier knows (search/frontier.py), as BudgetSearch tells it
    while True:
        trained_points = outcomes[0].keys()
        if reachable <= trained_points:
            return "space exhausted"
        if (searcher != "prunetune" or not frontier) and len(trained_points) >= (max_trials or cap):
            return "max trials"
        j = len(trained_points) % len(budgets)
        study, repeats = studies[j], 0
        if searcher == "prunetune" and frontier and len(tried) >= len(warm):  # as BudgetSearch, after the warm start
            step = next_step(
                tried, n, frontier_tolerances, depths, base, cap, layer_scores, warm[0] if warm else {},
                space.strategies,
            )  # fmt: skip
            if step.kind == "stop":
                return step.reason
            if step.kind == "probe":
                assert step.params is not None
                study.enqueue_trial(dict(step.params))
        for _ in range(MAX_ASKS):  # as BudgetSearch.suggest: unrealisable or repeated points are re-asked
            trial = study.ask()
            space(trial)
            params = trial.params
            try:
                kept = kept_layers(params["strategy"], n, strategy_params(params, n), layer_scores)
            except StrategyError:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)  # not trained: costs nothing
                if counts is not None:
                    counts.unrealisable += 1
                continue
            point = point_key(kept, snap(space.learning_rate(params), table.learning_rates), params["epochs"])
            if point in outcomes[j]:  # as BudgetSearch: the earlier trial's outcome, no training
                tell_repeat(study, trial, outcomes[j][point])
                repeats += 1
                if counts is not None:
                    counts.repeats += 1
                continue
            score = trained(point, params["strategy"])
            tried.append(Tried(kept, dict(params), drop(reference_score, score)))
            for i, (other, budget) in enumerate(zip(studies, specs, strict=True)):
                excess = budget_excess(budget, reference_score, score)
                value = objective(n - len(kept), score, excess)
                if i == j:
                    trial.set_constraint(CONSTRAINT, excess)
                    study.tell(trial, value)
                else:
                    other.add_trial(
                        optuna.trial.create_trial(
                            params=params, distributions=trial.distributions, value=value,
                            constraints={CONSTRAINT: excess},
                        )
                    )  # fmt: skip
                outcomes[i][point] = other.get_trials(deepcopy=False)[-1]
            break
        else:
            # BudgetSearch returns FINISHED after a repeat among them, else raises RuntimeError ("the search
            # space keeps producing points no strategy can realise"): the search ends either way.
            return f"{MAX_ASKS} asks without a new point" if repeats else f"{MAX_ASKS} unrealisable asks (error)"


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def summarise(
    replays: dict[str, list[Replay]],
    truths: dict[float, int],
    grid_size: int,
    goal: int,
    full_answers: dict[int, dict[float, tuple[int, str]]] | None = None,
) -> dict[str, Any]:
    """Per searcher and tolerance: trials to the true answer, and how often the answer is right at the goal.
    With ``full_answers`` (per search seed, what every table point as a trial would answer), also how often the
    search itself did its part: its answer after the goal's trials equals its search seed's full-table answer."""
    out: dict[str, Any] = {}
    for name, runs in replays.items():
        by_tolerance = {}
        for t, truth in truths.items():
            reached = [r.reached(t, truth) for r in runs]
            counted = [grid_size + 1 if h is None else h for h in reached]
            at_goal = [r.after(t, goal) for r in runs]
            by_search_seed: dict[str, dict[str, Any]] = {}
            for seed in sorted({r.search_seed for r in runs}):
                mine = [r for r in runs if r.search_seed == seed]
                by_search_seed[str(seed)] = {
                    "replays": len(mine),
                    "answer_at_goal_correct": sum(r.after(t, goal)[0] == truth for r in mine) / len(mine),
                    "depths_at_goal": _counts(r.after(t, goal)[0] for r in mine),
                }
            by_tolerance[str(t)] = {
                "true_answer": truth,
                "median_trials": statistics.median(counted),
                "p80_trials": nearest_rank(counted, 0.8),
                "reached": sum(h is not None for h in reached) / len(runs),
                "reached_within_goal": sum(h is not None and h <= goal for h in reached) / len(runs),
                "answer_at_goal_correct": sum(d == truth for d, _ in at_goal) / len(runs),
                "verdicts_at_goal": _counts(v for _, v in at_goal),
                "depths_at_goal": _counts(d for d, _ in at_goal),
                "final_answer_correct": sum(r.after(t, len(r.points))[0] == truth for r in runs) / len(runs),
                "mean_trials_at_stop": statistics.mean(len(r.points) for r in runs),
                "by_search_seed": by_search_seed,
            }
            if full_answers is not None:
                full = [full_answers[r.search_seed][t][0] for r in runs]
                depths = [d for d, _ in at_goal]
                by_tolerance[str(t)]["answer_at_goal_equals_full_table"] = sum(
                    d == f for d, f in zip(depths, full, strict=True)
                ) / len(runs)
                # Where the search stops (its own rule, or the trials it was given): the answer a user gets.
                by_tolerance[str(t)]["answer_at_stop_equals_full_table"] = sum(
                    r.after(t, len(r.points))[0] == f for r, f in zip(runs, full, strict=True)
                ) / len(runs)
                # The full-table answer is not a bound: with every point tried, the deepest lucky candidates use
                # up the finalists and a tight tolerance can end "none" where a partial search answers nearer
                # the truth. So also: the answer is as near the true depth as the full-table one, or nearer.
                by_tolerance[str(t)]["answer_at_goal_as_near_as_full_table"] = sum(
                    abs(d - truth) <= abs(f - truth) for d, f in zip(depths, full, strict=True)
                ) / len(runs)
        out[name] = {
            "tolerances": by_tolerance,
            "mean_trials_run": statistics.mean(len(r.points) for r in runs),
            "mean_repeats": statistics.mean(r.repeats for r in runs),
            "mean_unrealisable": statistics.mean(r.unrealisable for r in runs),
            "stopped": _counts(r.stopped for r in runs),
            "goal_met": all(
                v["reached_within_goal"] >= GOAL_SHARE and v["answer_at_goal_correct"] >= GOAL_SHARE
                for v in by_tolerance.values()
            ),
        }
    return out


def _counts(values: Iterable[Any]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}


def per_seed(run: Replay, truths: dict[float, int], goal: int) -> dict[str, Any]:
    return {
        "replay_seed": run.replay_seed,
        "search_seed": run.search_seed,
        "trials": len(run.points),
        "repeats": run.repeats,
        "unrealisable": run.unrealisable,
        "stopped": run.stopped,
        "tolerances": {
            str(t): {
                "reached_at": run.reached(t, truth),
                "depth_at_goal": run.after(t, goal)[0],
                "verdict_at_goal": run.after(t, goal)[1],
                "final_depth": run.after(t, len(run.points))[0],
                "final_verdict": run.after(t, len(run.points))[1],
                "final_correct": run.after(t, len(run.points))[0] == truth,
            }
            for t, truth in truths.items()
        },
    }


def run_all(
    table: Table,
    layer_scores: LayerScores | None,
    tolerances: Sequence[float],
    seeds: int,
    max_finalists: int = SearchSpec.max_finalists,
    max_trials: int | None = None,
    searchers: Sequence[str] = DEFAULT_SEARCHERS,
    progress: Callable[[str], None] | None = None,
    startup_trials: int = TPE_STARTUP_TRIALS,
    warm_start: bool = True,
    frontier: bool = True,
    scores_path: Path | None = None,
) -> dict[str, Any]:
    """Every searcher over replay seeds 0..seeds-1; the report as a JSON-ready dict."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tolerances = sorted(tolerances)
    reference, truths = true_answers(table, tolerances)
    grid_size = len(table.grid)
    goal = grid_size // 5
    replays: dict[str, list[Replay]] = {}
    # At the product's default trial rule (max_trials None) prunetune stops where its rule stops it, and every other
    # sampled searcher gets as many trials as prunetune used on the same replay seed: compared at equal cost.
    order = sorted(searchers, key=lambda name: name != "prunetune")
    for name in order:
        started = time.monotonic()
        replays[name] = []
        for r in range(seeds):
            trials = max_trials
            if trials is None and name in ("random", "cycled") and "prunetune" in replays:
                trials = len(replays["prunetune"][r].points)
            replays[name].append(
                replay(
                    name,
                    r,
                    table,
                    layer_scores,
                    tolerances,
                    max_finalists,
                    trials,
                    startup_trials,
                    warm_start,
                    frontier,
                )  # fmt: skip
            )
        if progress:
            progress(f"{name}: {seeds} replays in {time.monotonic() - started:.0f} s")
    search_refs = {}
    for runs in replays.values():
        for run in runs:
            search_refs[str(run.search_seed)] = {
                "decision_seeds": run.decision_seeds,
                "learning_rate": run.reference.learning_rate,
                "epochs": run.reference.epochs,
                "score": run.reference.score,
                "scores": {str(s): v for s, v in run.reference.scores.items()},
            }
    spec = make_spec(table, tolerances, max_finalists)
    full_answers = {seed: full_table_answer(table, seed, tolerances, max_finalists) for seed in table.seeds}
    return {
        "table": shown(Path(table.path)),  # relative to the checkout: results travel between machines
        "grid_size": grid_size,
        "goal_trials": goal,
        "goal": f"the true answer within {goal} trials (a fifth of the grid) in >= {GOAL_SHARE:.0%} of replay seeds",
        "replay_seeds": seeds,
        "max_trials": max_trials,
        "tolerances": tolerances,
        "max_finalists": max_finalists,
        "startup_trials": startup_trials,
        "warm_start": warm_start,
        "frontier": frontier,
        "layer_scores": None if scores_path is None else shown(scores_path),
        "seeds": table.seeds,
        "space": {
            "strategies": STRATEGIES,
            "learning_rate_scale": list(spec.space.learning_rate_scale),
            "epochs": list(spec.space.epochs),
            "table_learning_rates": table.learning_rates,
        },
        "reference": {
            "learning_rate": reference.learning_rate,
            "epochs": reference.epochs,
            "score": reference.score,
            "scores": {str(s): v for s, v in reference.scores.items()},
        },
        "search_references": dict(sorted(search_refs.items())),
        "true_answer": {str(t): truths[t] for t in tolerances},
        # per search seed: max-drop's answer had every table point been a trial
        "full_table_answer": {
            str(seed): {str(t): {"depth": d, "verdict": v} for t, (d, v) in by_t.items()}
            for seed, by_t in full_answers.items()
        },
        "searchers": summarise(replays, truths, grid_size, goal, full_answers),
        "per_seed": {name: [per_seed(run, truths, goal) for run in runs] for name, runs in replays.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    goal = report["goal_trials"]
    lines = [
        f"replays over {report['replay_seeds']} seeds; grid {report['grid_size']} pruned points, goal <= {goal} "
        f"trials; reference (seed means) lr {report['reference']['learning_rate']:g}, "
        f"{report['reference']['score']:.4f}",
        "",
        "| searcher | tolerance | true answer | median trials | 80th pct | reached within goal | "
        f"answer right after {goal} | verdicts after {goal} | = full-table answer after {goal} | "
        f"as near the truth as the full-table answer after {goal} | final answer right |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, summary in report["searchers"].items():
        for t, row in summary["tolerances"].items():
            verdicts = ", ".join(f"{k} {v}" for k, v in row["verdicts_at_goal"].items())
            lines.append(
                f"| {name} | {t} | {row['true_answer']} | {row['median_trials']:g} | {row['p80_trials']:g} | "
                f"{row['reached_within_goal']:.0%} | {row['answer_at_goal_correct']:.0%} | {verdicts} | "
                f"{row.get('answer_at_goal_equals_full_table', math.nan):.0%} | "
                f"{row.get('answer_at_goal_as_near_as_full_table', math.nan):.0%} | {row['final_answer_correct']:.0%} |"
            )
    lines.append("")
    for seed, by_t in report["full_table_answer"].items():
        ref = report["search_references"].get(seed)
        where = "" if ref is None else f" (reference on seeds {ref['decision_seeds']}: {ref['score']:.4f})"
        answers = ", ".join(
            f"t={t}: {a['depth']} ({'right' if a['depth'] == report['true_answer'][t] else 'wrong'})"
            for t, a in by_t.items()
        )
        lines.append(f"search seed {seed}{where}, every table point a trial: {answers}")
    lines.append("")
    lines.append(
        "unreached counts as grid size + 1 trials; verdicts: of the answer (none: no finalist within); "
        "full-table answer: max-drop's answer had every table point been a trial on that search seed"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--table", type=Path, default=SEED_TABLE)
    parser.add_argument("--scores", type=Path, default=LAYER_SCORES, help="LayerScores JSON (contribution)")
    parser.add_argument("--seeds", type=int, default=100, help="replay seeds")
    parser.add_argument("--json", type=Path, required=True, help="write the report here")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    parser.add_argument("--max-finalists", type=int, default=SearchSpec.max_finalists)
    parser.add_argument("--max-trials", type=int, help="stop each search after this many trials (default: none)")
    parser.add_argument("--startup-trials", type=int, default=TPE_STARTUP_TRIALS, help="TPE's random trials first")
    parser.add_argument("--searchers", nargs="+", default=list(DEFAULT_SEARCHERS), choices=SEARCHERS)
    parser.add_argument("--no-warm-start", action="store_true", help="prunetune's searcher without its warm start")
    parser.add_argument(
        "--no-frontier", action="store_true", help="prunetune's searcher without its probes and stop rule (issue 23's)"
    )
    args = parser.parse_args(argv)

    table = load_table(args.table)
    layer_scores = LayerScores.from_json(args.scores.read_text())
    if layer_scores.num_layers != table.num_layers:
        raise SystemExit(f"{args.scores} scores {layer_scores.num_layers} layers; the table has {table.num_layers}")
    started = time.monotonic()
    report = run_all(
        table, layer_scores, args.tolerances, args.seeds, args.max_finalists, args.max_trials, args.searchers,
        progress=print, startup_trials=args.startup_trials, warm_start=not args.no_warm_start,
        frontier=not args.no_frontier, scores_path=args.scores,
    )  # fmt: skip
    report["seconds"] = round(time.monotonic() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    print(f"\n{report['seconds']:.0f} s; wrote {args.json}")


if __name__ == "__main__":
    main()
