"""Sequential re-checks and failed seeds: the decision's rules on plain numbers (search/decide.py)."""

from __future__ import annotations

import math

import pytest
from prunetune.search.decide import (
    Candidate,
    RecheckPlan,
    answer_tolerance,
    best_reference,
    collapsed_seeds,
    finding,
    recheck,
)

CANDIDATE = Candidate((0, 5), 4, "window", 4e-4, 2, 0.68)


def measuring(drops_by_seed: dict[int, float]):
    """A ``measure`` over fixed paired drops (reference 0.70 on every seed); it counts the seeds it was asked for."""
    asked: list[int] = []

    def measure(candidate: Candidate, seeds: int):
        asked.append(seeds)
        on = dict(list(drops_by_seed.items())[:seeds])
        return {s: 0.70 - d for s, d in on.items()}, on

    return measure, asked


def test_within_is_called_on_every_seed_never_on_the_first_stage_alone() -> None:
    measure, asked = measuring({1: 0.001, 2: 0.002, 3: 0.0015, 4: 0.0, 5: 0.001})
    found = recheck(CANDIDATE, measure, 0.01, RecheckPlan((3, 5)))
    assert found.verdict == "within" and asked == [3, 5] and found.drops_interval.n == 5


def test_a_clearly_over_finalist_stops_at_its_first_stage() -> None:
    measure, asked = measuring({1: 0.05, 2: 0.052, 3: 0.049, 4: 0.05, 5: 0.05})
    found = recheck(CANDIDATE, measure, 0.01, RecheckPlan((3, 5)))
    assert found.verdict == "over" and found.drops_interval.low > 0.01 and asked == [3]


def test_an_undecided_finalist_trains_on_more_seeds() -> None:
    measure, asked = measuring({1: 0.0, 2: 0.02, 3: 0.005, 4: 0.004, 5: 0.006})
    found = recheck(CANDIDATE, measure, 0.01, RecheckPlan((3, 5)))
    assert asked == [3, 5] and found.drops_interval.n == 5


def test_a_seed_that_collapsed_makes_the_finalist_over_whatever_its_mean() -> None:
    # four seeds a point under the tolerance of 3 points, one collapsed (9 points): the mean is within
    drops = {1: 0.01, 2: 0.09, 3: 0.01, 4: 0.01, 5: 0.0}
    measure, _ = measuring(drops)
    assert recheck(CANDIDATE, measure, 0.03, RecheckPlan((5,))).verdict == "borderline"  # the interval alone
    found = recheck(CANDIDATE, measure, 0.03, RecheckPlan((5,), collapse_margin=0.05))
    assert found.verdict == "over" and found.drops_interval.mean < 0.03 and found.collapsed == (2,)
    assert collapsed_seeds(found, 0.03, 0.05) == [2] and collapsed_seeds(found, 0.03, None) == []
    # staged: the collapse on the second seed ends it there; the other three are never trained
    measure, asked = measuring(drops)
    assert recheck(CANDIDATE, measure, 0.03, RecheckPlan((2, 5), collapse_margin=0.05)).verdict == "over"
    assert asked == [2]
    # a drop at the margin is not a collapse: only past it
    measure, _ = measuring({1: 0.08, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0})
    assert recheck(CANDIDATE, measure, 0.03, RecheckPlan((5,), collapse_margin=0.05)).verdict == "borderline"


def test_collapse_margin_defaults_to_5_points_and_is_checked_before_anything_runs() -> None:
    from prunetune.search.spec import load_spec, recheck_plan

    from prunetune.config import ConfigError

    assert recheck_plan(load_spec(None, {})).collapse_margin == 0.05
    assert recheck_plan(load_spec(None, {"collapse_margin": "null"})).collapse_margin is None
    for bad in (0, -0.05, 1.5):
        with pytest.raises(ConfigError, match=f"collapse_margin={bad}"):
            load_spec(None, {"collapse_margin": bad})


def test_stages_must_grow_from_one() -> None:
    for stages in [(), (3, 3), (5, 3), (0, 5)]:
        with pytest.raises(ValueError, match="seed counts that grow"):
            RecheckPlan(stages)


def test_a_failed_seed_is_reported_and_left_out_of_the_interval() -> None:
    scores = {1: 0.69, 2: math.nan, 3: 0.695}
    drops = {s: 0.70 - v for s, v in scores.items()}
    found = finding(CANDIDATE, scores, drops, 0.02)
    assert found.failed_seeds == [2] and found.drops_interval.n == 2
    assert found.mean_score == pytest.approx(0.6925)
    document = found.to_dict()
    assert document["failed_seeds"] == [2] and document["drops"]["2"] is None  # JSON has no NaN


