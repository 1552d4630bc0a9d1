"""The reference's sweep is extended past an edge its best learning rate sits on (search/reference.py)."""

from __future__ import annotations

import pytest
from prunetune.search.reference import past_the_edge, reference_trials
from prunetune.search.spec import load_spec

from prunetune.config import ConfigError


def test_a_best_at_the_top_or_bottom_of_the_sweep_asks_for_an_octave_past_it() -> None:
    assert past_the_edge([1e-4, 2e-4, 4e-4], 4e-4) == 8e-4
    assert past_the_edge([4e-4, 1e-4, 2e-4], 1e-4) == 5e-5  # the order the user wrote does not matter
    assert past_the_edge([1e-4, 2e-4, 4e-4, 8e-4], 8e-4) == pytest.approx(1.6e-3)  # an extended sweep goes on


def test_a_best_inside_the_sweep_or_a_single_fixed_rate_asks_for_nothing() -> None:
    assert past_the_edge([1e-4, 2e-4, 4e-4], 2e-4) is None
    assert past_the_edge([2e-4], 2e-4) is None  # one rate: the user fixed the reference
    assert past_the_edge([2e-4, 2e-4], 2e-4) is None


def test_the_extension_trains_one_rate_on_every_epoch_and_decision_seed() -> None:
    spec = load_spec(None, {"reference.learning_rates": "[1e-4, 4e-4]", "reference.epochs": "[1, 2]", "seeds": 2})
    runs = [(t.training.learning_rate, t.training.epochs, t.training.seed) for t in reference_trials(spec, [8e-4])]
    assert runs == [(8e-4, 1, 43), (8e-4, 1, 44), (8e-4, 2, 43), (8e-4, 2, 44)]
    assert {t.kept_layers for t in reference_trials(spec, [8e-4])} == {None}  # the unpruned model


def test_edge_steps_is_checked_before_anything_runs() -> None:
    assert load_spec(None, {}).reference.edge_steps == 2
    with pytest.raises(ConfigError, match="reference.edge_steps=-1"):
        load_spec(None, {"reference.edge_steps": -1})


def test_a_repeated_rate_or_epoch_count_is_refused_before_it_trains_the_same_runs_twice() -> None:
    with pytest.raises(ConfigError, match=r"reference.epochs=\[1, 1\]: a value is repeated"):
        load_spec(None, {"reference.epochs": "[1, 1]"})
    with pytest.raises(ConfigError, match=r"reference.learning_rates=\[0.0001, 0.0001\]: a value is repeated"):
        load_spec(None, {"reference.learning_rates": "[1e-4, 1e-4]"})


def test_the_sweep_goes_past_its_edge_while_the_best_stays_there_and_no_further_than_its_steps() -> None:
    from prunetune.search.decide import best_reference
    from prunetune.search.reference import sweep_past_edges

    means = {5e-5: 0.58, 1e-4: 0.65, 2e-4: 0.68, 4e-4: 0.69, 8e-4: 0.70, 1.6e-3: 0.40}  # the optimum at 8e-4
    trained: list[list[float]] = []

    def train(rates: list[float]) -> object:
        trained.append(rates)
        done = [lr for batch in trained for lr in batch]
        return best_reference([(lr, 2, seed, means[lr]) for lr in done for seed in (43, 44)])

    lines: list[str] = []
    best, tried = sweep_past_edges([1e-4, 2e-4, 4e-4], 2, train, lines.append)
    assert trained == [[1e-4, 2e-4, 4e-4], [8e-4], [pytest.approx(1.6e-3)]]  # 1.6e-3 loses: the best is inside
    assert best.learning_rate == 8e-4 and len(tried) == 5 and past_the_edge(tried, best.learning_rate) is None
    assert lines[0].startswith("reference: lr 4.0e-04 is the best and the sweep's edge: trying lr 8.0e-04")
    trained.clear()
    best, tried = sweep_past_edges([1e-4, 2e-4, 4e-4], 1, train, lines.append)  # one step: still at the edge
    assert best.learning_rate == 8e-4 and past_the_edge(tried, best.learning_rate) == pytest.approx(1.6e-3)
    trained.clear()
    best, tried = sweep_past_edges([1e-4, 2e-4, 4e-4], 0, train, lines.append)
    assert (best.learning_rate, tried, trained) == (4e-4, [1e-4, 2e-4, 4e-4], [[1e-4, 2e-4, 4e-4]])


