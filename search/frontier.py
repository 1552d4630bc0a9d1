"""Where a search's answer is still open, and when an unset trial count stops: pure, no Ray.

The warm start (:func:`~prunetune.search.space.warm_start_points`) trusts the layer scores: one angular block per
depth. When the scores point at the wrong blocks, the search must notice from its own trials. After every trial:

* each tolerance's **provisional depth** is the most layers a trial so far dropped within it (on the search seed);
* the depth one past it is **open**: the answer can only grow there;
* an open depth is **settled** once :data:`PROBES_PER_DEPTH` distinct kept sets were tried at it (or every window
  it has), none of them within that tolerance, or it would no longer be open;
* while an open depth is unsettled, the next trial is a **probe** there: a window of that depth, first those that
  contain the best block found one depth shallower (the trials' own evidence: on the seed table the best blocks
  nest, 1:3 in 1:4 in 0:5), then the rest by the layer scores, at the learning rate and epochs of that best
  shallower trial;
* with nothing open, the sampler picks the trials up to the base count (``trials_per_depth`` per depth); the
  search stops when the base count is reached and no open depth is unsettled, or at the cap
  (:data:`~prunetune.search.spec.CAP_PER_DEPTH` per depth) whatever is still open.

So a search whose scores guessed right costs about what it did (its open depths are few and settle quickly), and
one whose scores guessed wrong spends trials where the answer is still moving. An explicit ``num_trials`` keeps
the count as given; probes still come first while a depth is open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prunetune.trainables.strategies import count_limit, kept_layers

from prunetune.records import EPSILON, LayerScores, counted, in_budget_unit

__all__ = [
    "PROBES_PER_DEPTH", "Step", "Tried", "candidates", "dropped", "next_step", "open_depths", "probe", "probe_order",
    "provisional_depth", "settled"
]  # fmt: skip


# Three kept sets at a depth, none within: on the seed table (20 windows over 5 depths) the best window of a depth
# is among the three its shallower best nests in, or the one the scores rank first, in every depth.
PROBES_PER_DEPTH = 3
# Half a point: one seed's paired drop spreads by about a point, so a trial within a tolerance by less may well
# not be within it on the decision seeds, and its depth is not yet an answer.
SEED_MARGIN = 0.005


@dataclass(frozen=True)
class Tried:
    """One trial the frontier knows of: its kept layers, its own sampled parameters, and its drop (None while it
    runs: its kept set counts as tried, so no probe repeats it)."""

    kept: tuple[int, ...]
    params: Mapping[str, Any]
    drop: float | None


@dataclass(frozen=True)
class Step:
    """What the search does next: ``probe`` (train ``params``), ``sample`` (ask the sampler), ``wait`` (trials
    that are still running decide it) or ``stop``; ``reason`` is the line the terminal shows."""

    kind: Literal["probe", "sample", "wait", "stop"]
    reason: str
    params: Mapping[str, Any] | None = None
    depth: int | None = None


def provisional_depth(tried: Sequence[Tried], num_layers: int, tolerance: float) -> int:
    """The most layers a finished trial dropped within ``tolerance`` (0: none)."""
    return max(
        (num_layers - len(t.kept) for t in tried if t.drop is not None and t.drop <= tolerance + EPSILON),
        default=0,
    )


def open_depths(tried: Sequence[Tried], num_layers: int, tolerances: Sequence[float], depths: range) -> list[int]:
    """The depths where some tolerance's answer is still open, shallowest first: for each tolerance, from one past
    the deepest trial within it by :data:`SEED_MARGIN` (an answer its re-checks will likely keep) to one past the
    deepest within it at all (the search seed's luck may have put that one there)."""
    found: set[int] = set()
    for t in tolerances:
        sure = provisional_depth(tried, num_layers, t - SEED_MARGIN)
        found |= set(range(sure + 1, provisional_depth(tried, num_layers, t) + 2))
    return sorted(found & set(depths))


def dropped(kept: Sequence[int], num_layers: int) -> frozenset[int]:
    return frozenset(range(num_layers)) - frozenset(kept)


def kept_sets_at(tried: Sequence[Tried], num_layers: int, depth: int) -> set[tuple[int, ...]]:
    return {t.kept for t in tried if num_layers - len(t.kept) == depth}


def settled(tried: Sequence[Tried], num_layers: int, depth: int) -> bool:
    """Whether ``depth`` has had its probes: :data:`PROBES_PER_DEPTH` distinct kept sets, or every window of it."""
    windows = num_layers - depth + 1
    return len(kept_sets_at(tried, num_layers, depth)) >= min(PROBES_PER_DEPTH, windows)


def best_shallower(tried: Sequence[Tried], num_layers: int, depth: int) -> Tried | None:
    """The finished trial with the smallest drop at the deepest depth above ``depth`` that has one."""
    for above in range(depth - 1, 0, -1):
        here = [t for t in tried if t.drop is not None and num_layers - len(t.kept) == above]
        if here:
            return min(here, key=lambda t: t.drop if t.drop is not None else float("inf"))
    return None


def candidates(num_layers: int, depth: int, strategies: Sequence[str]) -> list[tuple[dict[str, Any], tuple[int, ...]]]:
    """Every probe at ``depth`` the space can express: each window (when ``window`` is searched), and the alternate
    drops of that many layers (when searched and realisable), as (strategy parameters, kept layers)."""
    found: dict[tuple[int, ...], dict[str, Any]] = {}
    if "window" in strategies:
        for start in range(num_layers - depth + 1):
            kept = tuple(i for i in range(num_layers) if not start <= i < start + depth)
            fraction = start / (num_layers - depth) if num_layers > depth else 0.0
            found[kept] = {"strategy": "window", "count": depth, "start_fraction": fraction}
    for name in ("alternate-even", "alternate-odd"):
        if name in strategies and depth <= count_limit(name, num_layers):
            kept = tuple(kept_layers(name, num_layers, {"count": depth}))
            found.setdefault(kept, {"strategy": name, "count": depth})
    return [(params, kept) for kept, params in found.items()]


def probe_order(
    num_layers: int, depth: int, anchor: Tried | None, scores: LayerScores | None, strategies: Sequence[str]
) -> list[tuple[dict[str, Any], tuple[int, ...]]]:
    """The probes at ``depth``, best first: the windows that contain the anchor's dropped layers (the best block
    one depth shallower: the trials' own evidence), then the alternate drops, then the other windows nearest the
    anchor's block, ties by the layer scores' angular distance (nearest first)."""
    inside = dropped(anchor.kept, num_layers) if anchor is not None else frozenset()
    centre = (min(inside) + max(inside)) / 2 if inside else None

    def rank(item: tuple[dict[str, Any], tuple[int, ...]]) -> tuple[int, float, float, float]:
        params, kept = item
        if params["strategy"] != "window":
            return (3, 0.0, 0.0, 0.0)
        block = dropped(kept, num_layers)
        start = min(block)
        middle = start + (depth - 1) / 2
        near = abs(middle - centre) if centre is not None else 0.0
        distance = scores.block_distance(start, depth) if scores is not None else 0.0
        # Last, the middle of the model first (the Marathi study: middle blocks often drop best).
        return (0 if inside and inside <= block else 2, near, distance, abs(middle - (num_layers - 1) / 2))

    return sorted(candidates(num_layers, depth, strategies), key=rank)


def probe(
    tried: Sequence[Tried],
    num_layers: int,
    depth: int,
    scores: LayerScores | None,
    fallback: Mapping[str, Any],
    strategies: Sequence[str] = ("window",),
) -> dict[str, Any] | None:
    """The next probe at ``depth`` in the space's own parameters, or None when every candidate of it ran.
    ``fallback``: the learning-rate and epochs parameters when no shallower trial has finished (the warm start's)."""
    anchor = best_shallower(tried, num_layers, depth)
    taken = kept_sets_at(tried, num_layers, depth)
    source = anchor.params if anchor is not None else fallback
    rest = {k: v for k, v in source.items() if k not in ("strategy", "count", "threshold", "start_fraction")}
    for params, kept in probe_order(num_layers, depth, anchor, scores, strategies):
        if kept not in taken:
            return params | rest
    return None


def next_step(
    tried: Sequence[Tried],
    num_layers: int,
    tolerances: Sequence[float],
    depths: range,
    base: int,
    cap: int,
    scores: LayerScores | None,
    fallback: Mapping[str, Any],
    strategies: Sequence[str] = ("window",),
) -> Step:
    """What the search does after ``tried`` (finished and running trials): see the module's description.
    ``base``: the count the sampler fills to; ``cap``: the most trials; ``strategies``: the space's, which the
    probes must be expressible in (without ``window`` or an alternate drop only the counts apply)."""
    if len(tried) >= cap:
        still = open_depths(tried, num_layers, tolerances, depths)
        left = f"; depth {', '.join(map(str, still))} still open" if still else ""
        return Step("stop", f"stopped at the cap of {cap} trials{left}")
    for depth in open_depths(tried, num_layers, tolerances, depths):
        if settled(tried, num_layers, depth):
            continue
        params = probe(tried, num_layers, depth, scores, fallback, strategies)
        if params is None:
            continue
        reason = (
            f"going on: {len(kept_sets_at(tried, num_layers, depth))} of {PROBES_PER_DEPTH} kept sets tried at "
            f"{depth} layers dropped, where an answer is still open"
        )
        return Step("probe", reason, params, depth)
    if len(tried) < base:
        return Step("sample", "the sampler's turn")
    if any(t.drop is None for t in tried):
        return Step("wait", "waiting for the running trials before deciding to stop")
    answers = ", ".join(
        f"within {in_budget_unit(t)}: {counted(provisional_depth(tried, num_layers, t), 'layer')}"
        for t in sorted(tolerances)
    )
    still = open_depths(tried, num_layers, tolerances, depths)
    why = (
        f"every depth where an answer was open ({', '.join(map(str, still))} layers dropped) had "
        f"{PROBES_PER_DEPTH} kept sets tried"
        if still
        else "no answer is still open"
    )
    return Step("stop", f"stopped after {len(tried)} trials: {why} (dropped so far on the search seed: {answers})")
