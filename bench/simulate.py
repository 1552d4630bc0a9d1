"""Benchmark 1e: whole ``max-drop`` runs simulated, with the truth known — what a decision rule costs and claims.

The replay (``bench/replay.py``) reads each seed's score from a measured table, so it can decide only on the
table's own seeds (two). The simulator draws as many seeds as a rule asks for:

* **The truth.** Each configuration's true score is its mean over the table's seeds (``--table``; the shared
  seed table by default): every pruned (kept layers, learning rate, epochs) and the unpruned reference at every
  learning rate. The true reference is the best reference mean; a configuration's true drop is the true
  reference minus its mean; the true depth at tolerance ``t`` is the most layers any configuration drops with a
  true drop within ``t``.
* **The noise.** A seed's score is the true score plus a residual drawn from the table's own residuals around
  the means (``score - mean``, scaled by ``sqrt(n / (n - 1))`` since a residual around a mean of ``n`` spreads
  less than a seed does), pooled by learning rate and by whether the configuration is within 4 points of the
  reference. Why this model: on the seed table the two seeds differ by 0.2 points on average over the
  configurations up to 4e-4, so no seed effect shared by every configuration is worth modelling, and draws are
  independent per configuration and seed; but the spread depends on the learning rate (at 8e-4 a run collapses
  on one seed in two) and on the configuration's quality (within 4 points, one seed's score spreads by 0.5 to
  1.3 points; the failures spread more). Scores are clipped to [0, 1]. The reference's per-seed scores are
  drawn the same way.
* **A run** is a whole ``max-drop``: the reference (as the rule builds it), the search (TPE as ``BudgetSearch``
  runs it, :func:`replay.sampled_search`) on the search seed, then the decision on the decision seeds, through
  the product's own code (``decide.answer_tolerance``, ``max_drop.finalists``). Each run draws its own seeds;
  every rule sees the same draws in the same run (common random numbers), so rules differ by their rule alone.
  Results are seeded and reproducible.

For each rule and tolerance: ``false_within`` (the share of runs that call some configuration *within* although
its true drop is over the tolerance), ``over_claim`` (the answer is deeper than the true depth),
``exact_or_one_short`` (the answer is the true depth or one less) and ``mean_jobs`` (every job trained: the
reference, the trials, the re-checks and the answer models).

    bench/simulate.py --runs 200 --json bench/results/simulate.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paths import LAYER_SCORES, SEED_TABLE, shown  # noqa: E402
from prunetune.search.decide import (  # noqa: E402
    Candidate,
    RecheckPlan,
    ToleranceAnswer,
    answer_tolerance,
    best_reference,
    interval,
)  # noqa: E402
from prunetune.search.max_drop import finalists  # noqa: E402
from prunetune.search.reference import ScreenedSweep, sweep_past_edges  # noqa: E402
from prunetune.search.spec import ReferenceSweep, SearchSpec, recheck_plan  # noqa: E402
from replay import (  # noqa: E402
    Point,
    Table,
    load_table,
    make_spec,
    sampled_search,
)

from prunetune.records import EPSILON, LayerScores, drop  # noqa: E402

Reference = tuple[float, int]  # the unpruned model's (learning rate, epochs)
REFERENCE_SWEEP = (1e-4, 2e-4, 4e-4)  # the spec's default reference.learning_rates
NEAR = 0.04  # configurations within 4 points of the reference: a decision's finalists (docs/benchmarks.md §1)


@dataclass(frozen=True)
class Rule:
    """How a max-drop run spends its jobs and decides: the spec keys it sets, as the product reads them."""

    name: str
    # "decision-seeds": every sweep learning rate on every decision seed, the best mean chosen on them (today);
    # "search-seed": every sweep learning rate on the search seed alone, the best on the decision seeds after.
    reference: str = "decision-seeds"
    first_seeds: int | None = SearchSpec.first_seeds
    max_finalists: int = SearchSpec.max_finalists
    num_trials: int | None = SearchSpec.num_trials  # None: the product's default, 2 per depth (spec.trials_for)
    answer: str = "mean_within"  # which finding answers: "mean_within" (within or borderline), "confident"
    edge_steps: int = 2  # reference.edge_steps: octaves the sweep may extend past its edge (within the table's rates)
    # reference.screen_seeds and screen_margin: each learning rate on this many decision seeds first, the rest
    # only while within the margin of the best there (reference.ScreenedSweep). None: every seed at once.
    screen_seeds: int | None = ReferenceSweep.screen_seeds
    screen_margin: float = ReferenceSweep.screen_margin
    # The answers' models kept from their re-checks on the first decision seed (max_drop); False: each answer
    # trained once more, as before issue 23.
    models_kept: bool = True
    # The search: "prunetune" (BudgetSearch's TPE, the budget at the loosest tolerance) or "cycled" (one TPE
    # study per tolerance, the trials asked of each in turn: replay.sampled_search; measured, not the product's).
    searcher: str = "prunetune"
    # collapse_margin: a finalist one of whose seeds drops more than this past the tolerance is over (decide).
    collapse_margin: float | None = SearchSpec.collapse_margin
    # space.warm_start: the search's first trials are the angular block of each depth at 2x the reference's rate.
    warm_start: bool = True
    # seek_confident: once a tolerance's answer is found, re-train more finalists in search of one confidently within.
    seek_confident: bool = SearchSpec.seek_confident

    # The search's probes and its stop rule (search/frontier.py); False: the trials as counted before issue 36.
    frontier: bool = True
    # Each interval's level: "run" (every tolerance's finalists together, today), "walk" (one tolerance's finalists,
    # before issue 36), or "each" (95 % each, before issue 23).
    family: str = "run"

    def plan(self, tolerances: int) -> RecheckPlan:
        spec = SearchSpec(
            seeds=SEEDS,
            first_seeds=self.first_seeds,
            max_finalists=self.max_finalists,
            collapse_margin=self.collapse_margin,
        )
        plan = recheck_plan(spec, tolerances if self.family == "run" else 1)
        return plan if self.family != "each" else replace(plan, confidence=RecheckPlan.confidence)


SEEDS = 5  # decision seeds, the spec's default
# The defaults before issue 23: 4 finalists, each interval at 95 %, the reference's sweep as given, each answer's
# model trained once more.
TODAY = Rule(
    "today",
    first_seeds=None,
    num_trials=24,
    max_finalists=4,
    edge_steps=0,
    family="each",
    models_kept=False,
    screen_seeds=None,
    collapse_margin=None,
    warm_start=False,
    seek_confident=True,
    frontier=False,
)
RULES = {  # what docs/benchmarks.md §1e compares; a rule here is one the product can run (its spec keys), but "cycled"
    "today": TODAY,
    # The defaults before issue 36: 10 trials (2 per depth), no probes, each interval at one walk's level.
    "issue-23": Rule("issue-23", num_trials=10, frontier=False, family="walk"),
    # The defaults but each interval at one walk's level, as before issue 36: what the run's level costs.
    "new-walk-level": Rule("new-walk-level", family="walk"),
    # The defaults now: 5 finalists, each interval at the family's level (99 % each), the walk stopped at the
    # answer, the reference's sweep extended by up to two octaves while its best is at an edge and screened on 1
    # decision seed (2 points), a finalist with a seed more than 5 points past the tolerance over, the warm start,
    # 2 trials per depth (10 here), each finalist re-checked on 2 seeds first.
    "new": Rule("new"),
    # The defaults before the trials were counted per depth: 24 trials, every finalist on all 5 seeds at once, the
    # sweep screened on 2 seeds (1.5 points).
    "previous": Rule(
        "previous", num_trials=24, first_seeds=None, screen_seeds=2, screen_margin=0.015, frontier=False, family="walk"
    ),
    # The sweep screened on 2 seeds (1.5 points), as before, the rest the defaults.
    "new-screen-2-seeds": Rule("new-screen-2-seeds", screen_seeds=2, screen_margin=0.015),
    # The defaults before the walk stopped at the answer: more finalists re-trained for one confidently within.
    "new-seek-confident": Rule("new-seek-confident", seek_confident=True),
    # 3 finalists, the default before 5 (each interval at 98.3 %).
    "new-3-finalists": Rule("new-3-finalists", max_finalists=3),
    # The defaults before the reference's sweep was screened: every rate on every decision seed at once.
    "new-unscreened": Rule("new-unscreened", screen_seeds=None),
    # The trials cycled across the tolerances (docs/benchmarks.md §1e; not the product's): 24 trials, as measured
    # before the trials were counted per depth, for this searcher has no warm start.
    "cycled": Rule("cycled", searcher="cycled", num_trials=24),
    # The defaults before a collapsed seed made a finalist over: the interval alone decides.
    "new-no-collapse": Rule("new-no-collapse", collapse_margin=None),
    # first_seeds: null: every finalist on all 5 seeds at once (a collapsed seed among the first two saves nothing).
    "new-all-seeds-at-once": Rule("new-all-seeds-at-once", first_seeds=None),
    "new-margin-3": Rule("new-margin-3", collapse_margin=0.03),
    "new-margin-10": Rule("new-margin-10", collapse_margin=0.10),
    # The defaults before the warm start: the sampler alone picks every trial (5 per depth, 25 here: spec.trials_for).
    "new-no-warm-start": Rule("new-no-warm-start", warm_start=False),
    # More trials than the default 2 per depth, the rest the defaults: what 16 and 24 trials buy.
    "new-16-trials": Rule("new-16-trials", num_trials=16),
    "new-24-trials": Rule("new-24-trials", num_trials=24),
}


COLLAPSE_GAP = 0.10  # a run this far below another seed's run of the same configuration collapsed (10 points)
NOISE_MODELS = ("collapse", "pooled")


class World:
    """The truth of a seed table, and seeds drawn around it.

    ``noise="collapse"`` (the default): a collapse is its own event. A run more than :data:`COLLAPSE_GAP` below
    another seed's run of the same configuration and learning rate collapsed; each configuration collapses at the
    rate the table shows for it (with two seeds: never, or on one seed in two), to one of its own collapsed scores.
    Otherwise its score is the mean of its runs that did not collapse plus an ordinary residual, drawn from the
    residuals of runs that did not collapse, pooled by learning rate and by whether the configuration is within 4
    points of the reference. The expected score is still the table's mean. ``noise="pooled"``: before issue 36,
    every run's residual pooled, collapses included, so a configuration that never collapsed borrowed the spread
    of those that did (at 8e-4, +-22 to +-41 points)."""

    def __init__(self, table: Table, noise: str = "collapse") -> None:
        if noise not in NOISE_MODELS:
            raise ValueError(f"noise {noise!r}: one of {NOISE_MODELS}")
        self.table, self.noise = table, noise
        by_reference: dict[Reference, dict[int, float]] = {}
        for lr, epochs, seed, score in table.reference_runs:
            by_reference.setdefault((lr, epochs), {})[seed] = score
        self.reference_means = {key: statistics.mean(s.values()) for key, s in by_reference.items()}
        self.means = {point: statistics.mean(s.values()) for point, s in table.pruned.items()}
        self.true_reference = max(self.reference_means.values())
        self.residuals: dict[tuple[float, bool], list[float]] = {}
        self.collapse_rate: dict[Any, float] = {}
        self.collapsed: dict[Any, list[float]] = {}
        self.ordinary_mean: dict[Any, float] = {}
        for what, by_seed in [*by_reference.items(), *table.pruned.items()]:
            values = list(by_seed.values())
            if noise == "collapse":
                top = max(values)
                fell = [v for v in values if v < top - COLLAPSE_GAP]
                values = [v for v in values if v >= top - COLLAPSE_GAP]
                self.collapse_rate[what] = len(fell) / len(by_seed)
                self.collapsed[what] = fell
            centre = self.ordinary_mean[what] = statistics.mean(values)
            if len(values) < 2:
                continue
            scale = math.sqrt(len(values) / (len(values) - 1))  # a residual around a mean of n spreads less
            self.residuals.setdefault(self.pool(what), []).extend(scale * (v - centre) for v in values)

    def mean(self, what: Point | Reference) -> float:
        return self.means[what] if isinstance(what[0], tuple) else self.reference_means[what]  # type: ignore[index]

    def pool(self, what: Point | Reference) -> tuple[float, bool]:
        """Whose residuals ``what``'s noise is drawn from: the same learning rate, and the same side of 4 points
        below the reference (the configurations a decision is about spread less than the failures)."""
        lr = what[1] if isinstance(what[0], tuple) else what[0]
        return float(lr), drop(self.true_reference, self.mean(what)) <= NEAR + EPSILON

    def true_drop(self, point: Point) -> float:
        return drop(self.true_reference, self.means[point])

    def true_depth(self, tolerance: float) -> int:
        n = self.table.num_layers
        return max((n - len(p[0]) for p in self.means if self.true_drop(p) <= tolerance + EPSILON), default=0)

    def score(self, run: int, what: Point | Reference, seed: int) -> float:
        """``what``'s score on simulated seed ``seed`` of run ``run``: the same every time it is asked."""
        rng = random.Random(f"{run}:{what}:{seed}")
        if self.noise == "pooled":
            return min(max(self.mean(what) + rng.choice(self.residuals[self.pool(what)]), 0.0), 1.0)
        if rng.random() < self.collapse_rate[what]:
            return rng.choice(self.collapsed[what])
        residuals = self.residuals.get(self.pool(what)) or [0.0]
        return min(max(self.ordinary_mean[what] + rng.choice(residuals), 0.0), 1.0)

    def truth_uncertainty(self, tolerances: Sequence[float]) -> dict[str, dict[str, float]]:
        """How sure the truth itself is: per tolerance, the deepest configuration within and the best one a depth
        deeper, each with its margin to the tolerance in standard errors of a table-mean drop (the ordinary spread
        of one seed over the table's seeds, the reference's own mean included)."""
        spread = statistics.pstdev([r for pool in self.residuals.values() for r in pool if abs(r) < NEAR])
        seeds = len(self.table.seeds)
        standard_error = spread * math.sqrt(2 / seeds)  # a drop: the reference's mean minus the point's
        out: dict[str, dict[str, float]] = {"standard_error": {"points": 100 * standard_error}}
        n = self.table.num_layers
        for t in sorted(tolerances):
            depth = self.true_depth(t)
            best_at = {
                d: min((self.true_drop(p) for p in self.means if n - len(p[0]) == d), default=math.inf)
                for d in (depth, depth + 1)
            }
            out[str(t)] = {
                "depth": depth,
                "margin_inside_se": (t - best_at[depth]) / standard_error if depth else math.inf,
                "margin_beyond_se": (best_at[depth + 1] - t) / standard_error,
            }
        return out


