"""Which layers to drop: pure functions ``(num_layers, params[, scores]) -> kept indices``.

Every strategy names the layers it *drops*; :func:`kept_layers` turns that into the sorted
indices to keep and checks the result in one place. Layers are numbered from 0 (the layer
next to the embeddings) to ``num_layers - 1`` (the top). No torch here: the search driver
decides the kept layers and sends them to the trial in its config.

Search spaces should stay static (docs/design.md §2): sample ``count`` and ``start_fraction``
and let :func:`window` map them to a valid block, rather than a range that moves with ``count``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prunetune.errors import PrunetuneError
from prunetune.records import LayerScores

__all__ = [
    "STRATEGIES", "Strategy", "StrategyError", "angular_block", "bottom", "check_kept", "check_params", "contribution",
    "count_limit", "describe", "explicit", "get_strategy", "kept_layers", "middle", "none", "register_strategy",
    "threshold_range", "top", "window"
]  # fmt: skip


DropFn = Callable[..., Iterable[int]]


@dataclass(frozen=True)
class Strategy:
    name: str
    drop: DropFn
    needs_scores: bool
    summary: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(p for p in inspect.signature(self.drop).parameters if p not in ("num_layers", "scores"))

    @property
    def required(self) -> tuple[str, ...]:
        sig = inspect.signature(self.drop).parameters
        return tuple(p for p in self.params if sig[p].default is inspect.Parameter.empty)


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, *, needs_scores: bool = False) -> Callable[[DropFn], DropFn]:
    """Add a strategy: ``fn(num_layers, [scores,] **params)`` returns the indices to drop; its parameters are
    what a spec may set, its docstring's first line is its summary. A name already taken is refused."""

    def add(fn: DropFn) -> DropFn:
        if name in STRATEGIES:
            raise StrategyError(f"a strategy named {name!r} exists already; choose another name")
        STRATEGIES[name] = Strategy(name, fn, needs_scores, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return add


class StrategyError(PrunetuneError, ValueError):
    """A strategy name or parameter that cannot describe a valid set of kept layers."""


def _count(num_layers: int, count: int, *, limit: int | None = None) -> int:
    limit = num_layers - 1 if limit is None else limit
    if isinstance(count, bool) or not isinstance(count, int):
        raise StrategyError(f"count must be an integer, got {count!r}")
    if not 0 <= count <= limit:
        raise StrategyError(
            f"count={count} is out of range for a {num_layers}-layer model: use 0..{limit} "
            "(at least one layer must stay)"
        )
    return count


@register_strategy("none")
def none(num_layers: int) -> list[int]:
    """Drop nothing: the unpruned reference model."""
    return []


@register_strategy("top")
def top(num_layers: int, count: int) -> range:
    """Drop the last `count` layers (the most consistent strategy in Poor Man's BERT)."""
    count = _count(num_layers, count)
    return range(num_layers - count, num_layers)


@register_strategy("bottom")
def bottom(num_layers: int, count: int) -> range:
    """Drop the first `count` layers."""
    return range(_count(num_layers, count))


@register_strategy("middle")
def middle(num_layers: int, count: int) -> range:
    """Drop a centred block of `count` layers (rounded towards the bottom when it cannot be exact)."""
    count = _count(num_layers, count)
    start = (num_layers - count) // 2
    return range(start, start + count)


@register_strategy("window")
def window(num_layers: int, count: int, start: int | None = None, start_fraction: float | None = None) -> range:
    """Drop the contiguous block start..start+count-1; `start_fraction` in [0, 1] places it instead."""
    count = _count(num_layers, count)
    if (start is None) == (start_fraction is None):
        raise StrategyError("window needs exactly one of start (a layer index) or start_fraction (0..1)")
    last_start = num_layers - count
    if start_fraction is not None:
        if not 0.0 <= start_fraction <= 1.0:
            raise StrategyError(f"start_fraction={start_fraction} must lie in [0, 1]")
        start = round(start_fraction * last_start)
    assert start is not None
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= last_start:
        raise StrategyError(
            f"window start={start!r} with count={count} does not fit {num_layers} layers: use 0..{last_start}"
        )
    return range(start, start + count)


def _alternate_candidates(num_layers: int, parity: int) -> list[int]:
    # Numbered 1..n as in the paper, counting down from the top: even = n, n-2, … when n is even.
    return [i for i in range(num_layers - 1, -1, -1) if (i + 1) % 2 == parity]


def _alternate(num_layers: int, count: int, parity: int) -> list[int]:
    candidates = _alternate_candidates(num_layers, parity)
    return candidates[
        : _count(num_layers, count, limit=count_limit(f"alternate-{'odd' if parity else 'even'}", num_layers))
    ]


def count_limit(strategy: str, num_layers: int) -> int:
    """The most layers ``strategy`` can drop from a ``num_layers``-layer model (at least one stays)."""
    if strategy in ("alternate-even", "alternate-odd"):
        parity = 1 if strategy == "alternate-odd" else 0
        return min(len(_alternate_candidates(num_layers, parity)), num_layers - 1)
    return num_layers - 1


@register_strategy("alternate-even")
def alternate_even(num_layers: int, count: int) -> list[int]:
    """Drop `count` even-numbered layers (1-based), from the top down: 12, 10, 8, … of 12."""
    return _alternate(num_layers, count, parity=0)


@register_strategy("alternate-odd")
def alternate_odd(num_layers: int, count: int) -> list[int]:
    """Drop `count` odd-numbered layers (1-based), from the top down: 11, 9, 7, … of 12."""
    return _alternate(num_layers, count, parity=1)


@register_strategy("contribution", needs_scores=True)
def contribution(
    num_layers: int, scores: LayerScores, count: int | None = None, threshold: float | None = None
) -> list[int]:
    """Drop layers that barely change their input: cosine(in, out) >= `threshold`, or the `count` highest."""
    if (count is None) == (threshold is None):
        raise StrategyError("contribution needs exactly one of threshold (cosine, e.g. 0.95) or count")
    by_similarity = sorted(range(num_layers), key=lambda layer: (-scores.contribution(layer), layer))
    if count is not None:
        return by_similarity[: _count(num_layers, count)]
    assert threshold is not None
    if not -1.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise StrategyError(f"contribution threshold={threshold} must be a cosine similarity in [-1, 1]")
    dropped = [layer for layer in by_similarity if scores.contribution(layer) >= threshold]
    if len(dropped) == num_layers:
        lowest = min(scores.contribution(layer) for layer in range(num_layers))
        raise StrategyError(
            f"contribution threshold={threshold} would drop all {num_layers} layers "
            f"(lowest layer score {lowest:.4f}): raise the threshold"
        )
    return dropped


def threshold_range(scores: LayerScores, min_count: int, max_count: int) -> tuple[float, float]:
    """The contribution thresholds that drop between ``min_count`` and ``max_count`` layers: ``[low, high]``.

    With the layer scores sorted high to low, ``c_1 >= c_2 >= …``, a threshold drops exactly the layers
    scoring at least it, so any ``t`` in ``(c_{max+1}, c_min]`` drops at least ``min_count`` (all of
    ``c_1 … c_min`` are >= t) and at most ``max_count`` (``c_{max+1}`` and below are < t). A search samples
    ``t`` from this static range, so every sampled threshold is realisable.
    """
    n = scores.num_layers
    if not 1 <= min_count <= max_count <= n - 1:
        raise StrategyError(f"counts {min_count}..{max_count} must lie in 1..{n - 1} for {n} layers")
    ranked = sorted((scores.contribution(layer) for layer in range(n)), reverse=True)
    high = ranked[min_count - 1]
    low = math.nextafter(ranked[max_count], math.inf)  # c_{max+1}, just above
    if low > high:  # ties: every threshold that drops min_count layers also drops more than max_count
        raise StrategyError(
            f"the layer scores tie, so no contribution threshold drops between {min_count} and {max_count} layers"
        )
    return low, high


@register_strategy("angular-block", needs_scores=True)
def angular_block(num_layers: int, scores: LayerScores, count: int) -> range:
    """Drop the block of `count` layers whose input and output are closest in angle (Gromov et al.)."""
    count = _count(num_layers, count)
    if count == 0:
        return range(0)
    start = min(range(num_layers - count + 1), key=lambda s: (scores.block_distance(s, count), s))
    return range(start, start + count)


@register_strategy("explicit")
def explicit(num_layers: int, layers: Iterable[int]) -> list[int]:
    """Drop exactly the listed layer indices."""
    layers = list(layers)
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise StrategyError(f"explicit layers must be integers, got {layers!r}")
    return layers


def describe() -> str:
    """One line per strategy, its parameters and what it drops (for errors and the CLI)."""
    lines = []
    for s in STRATEGIES.values():
        params = ", ".join(p if p in s.required else f"[{p}]" for p in s.params)
        lines.append(f"  {s.name}({params}){' + scores' if s.needs_scores else ''}: {s.summary}")
    return "\n".join(lines)


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        # One line (a command's error is one line); `prunetune strategies` describes each.
        raise StrategyError(
            f"unknown strategy {name!r}; the strategies are {', '.join(STRATEGIES)} (see `prunetune strategies`)"
        ) from None


def check_kept(num_layers: int, kept: Iterable[int]) -> tuple[int, ...]:
    """Validate a list of kept layer indices: in range, no repeats, at least one; return it sorted."""
    kept = list(kept)
    bad = [i for i in kept if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers]
    if bad:
        raise StrategyError(
            f"layer indices {bad} are out of range for a {num_layers}-layer model (0..{num_layers - 1})"
        )
    repeated = sorted({i for i in kept if kept.count(i) > 1})
    if repeated:
        raise StrategyError(f"layer indices {repeated} are repeated")
    if not kept:
        raise StrategyError(f"this keeps none of the {num_layers} layers: at least one layer must stay")
    return tuple(sorted(kept))


def check_params(strategy: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """The named strategy, once its parameter names are known to it and none it requires is missing.

    Needs no model: a config is checked with it when it is loaded, before any data or model is read."""
    spec = get_strategy(strategy)
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise StrategyError(f"strategy {strategy!r} takes {list(spec.params)}, not {unknown}")
    missing = [p for p in spec.required if params.get(p) is None]
    if missing:
        raise StrategyError(f"strategy {strategy!r} needs {missing}")
    return spec


def kept_layers(
    strategy: str, num_layers: int, params: Mapping[str, Any] | None = None, scores: LayerScores | None = None
) -> tuple[int, ...]:
    """The layers ``strategy`` keeps in a ``num_layers``-layer model: a pure function, no model needed.

    Args:
        strategy: a registered strategy's name (``prunetune strategies`` lists them): ``top``, ``window``, …
        num_layers: the encoder's layer count (6 for all-MiniLM-L6-v2, 12 for BERT-base).
        params: the strategy's parameters, e.g. ``{"count": 2}`` or ``{"count": 3, "start": 1}``.
        scores: the layer scores of a data sample, for ``contribution`` and ``angular-block`` only
            (:func:`~prunetune.trainables.scores.compute_layer_scores`).

    Returns:
        The kept layer indices, sorted, numbered from 0 next to the embeddings.

    Raises:
        StrategyError: an unknown strategy, a missing or impossible parameter, or one that would drop every layer;
            the message says what is valid.

    Example:
        >>> kept_layers("top", 6, {"count": 2})
        (0, 1, 2, 3)
        >>> kept_layers("window", 6, {"count": 3, "start": 1})
        (0, 4, 5)
        >>> kept_layers("alternate-even", 6, {"count": 2})
        (0, 1, 2, 4)
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise StrategyError(f"num_layers must be a positive integer, got {num_layers!r}")
    spec = check_params(strategy, params)
    params = dict(params or {})
    if spec.needs_scores:
        if scores is None:
            raise StrategyError(
                f"strategy {strategy!r} needs layer scores computed on a data sample (compute_layer_scores)"
            )
        if scores.num_layers != num_layers:
            raise StrategyError(f"scores are for {scores.num_layers} layers, the model has {num_layers}")
        params["scores"] = scores
    dropped = list(spec.drop(num_layers, **{k: v for k, v in params.items() if v is not None}))
    if dropped:
        check_kept(num_layers, dropped)  # the same range and repeat checks hold for the dropped list
    return check_kept(num_layers, [i for i in range(num_layers) if i not in set(dropped)])
