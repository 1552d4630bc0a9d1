"""Deciding whether a pruned model stays within a tolerance: paired drops over seeds, an interval, a verdict.

Pure functions on plain numbers, so every rule of the decision lives here and is unit-tested.

* The **drop** of a pruned model on seed ``s`` is ``reference_s - score_s`` (relative: divided by
  ``reference_s``), where ``reference_s`` is the tuned reference trained on the same seed — the same data
  order and initialisation of the head — so the seed's luck cancels as far as it can (*paired*).
* Over ``n`` seeds the mean drop has a Student-t interval ``mean ± t(0.5 + c/2, n-1) · sd / sqrt(n)`` at level
  ``c`` (95 % unless told; max-drop's is the family's, below).
* The **verdict** at tolerance ``t``: *within* when the whole interval is at or under ``t``, *borderline*
  when only the mean is, *over* when the mean is above it. One seed has no interval: at best borderline.
* **The level is the run's.** A run of ``k`` tolerances re-trains at most ``max_finalists`` new finalists per
  tolerance, so at most ``max_finalists · k`` distinct configurations; each is called *within* only on all its
  seeds, and the same seeds weigh it at every tolerance, so its false *within* calls are one event: the interval
  under the loosest tolerance its true drop exceeds. Each interval is therefore at ``1 - 0.05 / (max_finalists ·
  k)`` (Bonferroni, :func:`family_confidence`), and the chance that a run falsely calls *any* configuration within
  *any* of its tolerances is at most 2.5 %, under the interval's own model (paired drops independent and normal
  over seeds). A test measures it where it is tightest: every finalist's true drop exactly at its tolerance
  (tests/unit/test_family_wise.py).
* A seed whose score is NaN (a diverged run, a collapsed sentence model's Spearman) is a **failed seed**: it is
  reported, and left out of the interval; a finalist with no seed left is *over*.
* **Re-checks may be sequential** (:class:`RecheckPlan`): a finalist trains on a few seeds first, and on the
  rest only while it is not clearly over (its whole interval above the tolerance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import mean, stdev
from typing import Literal

from prunetune.libs import stats
from prunetune.records import EPSILON, counted, drop, preference, within

__all__ = [
    "Candidate", "ConfigKey", "FAMILY_CONFIDENCE", "Finding", "RecheckPlan", "ToleranceAnswer", "TunedReference",
    "Verdict", "answer_tolerance", "answers_by_configuration", "best_reference", "collapsed_seeds", "family_confidence",
    "finding", "half_width", "interval", "paired_drops", "ranked", "recheck", "verdict"
]  # fmt: skip


Verdict = Literal["within", "borderline", "over"]


def paired_drops(
    reference: Mapping[int, float] | float, scores: Mapping[int, float], relative: bool = False
) -> dict[int, float]:
    """The drop on each seed of ``scores`` against the reference on the same seed (or one fixed score)."""
    if isinstance(reference, Mapping):
        missing = sorted(set(scores) - set(reference))
        if missing:
            raise ValueError(f"no reference score on seeds {missing}: a paired drop needs the same seeds")
        return {seed: drop(reference[seed], score, relative) for seed, score in sorted(scores.items())}
    return {seed: drop(reference, score, relative) for seed, score in sorted(scores.items())}


def t_quantile(n: int, confidence: float = 0.95) -> float:
    """Student's t quantile for a two-sided ``confidence`` interval of a mean over ``n`` values."""
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1))


FAMILY_CONFIDENCE = 0.95  # what a run's within verdicts hold together, over every tolerance's finalists


def family_confidence(finalists: int) -> float:
    """Each interval's two-sided level when ``finalists`` distinct configurations may each be called within (a run:
    ``max_finalists`` per tolerance times its tolerances): Bonferroni, so that together they are falsely within at
    most (1 - FAMILY_CONFIDENCE) / 2 of the time."""
    return 1 - (1 - FAMILY_CONFIDENCE) / finalists


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float  # -inf / +inf with a single seed: one value says nothing about the spread
    high: float
    n: int
    confidence: float = 0.95  # its two-sided level