@dataclass
class Outcome:
    """One rule's run: its answer per tolerance, what it called within, and what it trained."""

    depths: dict[float, int]
    false_within: dict[float, bool]
    jobs: dict[str, int]
    confident: dict[float, int]  # the depth of the confidently-within finding, 0 for none


def simulate_run(world: World, rule: Rule, run: int, tolerances: Sequence[float], scores: LayerScores) -> Outcome:
    table, n = world.table, world.table.num_layers
    plan = rule.plan(len(tolerances))
    search_seed, decision = 0, list(range(1, plan.stages[-1] + 1))
    epochs = max(table.epochs)  # the table's setting: 2 on the seed table, 1 on the STS-B table
    sweep = [(lr, epochs) for lr in REFERENCE_SWEEP]
    jobs = {"reference": 0, "trials": 0, "rechecks": 0, "models": 0}

    def reference_on(seeds: Sequence[int], configs: Sequence[Reference]) -> Any:
        jobs["reference"] += len(seeds) * len(configs)
        return best_reference([(lr, e, s, world.score(run, (lr, e), s)) for lr, e in configs for s in seeds])

    if rule.reference == "decision-seeds":

        def train(configs: list[Reference], seeds: list[int]) -> dict[tuple[float, int, int], float]:
            jobs["reference"] += len(seeds) * len(configs)
            return {(lr, e, s): world.score(run, (lr, e), s) for lr, e in configs for s in seeds}

        screened = ScreenedSweep([epochs], decision, rule.screen_seeds, rule.screen_margin, train, lambda line: None)

        def in_table(rates: list[float]) -> Any:
            """The product's sweep and its extension (reference.sweep_past_edges), over the rates the table has:
            a rate it lacks is not trained, so the best stays inside the rates tried and the extension stops."""
            return screened([lr for lr in rates if (lr, epochs) in world.reference_means])

        reference, _ = sweep_past_edges(REFERENCE_SWEEP, rule.edge_steps, in_table, lambda line: None)
        jobs["reference"] += 1  # its configuration on the search seed, to pair the trials with
        on_search_seed = world.score(run, (reference.learning_rate, reference.epochs), search_seed)
    else:
        picked = reference_on([search_seed], sweep)
        on_search_seed = picked.score
        reference = reference_on(decision, [(picked.learning_rate, picked.epochs)])

    spec = make_spec(table, tolerances, rule.max_finalists, rule.warm_start)
    trials: list[Candidate] = []

    def trained(point: Point, strategy: str) -> float:
        score = world.score(run, point, search_seed)
        trials.append(Candidate(point[0], n - len(point[0]), strategy, point[1], point[2], score))
        return score

    sampled_search(rule.searcher, run, spec, table, reference.learning_rate, reference.score, scores, trained,
                   rule.num_trials, tolerances=tolerances, frontier=rule.frontier)  # fmt: skip
    jobs["trials"] = len(trials)

    seeds_run: dict[Any, int] = {}

    def measure(candidate: Candidate, seeds: int) -> tuple[dict[int, float], dict[int, float]]:
        seeds_run[candidate.key] = max(seeds_run.get(candidate.key, 0), seeds)
        point = candidate.key[:3] + ((0.0, 0.0),)
        on = {s: world.score(run, point, s) for s in decision[:seeds]}
        return on, {s: drop(reference.scores[s], v) for s, v in on.items()}

    answers: dict[float, ToleranceAnswer] = {}
    for t in sorted(tolerances):
        answers[t] = answer_tolerance(
            t,
            finalists([(c, None) for c in trials], on_search_seed, t, False),
            measure,
            rule.max_finalists,
            measured=lambda c: c.key in seeds_run,
            plan=plan,
            seek_confident=rule.seek_confident,
        )
    jobs["rechecks"] = sum(seeds_run.values())
    chosen = {t: getattr(a, rule.answer) for t, a in answers.items()}
    answered = {f.candidate.key for f in chosen.values() if f is not None}
    jobs["models"] = 0 if rule.models_kept else len(answered)  # kept: each answer's re-check on decision[0] kept it
    point_of = {c.key: (c.kept_layers, c.learning_rate, c.epochs, (0.0, 0.0)) for c in trials}
    return Outcome(
        depths={t: 0 if f is None else f.candidate.layers_dropped for t, f in chosen.items()},
        false_within={
            t: any(
                world.true_drop(point_of[f.candidate.key]) > t + EPSILON for f in a.findings if f.verdict == "within"
            )
            for t, a in answers.items()
        },
        jobs=jobs,
        confident={t: 0 if a.confident is None else a.confident.candidate.layers_dropped for t, a in answers.items()},
    )


