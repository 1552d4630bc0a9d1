"""The verdict logic of max-drop on hand-made numbers: paired drops, intervals, verdicts, ties, the walk."""

from __future__ import annotations

import math

import pytest
from prunetune.search.decide import (
    Candidate,
    TunedReference,
    answer_tolerance,
    answers_by_configuration,
    best_reference,
    half_width,
    interval,
    paired_drops,
    ranked,
    verdict,
)


def test_paired_drops_subtract_the_reference_on_the_same_seed() -> None:
    drops = paired_drops({1: 0.70, 2: 0.66}, {2: 0.65, 1: 0.68})
    assert drops == pytest.approx({1: 0.02, 2: 0.01})
    assert list(drops) == [1, 2]
    assert paired_drops({1: 0.80}, {1: 0.78}, relative=True)[1] == pytest.approx(0.025)
    assert paired_drops(0.70, {5: 0.69})[5] == pytest.approx(0.01)  # a given reference score: unpaired
    with pytest.raises(ValueError, match=r"no reference score on seeds \[3\]"):
        paired_drops({1: 0.7}, {1: 0.7, 3: 0.6})


def test_interval_is_the_student_t_interval_of_the_mean() -> None:
    # The three seeds of docs/design.md §3: dropping 4 layers cost 1.35, 0.79 and 0.28 points.
    spread = interval([0.0135, 0.0079, 0.0028])
    assert spread.mean == pytest.approx(0.0080667, abs=1e-6)
    # sd 0.005352, t(0.975, 2) = 4.3027: half-width 0.013296
    assert spread.high - spread.mean == pytest.approx(4.302653 * 0.0053520 / math.sqrt(3), rel=1e-3)
    assert spread.mean - spread.low == pytest.approx(spread.high - spread.mean)
    one = interval([0.004])
    assert (one.low, one.high, one.n) == (-math.inf, math.inf, 1)
    with pytest.raises(ValueError):
        interval([])


def test_verdict_within_borderline_over_and_ties() -> None:
    # "4, borderline": the mean is under one point, the interval is not.
    assert verdict(interval([0.0135, 0.0079, 0.0028]), 0.01) == "borderline"
    assert verdict(interval([0.0135, 0.0079, 0.0028]), 0.03) == "within"
    assert verdict(interval([0.0135, 0.0129, 0.0128]), 0.01) == "over"
    # Ties: a drop of exactly the tolerance is within it, on every seed (no spread) and up to float noise.
    assert verdict(interval([0.01, 0.01, 0.01]), 0.01) == "within"
    assert verdict(interval([0.1 + 0.2 - 0.3 + 0.01] * 2), 0.01) == "within"
    assert verdict(interval([0.02, 0.0]), 0.01) == "borderline"  # mean exactly the tolerance, wide interval
    assert verdict(interval([0.0]), 0.01) == "borderline"  # one seed never confident
    assert verdict(interval([0.02]), 0.01) == "over"


def test_half_width_shrinks_with_seeds() -> None:
    widths = [half_width(0.009, n) for n in range(2, 9)]
    assert widths == sorted(widths, reverse=True)
    assert half_width(0.009, 5) == pytest.approx(2.776445 * 0.009 / math.sqrt(5), rel=1e-4)


def test_best_reference_is_the_best_mean_over_seeds_not_the_best_single_run() -> None:
    runs = [
        (1e-4, 2, 1, 0.658),
        (1e-4, 2, 2, 0.645),
        (2e-4, 2, 1, 0.679),
        (2e-4, 2, 2, 0.686),
        (8e-4, 2, 1, 0.101),  # diverged on one seed
        (8e-4, 2, 2, 0.700),  # the best single run
    ]
    best = best_reference(runs)
    assert (best.learning_rate, best.epochs, best.scores) == (2e-4, 2, {1: 0.679, 2: 0.686})
    assert best.score == pytest.approx(0.6825)
    assert best.on_seeds() == {1: 0.679, 2: 0.686}
    tie = best_reference([(4e-4, 2, 1, 0.6), (2e-4, 2, 1, 0.6)])
    assert tie.learning_rate == 2e-4  # ties: the lower learning rate
    given = TunedReference(1e-4, 2, {}, given=0.65)
    assert (given.score, given.on_seeds()) == (0.65, 0.65)