NO_EVIDENCE = Interval(math.inf, -math.inf, math.inf, 0)  # every seed failed: nothing says the drop is small


def interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The mean of ``values`` and its Student-t interval."""
    if not values:
        raise ValueError("an interval needs at least one value")
    centre = mean(values)
    if len(values) == 1:
        return Interval(centre, -math.inf, math.inf, 1, confidence)
    half = t_quantile(len(values), confidence) * stdev(values) / math.sqrt(len(values))
    return Interval(centre, centre - half, centre + half, len(values), confidence)


def verdict(drops: Interval, tolerance: float) -> Verdict:
    if within(drops.high, tolerance):
        return "within"
    if within(drops.mean, tolerance):
        return "borderline"
    return "over"


def half_width(sd: float, n: int, confidence: float = 0.95) -> float:
    """The interval's half-width for ``n`` seeds when one seed's drop spreads by ``sd``: how many seeds a
    tolerance needs (docs/design.md §3; docs/benchmarks.md)."""
    return t_quantile(n, confidence) * sd / math.sqrt(n)


@dataclass(frozen=True)
class TunedReference:
    """The reference configuration with the best mean over seeds, and its score on each seed — or, when the
    user gave a known reference score, that one number (``given``) and no seeds."""

    learning_rate: float
    epochs: int
    scores: dict[int, float]  # seed -> validation score
    given: float | None = None

    @property
    def score(self) -> float:
        return self.given if self.given is not None else mean(self.scores.values())

    def describe(self) -> str:
        """One line: how the reference was tuned and what it scored."""
        if self.given is not None:
            return f"the given score {self.given:.4f}"
        return (
            f"the unpruned model at lr {self.learning_rate:.1e}, {counted(self.epochs, 'epoch')} "
            "(the best of its sweep): "
            f"mean val_score {self.score:.4f} over seeds {sorted(self.scores)}"
        )

    def on_seeds(self) -> Mapping[int, float] | float:
        """What a finalist's seeds are compared with: the same seeds' scores, or the one known score."""
        return self.given if self.given is not None else self.scores


def best_reference(runs: Sequence[tuple[float, int, int, float]]) -> TunedReference:
    """From ``(learning_rate, epochs, seed, score)`` of every reference run, the configuration whose mean
    over its seeds is highest (ties: the lower learning rate, then fewer epochs)."""
    by_config: dict[tuple[float, int], dict[int, float]] = {}
    for learning_rate, epochs, seed, score in runs:
        by_config.setdefault((learning_rate, epochs), {})[seed] = score
    # A configuration with a failed (NaN) seed diverged there: it cannot be the reference.
    by_config = {k: v for k, v in by_config.items() if not any(math.isnan(s) for s in v.values())}
    if not by_config:
        raise ValueError("no reference run to choose from (every configuration failed on some seed)")
    (learning_rate, epochs), scores = max(
        by_config.items(), key=lambda kv: (mean(kv[1].values()), -kv[0][0], -kv[0][1])
    )
    return TunedReference(learning_rate, epochs, dict(sorted(scores.items())))


# A configuration: kept layers, learning rate, epochs, distillation (alpha, temperature).
ConfigKey = tuple[tuple[int, ...], float, int, tuple[float, float]]


@dataclass(frozen=True)
class Candidate:
    """A configuration the search found within a tolerance on its own seed: what a finalist is made of."""

    kept_layers: tuple[int, ...]
    layers_dropped: int
    strategy: str
    learning_rate: float
    epochs: int
    selection_score: float  # the search's score on its seed: the best of many trials, so biased upward
    distill: tuple[float, float] = (0.0, 0.0)  # (alpha, temperature); (0, 0): not distilled

    @property
    def key(self) -> ConfigKey:
        return (self.kept_layers, self.learning_rate, self.epochs, self.distill)


@dataclass(frozen=True)
class Finding:
    """A finalist re-trained on the decision seeds and compared, seed by seed, with the tuned reference."""

    candidate: Candidate
    scores: dict[int, float]  # seed -> validation score (NaN: the seed failed)
    drops: dict[int, float]  # seed -> paired drop
    drops_interval: Interval  # over the seeds that did not fail
    verdict: Verdict
    collapsed: tuple[int, ...] = ()  # seeds that made it over whatever its mean (RecheckPlan.collapse_margin)

    @property
    def failed_seeds(self) -> list[int]:
        return sorted(s for s, d in self.drops.items() if math.isnan(d))

    @property
    def mean_score(self) -> float:
        good = [v for v in self.scores.values() if not math.isnan(v)]
        return mean(good) if good else math.nan

    def to_dict(self) -> dict[str, object]:
        c, iv = self.candidate, self.drops_interval
        return {
            "layers_dropped": c.layers_dropped,
            "kept_layers": list(c.kept_layers),
            "strategy": c.strategy,
            "learning_rate": c.learning_rate,
            "epochs": c.epochs,
            "selection_score": c.selection_score,
            "score": _finite(self.mean_score),
            "drop": _finite(iv.mean),
            "interval": [_finite(iv.low), _finite(iv.high)],
            "verdict": self.verdict,
            "seeds": sorted(self.scores),
            "scores": {str(s): v for s, v in sorted(self.scores.items())},
            "drops": {str(s): _finite(v) for s, v in sorted(self.drops.items())},
            "failed_seeds": self.failed_seeds,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity or NaN: null means "no interval"


def finding(
    candidate: Candidate,
    scores: Mapping[int, float],
    drops: Mapping[int, float],
    tolerance: float,
    confidence: float = 0.95,
) -> Finding:
    """A finalist's verdict from its paired drops; failed (NaN) seeds are kept in the record, out of the interval."""
    good = [drops[s] for s in sorted(drops) if not math.isnan(drops[s])]
    spread = interval(good, confidence) if good else NO_EVIDENCE
    return Finding(candidate, dict(scores), dict(drops), spread, verdict(spread, tolerance))