def decision_bound(
    world: World, seeds: int, runs: int, tolerances: Sequence[float], confidence: float = 0.95
) -> dict[str, dict[str, float]]:
    """What no search can improve on: every configuration of the table re-trained on ``seeds`` decision seeds,
    against the best reference learning rate on the same seeds (the search is perfect, and the jobs are free).
    Per tolerance, how often the deepest configuration whose mean drop is within (the answer today) and the
    deepest whose whole interval is within (``confidence``) over-claim, and how often each is the true depth or
    one short."""
    n = world.table.num_layers
    sweep = [(lr, max(world.table.epochs)) for lr in REFERENCE_SWEEP]
    tally: dict[str, list[float]] = {}
    for run in range(runs):
        decision = range(1, seeds + 1)
        reference = best_reference([(lr, e, s, world.score(run, (lr, e), s)) for lr, e in sweep for s in decision])
        found = []
        for point in world.means:
            scores = {s: world.score(run, point, s) for s in decision}
            drops = {s: drop(reference.scores[s], v) for s, v in scores.items()}
            found.append((n - len(point[0]), interval(list(drops.values()), confidence)))
        for t in tolerances:
            truth = world.true_depth(t)
            for rule, ok in (("mean", lambda iv: iv.mean), ("confident", lambda iv: iv.high)):
                depth = max((d for d, iv in found if ok(iv) <= t + EPSILON), default=0)
                tally.setdefault(f"{t}:{rule}:over_claim", []).append(depth > truth)
                tally.setdefault(f"{t}:{rule}:exact_or_one_short", []).append(depth in (truth, truth - 1))
    out: dict[str, dict[str, float]] = {}
    for key, values in tally.items():
        t, rule, figure = key.split(":")
        out.setdefault(f"{t}:{rule}", {})[figure] = statistics.mean(values)
    return out


