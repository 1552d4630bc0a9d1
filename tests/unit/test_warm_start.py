"""The search's warm start: the angular block of each depth at twice the reference's learning rate, first."""

from __future__ import annotations

import pytest
from prunetune.search.searcher import BudgetSearch
from prunetune.search.space import WARM_START_LR_SCALE, DefineSpace, warm_start_line, warm_start_points
from prunetune.search.spec import load_spec
from prunetune.trainables.strategies import angular_block, kept_layers

from prunetune.records import LayerScores


def scores_where_layers_are_alike(n: int, alike: set[int]) -> LayerScores:
    """Angular scores in which the layers of ``alike`` change their input little and every other layer a lot."""
    step = [0.01 if layer in alike else 1.0 for layer in range(n)]
    angle = [[sum(step[min(i, j) : max(i, j)]) for j in range(n + 1)] for i in range(n + 1)]
    cosine = [[1.0 - a for a in row] for row in angle]
    return LayerScores("m", n, 10, 16, tuple(map(tuple, cosine)), tuple(map(tuple, angle)))


def _points(overrides: dict[str, object], n: int = 6, num_trials: int = 24, anchor: float = 2e-4) -> list[dict]:
    spec = load_spec(None, {"space.epochs": "[2, 2]"} | overrides)
    scores = scores_where_layers_are_alike(n, {2, 3, 4})
    return warm_start_points(DefineSpace(spec, n, anchor, scores), spec, n, scores, anchor, num_trials)


def test_each_depth_is_its_angular_block_as_a_window_at_twice_the_references_rate() -> None:
    n = 6
    scores = scores_where_layers_are_alike(n, {2, 3, 4})
    spec = load_spec(None, {"space.epochs": "[2, 2]"})
    space = DefineSpace(spec, n, 2e-4, scores)
    points = warm_start_points(space, spec, n, scores, 2e-4, 24)
    assert [p["count"] for p in points] == [1, 2, 3, 4, 5]
    for point in points:
        kept = kept_layers("window", n, {"count": point["count"], "start_fraction": point["start_fraction"]})
        assert kept == tuple(i for i in range(n) if i not in angular_block(n, scores, point["count"]))
        assert space.learning_rate(point) == pytest.approx(WARM_START_LR_SCALE * 2e-4)
        assert point["strategy"] == "window" and point["epochs"] == 2
    # The three alike layers are the 3-block: layers 2, 3 and 4 go.
    three = points[2]
    assert kept_layers("window", n, {"count": 3, "start_fraction": three["start_fraction"]}) == (0, 1, 5)


def test_more_depths_than_half_the_trials_are_spread_from_the_shallowest_to_the_deepest() -> None:
    points = _points({}, n=12, num_trials=8)
    assert [p["count"] for p in points] == [1, 4, 8, 11]


def test_without_a_window_the_angular_block_strategy_carries_it_and_without_either_there_is_none() -> None:
    blocks = _points({"space.strategies": "[top, angular-block]"})
    assert {p["strategy"] for p in blocks} == {"angular-block"} and all("start_fraction" not in p for p in blocks)
    assert _points({"space.strategies": "[top, bottom]"}) == []
    assert _points({"space.warm_start": False}) == []


def test_the_rate_stays_inside_the_space_and_distillation_is_off() -> None:
    scaled = _points({"space.learning_rate_scale": "[0.5, 1.5]"})
    assert {p["learning_rate_scale"] for p in scaled} == {1.5}
    absolute = _points({"space.learning_rate": "[1e-4, 1e-3]"}, anchor=3e-4)
    assert [p["learning_rate"] for p in absolute] == pytest.approx([6e-4] * 5)
    assert all(p["distill"] is False for p in _points({"space.distill": True}))


def test_the_search_trains_the_warm_start_first_then_samples() -> None:
    n = 6
    scores = scores_where_layers_are_alike(n, {2, 3, 4})
    spec = load_spec(None, {"space.epochs": "[2, 2]", "num_trials": 8})
    search = BudgetSearch(spec, n, scores, anchor_lr=2e-4)
    suggested = [search.suggest(f"t{i}")["trial"] for i in range(5)]
    # Half the trials at most: 4 of 8, the depths 1, 2, 4 and 5 (spread over 1..5).
    warm = suggested[:4]
    assert [n - len(s["kept_layers"]) for s in warm] == [1, 2, 4, 5]
    assert all(s["training"]["learning_rate"] == pytest.approx(4e-4) for s in warm)
    for s in warm:
        dropped = [i for i in range(n) if i not in s["kept_layers"]]
        assert dropped == list(angular_block(n, scores, len(dropped)))


def test_the_terminal_names_the_depths_and_the_rate_in_a_sentence() -> None:
    points = _points({}, num_trials=6)
    assert warm_start_line(points, 4e-4) == (
        "the first 3 trials (space.warm_start): the angular block of 1, 3 and 5 layers, at lr 4.0e-04 "
        "(2x the reference's); the sampler picks the rest"
    )
    one = warm_start_line(points[:1], 4e-4)
    assert one.startswith("the first trial (space.warm_start): the angular block of 1 layer,")


def test_when_the_warm_start_misses_the_search_probes_the_open_depth_then_stops_past_its_least_trials() -> None:
    """BudgetSearch with num_trials unset (search/frontier.py): the warm start's blocks miss 1 point beyond one
    layer, so the next trials are probes at 2 layers dropped, told to Optuna as such; once that depth has its kept
    sets and the least count has run, the search ends itself (FINISHED) and says why."""
    from prunetune.search.frontier import PROBES_PER_DEPTH
    from ray.tune.search import Searcher

    n = 6
    scores = scores_where_layers_are_alike(n, {2, 3, 4})
    spec = load_spec(None, {"space.epochs": "[2, 2]", "budget.tolerance": 0.03})
    search = BudgetSearch(spec, n, scores, anchor_lr=2e-4, tolerances=(0.01, 0.03))
    assert (search.least_trials, search.most_trials) == (10, 25)
    suggested: list[dict] = []
    for i in range(30):
        config = search.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        assert isinstance(config, dict)
        dropped = n - len(config["trial"]["kept_layers"])
        suggested.append(config)
        miss = 0.002 if dropped == 1 else 0.05  # nothing past one layer is within either tolerance
        search.on_trial_complete(f"t{i}", {"epoch": 2, "objective": dropped - miss, "budget_excess": miss - 0.03,
                                           "drop": miss, "val_score": 0.6})  # fmt: skip
    depths = [n - len(c["trial"]["kept_layers"]) for c in suggested]
    assert depths[:5] == [1, 2, 3, 4, 5]  # the warm start
    probes = [t for t in search.study.get_trials() if t.user_attrs.get("chosen_by") == "probe"]
    assert probes and all(n - len(t.user_attrs["kept_layers"]) == 2 for t in probes)
    assert len({tuple(c["trial"]["kept_layers"]) for c in suggested if n - len(c["trial"]["kept_layers"]) == 2}) >= (
        PROBES_PER_DEPTH
    )
    assert 10 <= len(suggested) < 25 and "stopped after" in search.stop_reason