def _candidate(dropped: int, score: float, lr: float = 1e-4) -> Candidate:
    return Candidate(tuple(range(6 - dropped)), dropped, "top", lr, 2, score)


def test_ranked_is_deepest_first_ties_by_score_without_repeats() -> None:
    a, b, c = _candidate(4, 0.60), _candidate(5, 0.50), _candidate(4, 0.62, lr=2e-4)
    assert ranked([a, b, c, a]) == [b, c, a]
    assert ranked([a, _candidate(4, 0.55)]) == [a]  # the same configuration twice: its best score counts


def test_answer_walks_deepest_first_until_a_confident_finding() -> None:
    reference = {1: 0.70, 2: 0.70, 3: 0.70}
    on_seeds = {
        5: {1: 0.60, 2: 0.61, 3: 0.62},  # over
        4: {1: 0.685, 2: 0.70, 3: 0.69},  # mean drop 0.0083, wide: borderline at 1 point
        3: {1: 0.695, 2: 0.696, 3: 0.697},  # mean drop 0.004, tight: within
        2: {1: 0.70, 2: 0.70, 3: 0.70},
    }
    asked: list[int] = []

    def measure(candidate: Candidate, seeds: int = 5):
        asked.append(candidate.layers_dropped)
        scores = on_seeds[candidate.layers_dropped]
        return scores, paired_drops(reference, scores)

    found = answer_tolerance(0.01, [_candidate(k, 0.7) for k in (2, 3, 4, 5)], measure, max_finalists=4)
    assert asked == [5, 4, 3]  # stops at the first confident finding
    assert found.mean_within is not None and found.mean_within.candidate.layers_dropped == 4
    assert found.mean_within.verdict == "borderline"
    assert found.confident is not None and found.confident.candidate.layers_dropped == 3
    assert found.confident.verdict == "within" and found.checked == 3
    document = found.to_dict()
    assert document["answer"]["layers_dropped"] == 4 and document["answer"]["verdict"] == "borderline"
    low, high = document["answer"]["interval"]
    assert low < document["answer"]["drop"] < 0.01 < high
    assert document["confidently_within"]["seeds"] == [1, 2, 3]

    limited = answer_tolerance(0.01, [_candidate(k, 0.7) for k in (3, 4, 5)], measure, max_finalists=2)
    assert limited.checked == 2 and limited.confident is None
    assert limited.mean_within is not None and limited.mean_within.candidate.layers_dropped == 4
    nothing = answer_tolerance(0.01, [], measure, max_finalists=2)
    assert (nothing.mean_within, nothing.confident, nothing.checked) == (None, None, 0)
    # A finalist already re-trained for a tighter tolerance costs nothing, so it is weighed beyond the limit:
    # confidently within 1 point, it is confidently within 2 as well (the real run of benchmarks §1d).
    asked.clear()
    widened = answer_tolerance(
        0.01,
        [_candidate(k, 0.7) for k in (3, 4, 5)],
        measure,
        max_finalists=2,
        measured=lambda c: c.layers_dropped == 3,
    )
    assert widened.confident is not None and widened.confident.candidate.layers_dropped == 3
    assert asked == [5, 4, 3] and widened.checked == 3