@dataclass(frozen=True)
class RecheckPlan:
    """How finalists are re-trained on the decision seeds: on ``stages[0]`` seeds first, then on more (up to each
    next stage) only while neither clearly over (the whole interval above the tolerance) nor collapsed; a verdict
    of *within* is reached on the last stage's seeds alone. ``confidence``: the two-sided level of every interval."""

    stages: tuple[int, ...] = (5,)
    confidence: float = 0.95
    # A finalist one of whose seeds drops more than this past the tolerance is over (:func:`collapsed_seeds`), and
    # its later stages are not trained. None: the interval alone decides.
    collapse_margin: float | None = None

    def __post_init__(self) -> None:
        if not self.stages or list(self.stages) != sorted(set(self.stages)) or self.stages[0] < 1:
            raise ValueError(f"re-check stages {self.stages}: seed counts that grow, from 1")

    @property
    def seeds(self) -> int:
        """The most decision seeds a finalist trains on."""
        return self.stages[-1]


def recheck(
    candidate: Candidate,
    measure: Callable[[Candidate, int], tuple[Mapping[int, float], Mapping[int, float]]],
    tolerance: float,
    plan: RecheckPlan,
) -> Finding:
    """``candidate`` measured stage by stage (``measure(candidate, seeds)``: its scores and paired drops on at least
    the first ``seeds`` decision seeds) until it is clearly over or the plan's seeds are spent."""
    for seeds in plan.stages:
        scores, drops = measure(candidate, seeds)
        found = finding(candidate, scores, drops, tolerance, plan.confidence)
        if found.drops_interval.low > tolerance + EPSILON:  # clearly over: more seeds cannot make it within
            return found
        collapsed = collapsed_seeds(found, tolerance, plan.collapse_margin)
        if collapsed:
            return replace(found, verdict="over", collapsed=tuple(collapsed))
    # Within is called on every seed only: a within called early, on a few seeds, was called falsely three times
    # as often on the simulator (bench/simulate.py), and the walk calls within for many finalists and tolerances.
    return found


