"""The reference's sweep is extended past an edge its best learning rate sits on (search/reference.py)."""

from __future__ import annotations

import pytest
from prunetune.search.reference import past_the_edge, reference_trials
from prunetune.search.spec import load_spec
from prunetune.trainables.config import ConfigError


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