def test_without_seek_confident_nothing_more_is_retrained_once_the_answer_is_found() -> None:
    reference = {1: 0.70, 2: 0.70, 3: 0.70}
    on_seeds = {
        5: {1: 0.60, 2: 0.61, 3: 0.62},  # over
        4: {1: 0.685, 2: 0.70, 3: 0.69},  # borderline at 1 point: the answer
        3: {1: 0.695, 2: 0.696, 3: 0.697},  # within, but walked only when sought or already measured
        2: {1: 0.70, 2: 0.70, 3: 0.70},
    }
    asked: list[int] = []

    def measure(candidate: Candidate, seeds: int = 5):
        asked.append(candidate.layers_dropped)
        return on_seeds[candidate.layers_dropped], paired_drops(reference, on_seeds[candidate.layers_dropped])

    candidates = [_candidate(k, 0.7) for k in (2, 3, 4, 5)]
    sought = answer_tolerance(0.01, candidates, measure, max_finalists=4, seek_confident=True)
    assert asked == [5, 4, 3]
    asked.clear()
    stopped = answer_tolerance(0.01, candidates, measure, max_finalists=4, seek_confident=False)
    assert asked == [5, 4]  # the over finalist did not stop the walk; the borderline answer did
    assert stopped.mean_within == sought.mean_within and stopped.checked == 2
    assert stopped.confident is None
    # What is already measured (for a tighter tolerance) costs nothing and is still weighed.
    asked.clear()
    free = answer_tolerance(
        0.01, candidates, measure, max_finalists=4, measured=lambda c: c.layers_dropped == 3, seek_confident=False
    )
    assert asked == [5, 4, 3]
    assert free.mean_within == sought.mean_within and free.confident == sought.confident
    # No answer yet: the walk goes on to max_finalists as before.
    asked.clear()
    for k in on_seeds:
        on_seeds[k] = {1: 0.60, 2: 0.61, 3: 0.62}
    none = answer_tolerance(0.01, candidates, measure, max_finalists=3, seek_confident=False)
    assert asked == [5, 4, 3] and none.mean_within is None


def test_at_the_same_depth_the_surer_finding_is_the_answer() -> None:
    reference = {1: 0.70, 2: 0.70, 3: 0.70}
    wide = Candidate((5,), 5, "middle", 1e-3, 2, 0.69)  # picked first: the higher selection score
    tight = Candidate((5,), 5, "contribution", 8e-4, 3, 0.68)
    on_seeds = {wide: {1: 0.70, 2: 0.67, 3: 0.67}, tight: {1: 0.69, 2: 0.689, 3: 0.691}}

    def measure(candidate: Candidate, seeds: int = 5):
        return on_seeds[candidate], paired_drops(reference, on_seeds[candidate])

    found = answer_tolerance(0.03, [wide, tight], measure, max_finalists=4)
    assert found.checked == 2
    assert found.mean_within is not None and found.mean_within.candidate == tight
    assert found.mean_within.verdict == "within" and found.confident == found.mean_within


def test_a_configuration_answering_several_tolerances_is_grouped_with_each_verdict() -> None:
    # The CI run that found it: one configuration answered 0 and 50 points, borderline at 0 and within at 50;
    # its findings differ in their verdict, so the grouping must go by the configuration, not the finding.
    reference = {1: 0.70, 2: 0.70}
    deep, shallow = _candidate(3, 0.69), _candidate(1, 0.70)

    def measure(candidate: Candidate, seeds: int = 5):
        scores = {1: 0.72, 2: 0.69} if candidate is deep else {1: 0.71, 2: 0.71}  # deep: mean drop -0.005
        return scores, paired_drops(reference, scores)

    loose = answer_tolerance(0.5, [deep, shallow], measure, max_finalists=2)
    tight = answer_tolerance(0.0, [deep], measure, max_finalists=2)
    unanswered = answer_tolerance(0.0, [], measure, max_finalists=2)
    assert tight.mean_within is not None and loose.mean_within is not None
    assert (tight.mean_within.verdict, loose.mean_within.verdict) == ("borderline", "within")
    grouped = answers_by_configuration([loose, unanswered, tight])
    assert list(grouped) == [deep.key]
    assert [(t, f.verdict) for t, f in grouped[deep.key]] == [(0.0, "borderline"), (0.5, "within")]


def test_each_finalist_keeps_its_model_in_a_folder_of_its_own() -> None:
    """The answers' models wait in folders named by configuration: finalists that keep the same layers at
    sampled learning rates a digit apart, or learn from a teacher, must not share one."""
    from prunetune.search.max_drop import model_folder

    sampled = [Candidate((0, 1), 4, "top", lr, 2, 0.6) for lr in (1.4e-4, 1.3e-4, 1.4e-4 * 1.001)]
    taught = Candidate((0, 1), 4, "top", 1.4e-4, 2, 0.6, distill=(0.5, 2.0))
    names = [model_folder(c) for c in [*sampled, taught]]
    assert len(set(names)) == 4
    assert names[0] == "model-kept-0-1-lr0.00014-ep2" and names[3] == "model-kept-0-1-lr0.00014-ep2-kd0.5-t2"