def test_every_seed_failed_is_over_and_the_decision_still_finishes() -> None:
    def measure(candidate: Candidate, seeds: int):
        return {s: math.nan for s in range(1, seeds + 1)}, {s: math.nan for s in range(1, seeds + 1)}

    answer = answer_tolerance(0.01, [CANDIDATE], measure, 4)
    assert answer.mean_within is None and answer.confident is None
    assert [f.verdict for f in answer.findings] == ["over"]
    assert answer.to_dict()["answer"] is None


def test_a_reference_configuration_that_failed_on_a_seed_is_not_chosen() -> None:
    runs = [(2e-4, 2, 1, 0.68), (2e-4, 2, 2, math.nan), (1e-4, 2, 1, 0.66), (1e-4, 2, 2, 0.65)]
    assert best_reference(runs).learning_rate == 1e-4
    with pytest.raises(ValueError, match="failed"):
        best_reference([(2e-4, 2, 1, math.nan)])


def test_each_interval_is_at_the_level_of_every_finalist_a_run_may_re_train() -> None:
    """Each interval is at 1 - 0.05 / (max_finalists x tolerances) (Bonferroni); a drop within at 95 % alone may
    be only borderline for the family. The rate this level keeps is measured in test_family_wise.py."""
    from prunetune.search.decide import Candidate, family_confidence, finding
    from prunetune.search.spec import load_spec, recheck_plan

    assert family_confidence(1) == pytest.approx(0.95) and family_confidence(4) == pytest.approx(0.9875)
    plan = recheck_plan(load_spec(None, {}))
    assert plan.confidence == pytest.approx(1 - 0.05 / 5) and plan.stages == (2, 5)  # 5 finalists, 2 seeds first
    at_once = recheck_plan(load_spec(None, {"max_finalists": 3, "first_seeds": "null"}))
    assert at_once.confidence == pytest.approx(1 - 0.05 / 3) and at_once.stages == (5,)
    # first_seeds at or past seeds is every seed at once: a --seeds 2 run needs no first_seeds of its own
    assert recheck_plan(load_spec(None, {"seeds": 2})).stages == (2,)
    assert recheck_plan(load_spec(None, {"seeds": 1})).stages == (1,)
    assert recheck_plan(load_spec(None, {}), 3).confidence == pytest.approx(1 - 0.05 / 15)  # a 3-tolerance run
    drops = {s: d for s, d in enumerate([0.2, 0.5, 0.8, 0.4, 0.6])}  # mean 0.5, sd 0.24
    alone = finding(Candidate((0, 5), 4, "top", 4e-4, 2, 0.7), drops, drops, 0.85, 0.95)
    family = finding(Candidate((0, 5), 4, "top", 4e-4, 2, 0.7), drops, drops, 0.85, plan.confidence)
    assert (alone.verdict, family.verdict) == ("within", "borderline")
    assert (
        family.drops_interval.confidence == plan.confidence and family.drops_interval.high > alone.drops_interval.high
    )


def test_the_terminal_says_which_seed_collapsed_once_per_finalist() -> None:
    from prunetune.search.decide import ToleranceAnswer
    from prunetune.search.max_drop import say_collapses

    measure, _ = measuring({1: 0.01, 2: 0.09, 3: 0.01})
    plan = RecheckPlan((3,), collapse_margin=0.05)
    answers = [ToleranceAnswer(t, None, None, 1, (recheck(CANDIDATE, measure, t, plan),)) for t in (0.01, 0.02, 0.03)]
    lines: list[str] = []
    say_collapses(answers, 0.05, False, lines.append)
    assert lines == [
        "over: window kept [0, 5] (lr 4.0e-04, 2 epochs) collapsed: it dropped 9 points on seed(s) [2], "
        "more than collapse_margin (5 points) past 1 point"
    ]
    lines.clear()
    unruled = RecheckPlan((3,))  # no collapse_margin: the same seeds, and nothing to say
    measure, _ = measuring({1: 0.01, 2: 0.09, 3: 0.01})
    quiet = [ToleranceAnswer(t, None, None, 1, (recheck(CANDIDATE, measure, t, unruled),)) for t in (0.01, 0.03)]
    say_collapses(quiet, 0.05, False, lines.append)
    assert lines == []