def collapsed_seeds(found: Finding, tolerance: float, margin: float | None) -> list[int]:
    """The seeds on which the finalist dropped more than ``margin`` past the tolerance: a run that collapsed (one
    seed's drop spreads by about a point; on the seed table a collapse costs 20 points and more). Such a finalist is
    over whatever its mean: its model, kept from the first seed, may be the collapsed one, and a mean that hides a
    collapse is luck on the other seeds (fewer answers deeper than the truth: docs/benchmarks.md §1e)."""
    if margin is None:
        return []
    return [seed for seed, d in sorted(found.drops.items()) if d > tolerance + margin + EPSILON]


def ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Deepest drop first, ties by the selection score; a configuration seen twice counts once."""
    seen: set[ConfigKey] = set()
    out = []
    for c in sorted(candidates, key=lambda c: preference(c.layers_dropped, c.selection_score), reverse=True):
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


@dataclass(frozen=True)
class ToleranceAnswer:
    """Per tolerance: the deepest drop whose mean is within (its verdict says how sure), and the deepest
    that is confidently within (its whole interval under the tolerance); either may be None."""

    tolerance: float
    mean_within: Finding | None
    confident: Finding | None
    checked: int  # finalists re-trained for this tolerance
    findings: tuple[Finding, ...] = ()  # every finalist weighed, in the order of the walk

    def to_dict(self) -> dict[str, object]:
        return {
            "tolerance": self.tolerance,
            "answer": None if self.mean_within is None else self.mean_within.to_dict(),
            "confidently_within": None if self.confident is None else self.confident.to_dict(),
            "finalists_checked": self.checked,
        }


def answer_tolerance(
    tolerance: float,
    candidates: Sequence[Candidate],
    measure: Callable[[Candidate, int], tuple[Mapping[int, float], Mapping[int, float]]],
    max_finalists: int,
    measured: Callable[[Candidate], bool] = lambda candidate: False,
    plan: RecheckPlan = RecheckPlan(),
    seek_confident: bool = True,
) -> ToleranceAnswer:
    """Walk ``candidates`` deepest first; ``measure(candidate, seeds)`` re-trains one on the first ``seeds``
    decision seeds (or returns what it has already) and returns its (scores, paired drops) per seed; each is
    re-checked as ``plan`` says (:func:`recheck`). Stops at the first finalist confidently within, or after
    ``max_finalists`` re-trained finalists; a candidate already ``measured`` (for a tighter tolerance) does not
    count against them and is always weighed, so an answer confidently within 1 point is confidently within 2
    as well. Without ``seek_confident``, nothing more is re-trained once the answer is found (the first finding
    whose mean is within: the walk is deepest first, so no later one is deeper); what is already measured is
    still weighed. Of the findings at the deepest depth whose mean is within, the answer is the surest (within
    before borderline), then the smallest mean drop."""
    findings: list[Finding] = []
    trained = 0
    for candidate in ranked(candidates):
        free = measured(candidate)
        answered = not seek_confident and any(f.verdict != "over" for f in findings)
        if not free and (trained >= max_finalists or answered):
            continue
        trained += not free
        findings.append(recheck(candidate, measure, tolerance, plan))
        if findings[-1].verdict == "within":
            break

    def rank(f: Finding) -> tuple[int, bool, float]:
        return (f.candidate.layers_dropped, f.verdict == "within", -f.drops_interval.mean)

    mean_within = max((f for f in findings if f.verdict != "over"), key=rank, default=None)
    confident = max((f for f in findings if f.verdict == "within"), key=rank, default=None)
    return ToleranceAnswer(tolerance, mean_within, confident, len(findings), tuple(findings))


def answers_by_configuration(
    answers: Sequence[ToleranceAnswer],
) -> dict[ConfigKey, list[tuple[float, Finding]]]:
    """Each configuration that answers a tolerance, with (tolerance, finding) for every tolerance it answers,
    tightest first: one saved model per configuration, whose card names them all. (A finding's verdict
    depends on its tolerance, so findings of one configuration are equal only in their candidate.)"""
    found: dict[ConfigKey, list[tuple[float, Finding]]] = {}
    for answer in sorted(answers, key=lambda a: a.tolerance):
        if answer.mean_within is not None:
            found.setdefault(answer.mean_within.candidate.key, []).append((answer.tolerance, answer.mean_within))
    return found