def _screened(scores: dict[tuple[float, int], float], screen_seeds: int | None, margin: float = 0.015):
    """A ScreenedSweep over 5 seeds (43..47) whose runs score ``scores[(lr, seed)]``; and the trainings asked."""
    from prunetune.search.reference import ScreenedSweep

    asked: list[tuple[list[tuple[float, int]], list[int]]] = []

    def train(configs, seeds):
        asked.append((configs, seeds))
        return {(lr, e, s): scores[(lr, s)] for lr, e in configs for s in seeds}

    lines: list[str] = []
    sweep = ScreenedSweep([2], [43, 44, 45, 46, 47], screen_seeds, margin, train, lines.append)
    return sweep, asked, lines


def test_a_screened_sweep_trains_the_rest_of_the_seeds_only_for_rates_near_the_best() -> None:
    # 1e-4 is 3 points below on every seed; 4e-4 is 1 point below 2e-4 on the first two seeds, above it later.
    scores = {(1e-4, s): 0.65 for s in range(43, 48)}
    scores |= {(2e-4, s): 0.68 for s in range(43, 48)}
    scores |= {(4e-4, 43): 0.67, (4e-4, 44): 0.67} | {(4e-4, s): 0.70 for s in (45, 46, 47)}
    sweep, asked, lines = _screened(scores, screen_seeds=2)
    best = sweep([1e-4, 2e-4, 4e-4])
    assert asked == [([(1e-4, 2), (2e-4, 2), (4e-4, 2)], [43, 44]), ([(2e-4, 2), (4e-4, 2)], [45, 46, 47])]
    assert (best.learning_rate, sorted(best.scores)) == (4e-4, [43, 44, 45, 46, 47])  # chosen on every seed
    assert sweep.screened_out == [(1e-4, 2)]
    assert lines == [
        "reference: lr 1.0e-04, 2 epochs on seeds [43, 44]: mean val_score 0.6500, over 1.5 points below the best; "
        "not trained on the rest"
    ]
    # An octave more (sweep_past_edges's step): the new rate is screened against every rate tried so far.
    scores |= {(8e-4, s): 0.60 for s in range(43, 48)}
    assert sweep([8e-4]).learning_rate == 4e-4
    assert asked[2:] == [([(8e-4, 2)], [43, 44])] and sweep.screened_out == [(1e-4, 2), (8e-4, 2)]


def test_a_rate_that_failed_on_a_screening_seed_is_not_trained_further_and_none_screens_nothing() -> None:
    scores = {(lr, s): 0.68 for lr in (1e-4, 2e-4) for s in range(43, 48)} | {(1e-4, 44): float("nan")}
    sweep, asked, lines = _screened(scores, screen_seeds=2)
    assert sweep([1e-4, 2e-4]).learning_rate == 2e-4
    assert asked[1] == ([(2e-4, 2)], [45, 46, 47]) and "failed on one" in lines[0]
    sweep, asked, _ = _screened(scores | {(1e-4, 44): 0.68}, screen_seeds=None)
    assert sweep([1e-4, 2e-4]).learning_rate == 1e-4  # a tie: the lower rate
    assert asked == [([(1e-4, 2), (2e-4, 2)], [43, 44, 45, 46, 47])]  # every rate on every seed, at once


def test_screen_settings_are_checked_before_anything_runs() -> None:
    assert (load_spec(None, {}).reference.screen_seeds, load_spec(None, {}).reference.screen_margin) == (1, 0.02)
    with pytest.raises(ConfigError, match="reference.screen_seeds=0"):
        load_spec(None, {"reference.screen_seeds": 0})
    with pytest.raises(ConfigError, match="reference.screen_margin=-0.01"):
        load_spec(None, {"reference.screen_margin": -0.01})