def summarise(world: World, outcomes: list[Outcome], tolerances: Sequence[float]) -> dict[str, Any]:
    """Per tolerance, the issue's four figures."""
    out: dict[str, Any] = {}
    for t in sorted(tolerances):
        truth = world.true_depth(t)
        out[str(t)] = {
            "false_within": statistics.mean(o.false_within[t] for o in outcomes),
            "over_claim": statistics.mean(o.depths[t] > truth for o in outcomes),
            "exact_or_one_short": statistics.mean(o.depths[t] in (truth, truth - 1) for o in outcomes),
            "mean_jobs": statistics.mean(sum(o.jobs.values()) for o in outcomes),
        }
    return out


def answered_depths(outcomes: list[Outcome], tolerances: Sequence[float]) -> dict[str, dict[str, int]]:
    """Per tolerance, how many runs answered each depth."""
    return {
        str(t): {str(d): sum(o.depths[t] == d for o in outcomes) for d in sorted({o.depths[t] for o in outcomes})}
        for t in sorted(tolerances)
    }


def run_all(
    table: Table,
    scores: LayerScores,
    rules: dict[str, Rule],
    runs: int,
    tolerances: Sequence[float],
    say: Any = None,
    noise: str = "collapse",
) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    world = World(table, noise)
    report: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for name, rule in rules.items():
        started = time.monotonic()
        outcomes = [simulate_run(world, rule, r, tolerances, scores) for r in range(runs)]
        report[name] = summarise(world, outcomes, tolerances)
        details[name] = {
            "jobs": {k: statistics.mean(o.jobs[k] for o in outcomes) for k in outcomes[0].jobs},
            "false_within_any_tolerance": statistics.mean(any(o.false_within.values()) for o in outcomes),
            "depths": answered_depths(outcomes, tolerances),
            # Per tolerance, the share of runs with a finding confidently within (the README's second answer).
            "confident_found": {str(t): statistics.mean(o.confident[t] > 0 for o in outcomes) for t in tolerances},
            "seconds": round(time.monotonic() - started, 1),
            "rule": asdict(rule),
        }
        if say:
            say(f"{name}: {runs} runs in {time.monotonic() - started:.0f} s")
    truth = {str(t): world.true_depth(t) for t in sorted(tolerances)}
    table_name = shown(Path(table.path))
    return report | {
        "details": details,
        "true_depth": truth,
        "truth_uncertainty": world.truth_uncertainty(tolerances),
        "runs": runs,
        "table": table_name,
        "noise": noise,
    }


