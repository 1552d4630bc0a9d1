"""Benchmark 1b: replay searches against the grid table — how many trials until the right answer?

The table (bench/grid.py) holds the validation score of every kept-layer set x learning rate. A replayed
search asks its sampler for a point exactly as a real search does (prunetune's ``DefineSpace``: strategy,
drop count, window start, learning rate, epochs), realises it with the same pure strategies, and reads the
score from the table instead of training (the learning rate snaps to the nearest one in the table, on a
log scale). For each tolerance the *true* maximum droppable layers comes from the whole table; a search
has *found* it at the first trial after which its deepest drop within that tolerance equals it.

Searchers compared, over many seeds:
* ``prunetune`` — max-drop's search: TPE with the budget (at the loosest tolerance) as a constraint and
  the constrained objective, as ``BudgetSearch`` runs it;
* ``random`` — Optuna's RandomSampler over the same space;
* ``grid`` — every distinct (kept layers, learning rate) once, in a random order (a grid must run all of
  them to *know* the answer; the order only says when it first sees it).

    bench/replay.py --table bench/results/grid-minilm-indicnews-en.csv --seeds 100
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import optuna
from prunetune.search.searcher import DefineSpace, _strategy_params, budget_excess, objective
from prunetune.search.spec import load_spec
from prunetune.trainables.scores import LayerScores
from prunetune.trainables.strategies import StrategyError, kept_layers

HERE = Path(__file__).resolve().parent
STRATEGIES = ["top", "bottom", "middle", "window", "alternate-even", "alternate-odd", "contribution"]


def load_table(path: Path) -> dict[tuple[tuple[int, ...], float], float]:
    with path.open() as f:
        return {
            (tuple(json.loads(r["kept_layers"])), float(r["learning_rate"])): float(r["val_score"])
            for r in csv.DictReader(f)
        }


def truth(table: dict, num_layers: int, reference: float, tolerance: float) -> int:
    """The most layers any (kept layers, lr) of the table drops within ``tolerance`` of the reference."""
    return max((num_layers - len(k) for (k, _), s in table.items() if reference - s <= tolerance), default=0)


def first_hit(trace: list[tuple[int, float]], reference: float, tolerance: float, target: int) -> int | None:
    """1-based trial at which the deepest drop within ``tolerance`` reaches ``target`` (None: never)."""
    best = 0
    for number, (dropped, score) in enumerate(trace, 1):
        if reference - score <= tolerance:
            best = max(best, dropped)
        if best >= target:
            return number
    return None


def replay(sampler: Any, spec: Any, table: dict, scores: LayerScores, reference: float, trials: int) -> list:
    """Run one search of ``trials`` trained trials against the table; the (layers dropped, score) of each."""
    num_layers = scores.num_layers
    rates = sorted({lr for _, lr in table})
    space = DefineSpace(spec, num_layers)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    trace: list[tuple[int, float]] = []
    for _ in range(trials * 100):
        if len(trace) == trials:
            break
        trial = study.ask()
        space(trial)
        params = trial.params
        try:
            kept = kept_layers(params["strategy"], num_layers, _strategy_params(params), scores)
        except StrategyError:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # not trained: costs nothing
            continue
        lr = min(rates, key=lambda r: abs(math.log(r) - math.log(params["learning_rate"])))
        score = table[(kept, lr)]
        excess = budget_excess(spec, reference, score)
        trial.set_constraint("acc_drop_excess", excess)
        study.tell(trial, objective(num_layers - len(kept), score, excess))
        trace.append((num_layers - len(kept), score))
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(HERE / "results" / "grid-minilm-indicnews-en.csv"))
    parser.add_argument("--reference-lr", type=float, default=2e-4, help="the reference run's learning rate")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--output", help="also write the per-seed results as JSON")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    table_path = Path(args.table)
    table = load_table(table_path)
    scores = LayerScores.from_json(table_path.with_name(table_path.stem + "-scores.json").read_text())
    n = scores.num_layers
    reference = table[(tuple(range(n)), args.reference_lr)]
    rates = sorted({lr for _, lr in table})
    grid = [(k, lr) for (k, lr) in table if len(k) < n]  # the pruned configurations
    budget = len(grid) // 3  # the goal: the answer within a third of the grid's trials
    spec = load_spec(
        None,
        {
            "space.strategies": STRATEGIES,
            "space.learning_rate": [min(rates), max(rates)],
            "space.epochs": [2, 2],
            "budget.tolerance": max(args.tolerances),
        },
    )
    targets = {t: truth(table, n, reference, t) for t in args.tolerances}
    print(
        f"table: {len(table)} rows ({len(grid)} pruned configurations, {len(rates)} learning rates); "
        f"reference {reference:.4f}"
    )
    print("true maximum droppable layers: " + ", ".join(f"{t:g}: {k}" for t, k in targets.items()))

    results: dict[str, dict[float, list[int | None]]] = {}
    for name in ("prunetune", "random", "grid"):
        results[name] = {t: [] for t in args.tolerances}
        for seed in range(args.seeds):
            if name == "grid":
                order = grid[:]
                random.Random(seed).shuffle(order)
                trace = [(n - len(k), table[(k, lr)]) for k, lr in order]
            else:
                sampler = (
                    optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)  # as BudgetSearch builds it
                    if name == "prunetune"
                    else optuna.samplers.RandomSampler(seed=seed)
                )
                trace = replay(sampler, spec, table, scores, reference, len(grid))
            for t in args.tolerances:
                results[name][t].append(first_hit(trace, reference, t, targets[t]))

    print(f"\ntrials to the true maximum (over {args.seeds} seeds; grid size {len(grid)}, goal <= {budget} trials)")
    print("| searcher | tolerance | true max dropped | median trials | 90th percentile | found within the goal |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, by_tolerance in results.items():
        for t, hits in by_tolerance.items():
            found = sorted(h if h is not None else len(grid) + 1 for h in hits)
            p90 = found[int(0.9 * (len(found) - 1))]
            within = sum(h is not None and h <= budget for h in hits) / len(hits)
            median = statistics.median(found)
            print(f"| {name} | {t:g} | {targets[t]} | {median:g} | {p90} | {within:.0%} |")
    if args.output:
        Path(args.output).write_text(json.dumps({n: {str(t): h for t, h in r.items()} for n, r in results.items()}))


if __name__ == "__main__":
    main()
