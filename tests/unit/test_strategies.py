from __future__ import annotations

import itertools

import pytest
from prunetune.trainables.strategies import STRATEGIES, StrategyError, check_kept, kept_layers

from prunetune.records import LayerScores


def scores_for(contribution: list[float]) -> LayerScores:
    """Scores where state i and i+1 have cosine contribution[i]; angular distance grows with 1 - cosine."""
    n = len(contribution)
    cos = [[1.0] * (n + 1) for _ in range(n + 1)]
    ang = [[0.0] * (n + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(i + 1, n + 1):
            dist = sum(1 - c for c in contribution[i:j])
            ang[i][j] = ang[j][i] = dist
            cos[i][j] = cos[j][i] = 1 - dist
    return LayerScores("test", n, 10, 32, tuple(map(tuple, cos)), tuple(map(tuple, ang)))


def dropped(strategy: str, n: int, **params) -> list[int]:
    kept = kept_layers(strategy, n, params, params.pop("scores", None))
    return [i for i in range(n) if i not in kept]


@pytest.mark.parametrize("n", [2, 6, 12, 24])
@pytest.mark.parametrize("strategy", ["top", "bottom", "middle", "alternate-even", "alternate-odd"])
def test_count_strategies_keep_sorted_unique_in_range(strategy: str, n: int) -> None:
    for count in range(n):
        try:
            kept = kept_layers(strategy, n, {"count": count})
        except StrategyError:
            assert strategy.startswith("alternate") and count > (n // 2 if strategy.endswith("even") else (n + 1) // 2)
            continue
        assert list(kept) == sorted(set(kept))
        assert all(0 <= i < n for i in kept)
        assert len(kept) == n - count


def test_named_blocks_on_twelve_layers() -> None:
    assert dropped("top", 12, count=3) == [9, 10, 11]
    assert dropped("bottom", 12, count=3) == [0, 1, 2]
    assert dropped("middle", 12, count=6) == [3, 4, 5, 6, 7, 8]  # Marathi study: keep 0-2 and 9-11
    assert dropped("middle", 12, count=10) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    # 1-based even layers from the top: 12, 10, 8, 6 -> indices 11, 9, 7, 5
    assert dropped("alternate-even", 12, count=4) == [5, 7, 9, 11]
    assert dropped("alternate-odd", 12, count=4) == [4, 6, 8, 10]


@pytest.mark.parametrize("n", [3, 6, 12])
def test_windows_are_contiguous_and_cover_every_offset(n: int) -> None:
    for count, start in itertools.product(range(1, n), range(n)):
        if start + count > n:
            with pytest.raises(StrategyError, match="does not fit"):
                kept_layers("window", n, {"count": count, "start": start})
            continue
        gone = dropped("window", n, count=count, start=start)
        assert gone == list(range(start, start + count))


def test_window_start_fraction_maps_a_static_range_onto_valid_blocks() -> None:
    assert dropped("window", 12, count=4, start_fraction=0.0) == [0, 1, 2, 3]
    assert dropped("window", 12, count=4, start_fraction=1.0) == [8, 9, 10, 11]
    assert dropped("window", 12, count=4, start_fraction=0.5) == [4, 5, 6, 7]
    with pytest.raises(StrategyError, match="exactly one of start"):
        kept_layers("window", 12, {"count": 4, "start": 1, "start_fraction": 0.5})
    with pytest.raises(StrategyError, match=r"\[0, 1\]"):
        kept_layers("window", 12, {"count": 4, "start_fraction": 1.5})


def test_contribution_by_threshold_and_by_count() -> None:
    scores = scores_for([0.5, 0.97, 0.9, 0.99, 0.6, 0.3])
    assert dropped("contribution", 6, threshold=0.95, scores=scores) == [1, 3]
    assert dropped("contribution", 6, count=3, scores=scores) == [1, 2, 3]
    assert dropped("contribution", 6, threshold=0.999, scores=scores) == []
    with pytest.raises(StrategyError, match="would drop all 6 layers"):
        kept_layers("contribution", 6, {"threshold": 0.1}, scores)
    with pytest.raises(StrategyError, match="exactly one of threshold"):
        kept_layers("contribution", 6, {}, scores)
    with pytest.raises(StrategyError, match="needs layer scores"):
        kept_layers("contribution", 6, {"count": 1})


def test_angular_block_picks_the_block_that_changes_least() -> None:
    scores = scores_for([0.5, 0.97, 0.9, 0.99, 0.6, 0.3])
    assert dropped("angular-block", 6, count=2, scores=scores) == [2, 3]
    assert dropped("angular-block", 6, count=1, scores=scores) == [3]
    assert dropped("angular-block", 6, count=3, scores=scores) == [1, 2, 3]
    with pytest.raises(StrategyError, match="scores are for 6 layers"):
        kept_layers("angular-block", 12, {"count": 2}, scores)


def test_explicit_and_errors_name_the_problem() -> None:
    assert dropped("explicit", 6, layers=[4, 1]) == [1, 4]
    with pytest.raises(StrategyError, match="out of range"):
        kept_layers("explicit", 6, {"layers": [6]})
    with pytest.raises(StrategyError, match="repeated"):
        kept_layers("explicit", 6, {"layers": [1, 1]})
    with pytest.raises(StrategyError, match="keeps none"):
        kept_layers("explicit", 3, {"layers": [0, 1, 2]})
    with pytest.raises(StrategyError, match="out of range.*at least one layer"):
        kept_layers("top", 6, {"count": 6})
    with pytest.raises(StrategyError, match="(?s)unknown strategy .topp.*window"):
        kept_layers("topp", 6, {"count": 1})
    with pytest.raises(StrategyError, match=r"takes \['count'\], not \['start'\]"):
        kept_layers("top", 6, {"count": 1, "start": 2})
    with pytest.raises(StrategyError, match=r"needs \['count'\]"):
        kept_layers("middle", 6, {})
    with pytest.raises(StrategyError, match="integer"):
        kept_layers("top", 6, {"count": 1.5})


def test_check_kept() -> None:
    assert check_kept(4, [3, 0]) == (0, 3)
    with pytest.raises(StrategyError):
        check_kept(4, [])


def test_every_strategy_is_documented() -> None:
    assert {
        "top",
        "bottom",
        "middle",
        "window",
        "alternate-even",
        "alternate-odd",
        "contribution",
        "angular-block",
        "explicit",
        "none",
    } <= set(STRATEGIES)
    assert all(s.summary for s in STRATEGIES.values())


def test_a_registered_strategy_is_searchable_by_name_and_a_taken_name_is_refused() -> None:
    from prunetune.trainables import strategies

    @strategies.register_strategy("every-third-test")
    def every_third(num_layers: int, count: int) -> list[int]:
        """Drop every third layer from the top, `count` of them."""
        return list(range(num_layers - 1, -1, -3))[:count]

    try:
        assert strategies.kept_layers("every-third-test", 6, {"count": 2}) == (0, 1, 3, 4)
        assert "every-third-test(count): Drop every third layer" in strategies.describe()
        with pytest.raises(strategies.StrategyError, match="'top' exists already"):
            strategies.register_strategy("top")(every_third)
    finally:
        del strategies.STRATEGIES["every-third-test"]