def markdown(report: dict[str, Any], rules: Sequence[str]) -> str:
    lines = [
        "| rule | tolerance | true depth | false within | over-claim | exact or one short | mean jobs | answers "
        "(depth: runs) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in rules:
        for t, row in report[name].items():
            depths = ", ".join(f"{d}: {k}" for d, k in report["details"][name]["depths"][t].items())
            lines.append(
                f"| {name} | {float(t) * 100:g} | {report['true_depth'][t]} | {row['false_within']:.1%} | "
                f"{row['over_claim']:.1%} | {row['exact_or_one_short']:.1%} | {row['mean_jobs']:.1f} | {depths} |"
            )
    lines.append("")
    for name in rules:
        d = report["details"][name]
        j = d["jobs"]
        lines.append(
            f"{name}: jobs per run {j['reference']:.1f} reference + {j['trials']:.1f} trials + {j['rechecks']:.1f} "
            f"re-checks + {j['models']:.1f} models; some configuration falsely within at any tolerance in "
            f"{d['false_within_any_tolerance']:.1%} of runs; a finding confidently within in "
            + " / ".join(f"{share:.1%}" for share in d["confident_found"].values())
            + " of runs"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--table", type=Path, default=SEED_TABLE)
    parser.add_argument("--scores", type=Path, default=LAYER_SCORES, help="LayerScores JSON (contribution)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--noise", default="collapse", choices=NOISE_MODELS, help="the seeds' noise model (World)")
    parser.add_argument(
        "--bound", type=int, nargs="*", default=[], metavar="SEEDS",
        help="also the decision's bound (every configuration re-checked) with this many decision seeds",
    )  # fmt: skip
    args = parser.parse_args(argv)
    table = load_table(args.table)
    scores = LayerScores.from_json(args.scores.read_text())
    report = run_all(table, scores, {r: RULES[r] for r in args.rules}, args.runs, args.tolerances, print, args.noise)
    report["layer_scores"] = shown(args.scores)
    print(markdown(report, args.rules))
    world = World(table, args.noise)
    report["bound"] = {str(n): decision_bound(world, n, args.runs, args.tolerances) for n in args.bound}
    for n, by_rule in report["bound"].items():
        for key, row in by_rule.items():
            t, rule = key.split(":")
            print(
                f"bound, {n} seeds, {float(t) * 100:g} points, deepest {rule} within: over-claim "
                f"{row['over_claim']:.1%}, exact or one short {row['exact_or_one_short']:.1%}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
