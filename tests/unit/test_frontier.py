"""search/frontier.py: where an answer is still open, the probes that go there, and when an unset count stops."""

from __future__ import annotations

from prunetune.search.frontier import (
    PROBES_PER_DEPTH,
    Tried,
    next_step,
    open_depths,
    probe_order,
    provisional_depth,
)

N = 6
DEPTHS = range(1, 6)
LR = {"learning_rate_scale": 2.0, "epochs": 2}


def window(start: int, count: int, drop: float | None, lr: float = 2.0) -> Tried:
    kept = tuple(i for i in range(N) if not start <= i < start + count)
    fraction = start / (N - count)
    params = {"strategy": "window", "count": count, "start_fraction": fraction, "learning_rate_scale": lr, "epochs": 2}
    return Tried(kept, params, drop)


def test_an_answer_is_open_one_past_the_deepest_drop_within_and_wherever_it_is_within_by_less_than_a_margin() -> None:
    tried = [window(4, 1, 0.001), window(3, 2, 0.008), window(2, 3, 0.03)]
    assert provisional_depth(tried, N, 0.01) == 2
    # within 1 point by 0.2 at depth 2 (the search seed's luck may have put it there), surely within at depth 1
    assert open_depths(tried, N, [0.01], DEPTHS) == [2, 3]
    assert open_depths(tried, N, [0.01, 0.03], DEPTHS) == [2, 3, 4]
    assert open_depths([window(0, 5, 0.0)], N, [0.01], DEPTHS) == []  # nothing past the deepest droppable depth


def test_probes_follow_the_trials_own_evidence_before_the_layer_scores() -> None:
    anchor = window(4, 1, 0.0)  # the best single layer to drop: layer 4
    order = [params["start_fraction"] * (N - 2) for params, _ in probe_order(N, 2, anchor, None, ["window"])]
    # the windows holding layer 4 first (3:2, 4:2), then the others nearest it
    assert [round(start) for start in order] == [3, 4, 2, 1, 0]


def test_a_search_whose_warm_start_missed_probes_the_open_depth_and_stops_once_it_is_settled() -> None:
    # The warm start's blocks (the layer scores' picks) all missed 1 point: only depth 1's best is within.
    warm = [window(0, 1, 0.004), window(0, 2, 0.03), window(0, 3, 0.05), window(0, 4, 0.06), window(0, 5, 0.08)]
    step = next_step(warm, N, [0.01], DEPTHS, 10, 25, None, LR)
    assert step.kind == "probe" and step.depth == 2 and step.params is not None
    assert step.params["start_fraction"] == 0.0 or step.params["count"] == 2
    assert "still open" in step.reason
    tried = list(warm)
    for _ in range(30):
        step = next_step(tried, N, [0.01], DEPTHS, 10, 25, None, LR)
        if step.kind != "probe":
            break
        assert step.params is not None
        start = round(step.params["start_fraction"] * (N - step.params["count"]))
        tried.append(window(start, step.params["count"], 0.03))  # every probe misses
    # depth 2 (open: one past the answer) got its three kept sets, and nothing else was probed
    assert sum(len(t.kept) == N - 2 for t in tried) == PROBES_PER_DEPTH
    assert step.kind == "sample"  # the sampler fills up to the base count
    tried += [window(5, 1, 0.02)] * (10 - len(tried))
    stop = next_step(tried, N, [0.01], DEPTHS, 10, 25, None, LR)
    assert stop.kind == "stop" and "(dropped so far on the search seed: within 1: 1 layer)" in stop.reason


def test_the_search_goes_on_past_the_base_while_a_probe_finds_more_and_stops_at_the_cap() -> None:
    tried = [window(s % 6, 1, 0.03) for s in range(9)] + [window(2, 3, 0.005)]  # a deep find on trial 10
    step = next_step(tried, N, [0.01], DEPTHS, 10, 25, None, LR)
    assert step.kind == "probe" and step.depth in (3, 4)  # past the base: the new answer opened depth 4
    assert next_step(tried, N, [0.01], DEPTHS, 10, 10, None, LR).kind == "stop"  # a fixed count stops at it


def test_a_running_trial_holds_the_stop_decision() -> None:
    tried = [window(0, c, 0.5) for c in DEPTHS] + [window(s, 1, 0.5) for s in range(1, 6)]
    tried[-1] = Tried(tried[-1].kept, tried[-1].params, None)
    assert next_step(tried, N, [0.01], DEPTHS, 10, 25, None, LR).kind == "wait"
