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
