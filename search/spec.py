"""The search spec: one YAML file describing a whole search, validated before anything starts.

The ``trial`` section is a :class:`~prunetune.config.TrialConfig` — the base every
trial starts from; the ``space`` section says what Optuna may change in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prunetune.search.decide import RecheckPlan, family_confidence

from prunetune.config import ConfigError, TrialConfig, load_yaml, to_plain, with_overrides
from prunetune.records import STORE_FILE

__all__ = [
    "Budget", "CAP_PER_DEPTH", "NAME", "Objective", "ReferenceSweep", "Resources", "SearchSpec",
    "WARM_START_STRATEGIES", "decision_seeds", "droppable_depths", "load_spec", "ray_address", "recheck_plan",
    "reference_epochs", "reference_key", "trial_counts", "trials_for", "trials_per_depth", "warm_starts", "with_trials"
]  # fmt: skip


# A search's name becomes folder names and MLflow filter values: no path separator, no leading dot, no quote.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

Objective = Literal["constrained", "multi"]
MultiAxis = Literal["layers_kept", "latency_ms"]
Scheduler = Literal["none", "asha"]


@dataclass(frozen=True)
class SearchSpace:
    """What the search may change. Ranges are static (docs/design.md §2): each strategy maps them to valid layers."""

    strategies: tuple[str, ...] = ("top", "bottom", "middle", "window")
    min_count: int = 1
    max_count: int | None = None  # None: all but one layer
    # The learning rate, as a multiple of the tuned reference's: pruned models want 1-4x the full model's
    # best (the seed table: 2e-4 for the full model, 4e-4 at 2-3 layers dropped, 8e-4 at 5), so [0.5, 8]
    # reaches every depth's optimum with room on both sides. Sampled log-uniformly on half-octave steps.
    learning_rate_scale: tuple[float, ...] = (0.5, 8.0)
    # An absolute [low, high] instead (log-uniform, half-octave steps from low); set, it replaces the scale.
    learning_rate: tuple[float, ...] | None = None
    epochs: tuple[int, ...] = (1, 2)
    # Distillation from the tuned reference (trainables/distill.py): Optuna decides per trial whether to
    # distil, and then samples alpha in [0, 1] and (classification) the temperature in [1, 8]. The teacher's
    # outputs on the training rows (logits, or sentence embeddings) are computed once per search.
    distill: bool = False
    # The search's first trials (search/space.py warm_start_points): at each depth, the block of layers whose input
    # and output are closest in angle (the angular-block strategy), at twice the tuned reference's learning rate;
    # Optuna's sampler takes over from there. On the seed table those blocks are the best kept sets at 3, 4 and 5
    # layers dropped, and the replay's answer after 24 trials went from 58 / 79 / 100 % to 83 / 100 / 100 % of
    # the every-point answer at 1 / 2 / 3 points (docs/benchmarks.md §1e). False: the sampler alone.
    warm_start: bool = True


@dataclass(frozen=True)
class Budget:
    """How far below the reference run's validation score a pruned model may fall."""

    tolerance: float = 0.01
    # False: absolute (0.01 = one point of the score); True: a fraction of the reference (0.01 = 1 % of it). Drops
    # are recorded, printed and tabled in this unit (prunetune.records.drop, budget_unit, in_budget_unit).
    relative: bool = False
    # A known reference score (e.g. from an earlier study): no reference is trained, drops are measured
    # against this one number, and a relative learning-rate space is anchored at trial.training.learning_rate.
    reference_score: float | None = None


@dataclass(frozen=True)
class ReferenceSweep:
    """The unpruned model, tuned like the trials: every learning rate x epochs here, on each decision seed.
    The budget is measured against the configuration with the best mean over the seeds."""

    learning_rates: tuple[float, ...] = (1e-4, 2e-4, 4e-4)
    epochs: tuple[int, ...] = ()  # (): the most epochs the space allows
    # While the best learning rate is the highest or lowest of a sweep of two or more, one more an octave past
    # it (x2 or /2) is trained on every decision seed, at most this many times: a best at the edge is not yet
    # tuned, and the trials' learning rates are scaled from it. 0: the sweep as given.
    edge_steps: int = 2
    # Every configuration trains on the first ``screen_seeds`` decision seeds, and on the rest only while its
    # mean there is within ``screen_margin`` (score units: 0.02 is 2 points) of the best's: a rate far below the
    # best cannot become the reference, and its remaining seeds would be spent for nothing. On 2,000 simulated
    # sweeps one seed and 2 points chose the unscreened sweep's rate in 99.75 % of them for 11.5 jobs instead of
    # 16.1 (two seeds and 1.5 points: 99.5 %, 12.2 jobs; docs/benchmarks.md §1e). None: every configuration on
    # every decision seed at once.
    screen_seeds: int | None = 1
    screen_margin: float = 0.02


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    # A share of a GPU: 0.5 packs two trials per GPU. "auto": as many trials per GPU as a measured trial's
    # memory peak and the node's CPUs allow (:mod:`prunetune.search.packing`); 0 on a cluster without GPUs.
    gpus_per_trial: float | Literal["auto"] = 0.0
    # The cluster adds nodes on demand (cluster.yaml's autoscaler): a trial that fits no node yet waits for
    # one. Off, a trial no node can hold is refused at once instead of waiting for ever.
    autoscaling: bool = False

    @property
    def gpus(self) -> float:
        """``gpus_per_trial`` as a number: a search resolves "auto" before its first job."""
        if self.gpus_per_trial == "auto":
            raise ValueError('gpus_per_trial "auto" is resolved by the search (packing.resolve_resources) first')
        return float(self.gpus_per_trial)


@dataclass(frozen=True)
class SearchSpec:
    name: str = "prunetune-default"
    trial: TrialConfig = field(default_factory=TrialConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    budget: Budget = field(default_factory=Budget)
    reference: ReferenceSweep = field(default_factory=ReferenceSweep)
    # Decision seeds: the reference sweep and every max-drop finalist train on trial.training.seed + 1 … + seeds;
    # the search's trials on trial.training.seed itself, so a finalist is judged on seeds it was not picked on.
    # 5: one seed's paired drop spreads by ~0.9 points, and 5 seeds bring the 95 % interval to ±1.1 points
    # (docs/benchmarks.md, "How many seeds").
    seeds: int = 5
    # Sequential re-checks: a finalist trains on this many decision seeds first, and on the rest only while it is
    # neither clearly over (its whole interval above the tolerance) nor collapsed (collapse_margin). None, or as
    # many as ``seeds``: on every decision seed at once. 2: on the simulator the same answers for 1 job in 16 fewer
    # (a collapse on one of the first two seeds saves the other three); the price is one more round of re-checks
    # per finalist, which costs no time where fewer than 5 jobs run at once (docs/benchmarks.md §1e).
    first_seeds: int | None = 2
    # A finalist one of whose decision seeds drops more than this past the tolerance (score units: 0.05 is 5 points)
    # is over: that run collapsed, and a mean within would be luck on the other seeds. One seed's paired drop
    # spreads by about 0.9 points, a collapse by 20 and more. None: the interval alone decides.
    collapse_margin: float | None = 0.05
    # Per tolerance, finalists max-drop re-trains before it settles for what it has; each one's interval is at
    # 1 - 0.05 / (max_finalists x tolerances), so that a run's within verdicts, over all its tolerances, are falsely
    # within together at most 2.5 % of the time (decide.family_confidence).
    # 5: the walk stops at the answer (seek_confident), so a finalist past the third is trained only while none
    # has answered, where the tight tolerances lose theirs to deep candidates lucky on the search seed. On the
    # simulator, 5 instead of 3 answered 1 point with the true depth or one short in 32 % of runs instead of 19 %,
    # for 3.5 more jobs (docs/benchmarks.md §1e).
    max_finalists: int = 5
    # Per tolerance, once the answer is found (the deepest finalist whose mean is within), re-train more finalists
    # in search of one confidently within. Off by default: on the simulator the answers stayed the same run for run,
    # false within no more frequent, and a max-drop trained 59 jobs instead of 83; a confidently-within finding then
    # comes only from finalists already re-trained (docs/benchmarks.md §1e).
    seek_confident: bool = False
    objective: Objective = "constrained"
    # The second axis of a multi-objective search, minimised against the score: layers kept, or the
    # inference latency each trial measures (ms per batch of 32 validation rows, on its own device).
    multi_axis: MultiAxis = "layers_kept"
    # The most trials. None (the default): CAP_PER_DEPTH for each depth the space may drop, the search stopping
    # earlier, past min_trials, once no answer is still open (search/frontier.py). min_trials unset: TRIALS_PER_DEPTH
    # per depth (:func:`trials_for`), so that the warm start gives every depth one trial and the sampler as many: 10
    # for a 6-layer model, 22 for a 12-layer one (COLD_TRIALS_PER_DEPTH without the warm start). On the simulator the
    # defaults ran 11 trials on average for 39.5 jobs, and at most 13 with misleading layer scores (§1g).
    num_trials: int | None = None
    # The trials a search runs before it may stop, num_trials being then the most. Past min_trials the search goes on
    # while a depth where some tolerance's answer is still open has fewer than 3 kept sets tried (search/frontier.py:
    # the search notices when the layer scores pointed the warm start at the wrong blocks). None: num_trials (a fixed
    # count); with num_trials unset too, the per-depth count above, and num_trials CAP_PER_DEPTH per depth (25 for 6
    # layers). What a search resolved both to is recorded with its parameters.
    min_trials: int | None = None
    max_concurrent: int | None = None  # trials at a time; None: as many as the cluster's resources hold
    resources: Resources = field(default_factory=Resources)
    scheduler: Scheduler = "asha"
    sampler_seed: int = 0
    max_failures: int = 1  # retries of a failed trial
    # Depths (layers kept) at which one model of the same architecture is trained from random init:
    # the "does pruning beat training a small model from scratch?" baseline of the analysis.
    scratch_layers: tuple[int, ...] = ()
    # Where everything of the search lives (Ray results, the Optuna study, the local MLflow store).
    storage_path: str = "prunetune-runs"
    # None: a local SQLite store under storage_path; a multi-node cluster needs an `mlflow server` URI.
    tracking_uri: str | None = None
    # How long the tracking server may be away (restarting, say) before the search stops, resumable; records
    # wait in order meanwhile and are delivered when it answers again.
    tracking_patience_s: float = 600.0
    # The answer as a model: the best trial (max-drop: each tolerance's answer) trained once more with its
    # weights kept, saved under storage_path/<name>/ and logged to the search's MLflow run. One more job each.
    save_model: bool = True
    # Each trial's last checkpoint (its training state: about 270 MB for MiniLM) is deleted once the trial
    # ends; true keeps them (a finished trial is never resumed, so only for inspection).
    keep_checkpoints: bool = False
    # A trial checkpoints its training state only once this many seconds of training have passed since its
    # last checkpoint: short epochs (a few seconds on a GPU) skip most of them; a retry repeats at most this
    # much training, plus the epoch in flight. 0: after every epoch.
    checkpoint_every_s: float = 30.0
    address: str | None = None  # a Ray cluster; None: $RAY_ADDRESS, else a local Ray instance

    def __post_init__(self) -> None:
        space, reference, budget = self.space, self.reference, self.budget
        pairs = {"learning_rate_scale": space.learning_rate_scale, "epochs": space.epochs}
        if space.learning_rate is not None:
            pairs["learning_rate"] = space.learning_rate
        checks = [
            (
                not NAME.fullmatch(self.name),
                f"name={self.name!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit "
                "(it names folders and MLflow runs)",
            ),
            (
                self.num_trials is not None and self.num_trials < 1,
                f"num_trials={self.num_trials}: must be at least 1, or null for {TRIALS_PER_DEPTH} per depth the space "
                f"may drop ({COLD_TRIALS_PER_DEPTH} without space.warm_start)",
            ),
            (
                self.min_trials is not None
                and (self.min_trials < 1 or (self.num_trials is not None and self.min_trials > self.num_trials)),
                f"min_trials={self.min_trials}: must be at least 1 and at most num_trials={self.num_trials} (the most "
                "trials), or null",
            ),
            (
                self.max_concurrent is not None and self.max_concurrent < 1,
                f"max_concurrent={self.max_concurrent}: must be at least 1 (or null: as many as the cluster holds)",
            ),
            (
                not 0 < budget.tolerance < 1,
                f"budget.tolerance={budget.tolerance}: must lie in (0, 1), e.g. 0.01 for 1 point (a tolerance of 0 "
                "allows no drop at all, which one seed's noise of about a point decides)",
            ),
            (
                self.resources.cpus_per_trial <= 0 or not _gpu_share(self.resources.gpus_per_trial),
                "resources: cpus_per_trial must be > 0; gpus_per_trial a share in [0, 1], a whole number of GPUs, "
                "or auto",
            ),
            *(
                (
                    len(pair) != 2 or not 0 < pair[0] <= pair[1],
                    f"space.{key}={list(pair)}: write [low, high] with 0 < low <= high",
                )
                for key, pair in pairs.items()
            ),
            (
                not reference.learning_rates or min(reference.learning_rates) <= 0,
                f"reference.learning_rates={list(reference.learning_rates)}: list at least one, all > 0",
            ),
            *(
                # A repeated value trains the same configuration twice on the same seeds: jobs for nothing.
                (len(set(values)) < len(values), f"reference.{key}={list(values)}: a value is repeated; list each once")
                for key, values in (("learning_rates", reference.learning_rates), ("epochs", reference.epochs))
            ),
            (
                reference.screen_seeds is not None and not 1 <= reference.screen_seeds,
                f"reference.screen_seeds={reference.screen_seeds}: at least 1, or null for every decision seed at once",
            ),
            (
                not 0 <= reference.screen_margin < 1,
                f"reference.screen_margin={reference.screen_margin}: a score difference in [0, 1), e.g. 0.02 for "
                "2 points",
            ),
            (
                reference.edge_steps < 0,
                f"reference.edge_steps={reference.edge_steps}: must be >= 0 (0: the sweep as given, never extended)",
            ),
            (
                any(e < 1 for e in reference.epochs),
                f"reference.epochs={list(reference.epochs)}: each must be at least 1",
            ),
            (self.seeds < 1, f"seeds={self.seeds}: must be at least 1 (5 gives a 95 % interval of about ±1 point)"),
            (self.max_finalists < 1, f"max_finalists={self.max_finalists}: must be at least 1"),
            (
                self.collapse_margin is not None and not 0 < self.collapse_margin < 1,
                f"collapse_margin={self.collapse_margin}: a score difference in (0, 1), e.g. 0.05 for 5 points past "
                "the tolerance, or null to let the interval alone decide",
            ),
            (
                self.first_seeds is not None and self.first_seeds < 2,
                f"first_seeds={self.first_seeds}: at least 2 (the fewest with an interval), or null to re-check on "
                "every seed at once",
            ),
            (
                self.tracking_patience_s <= 0,
                f"tracking_patience_s={self.tracking_patience_s}: must be > 0 (seconds MLflow may be away)",
            ),
            (
                self.checkpoint_every_s < 0,
                f"checkpoint_every_s={self.checkpoint_every_s}: must be >= 0 (0: a checkpoint after every epoch)",
            ),
            (
                budget.reference_score is not None and not 0 < budget.reference_score,
                f"budget.reference_score={budget.reference_score}: must be > 0",
            ),
            (not space.strategies, "space.strategies is empty: name at least one (see `prunetune strategies`)"),
            (
                space.min_count < 1,
                f"space.min_count={space.min_count}: must be at least 1 (the reference runs anyway)",
            ),
            (
                space.max_count is not None and space.max_count < space.min_count,
                "space.max_count is below space.min_count",
            ),
        ]
        problems = [message for failed, message in checks if failed]
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def is_uri(self) -> bool:
        return "://" in self.storage_path

    @property
    def storage(self) -> Path:
        """The driver's local folder: the Optuna study, the search's markers, the default MLflow store.
        The storage path itself when it is local; ``./prunetune-runs`` when Ray stores to a URI."""
        return Path("prunetune-runs" if self.is_uri else self.storage_path).expanduser().resolve()

    @property
    def ray_storage(self) -> str:
        """Where Ray Tune keeps results and checkpoints: absolute, or a URI (s3://, gs://) for a cluster."""
        return self.storage_path if self.is_uri else str(self.storage)

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.storage / STORE_FILE}"

    def to_dict(self) -> dict[str, Any]:

        return dict(to_plain(self))

    def with_overrides(self, overrides: Mapping[str, Any]) -> SearchSpec:
        return with_overrides(self, overrides)

    @property
    def trials(self) -> int:
        """``num_trials`` as a number: a search resolves None (:func:`with_trials`) before its first job."""
        if self.num_trials is None:
            raise ValueError("num_trials None is resolved by the search (spec.with_trials) first")
        return self.num_trials


def _gpu_share(gpus: float | str) -> bool:
    """What Ray accepts as a task's GPUs: a share of one, or whole GPUs."""
    return gpus == "auto" or (isinstance(gpus, float | int) and gpus >= 0 and (gpus <= 1 or float(gpus).is_integer()))


def load_spec(path: str | None, overrides: Mapping[str, Any] | None = None) -> SearchSpec:
    """A SearchSpec from YAML (the embedded default when ``path`` is None), then ``--set`` overrides."""
    return load_yaml(SearchSpec, path, overrides, _finetune_spec_given)


FINETUNE_KEYS = frozenset(("model", "task", "data", "drop", "training", "kept_layers", "sentence", "distill"))


def _finetune_spec_given(raw: Mapping[str, Any]) -> str | None:
    if "trial" not in raw and FINETUNE_KEYS & set(raw):
        return (
            "this is a finetune spec (model, task, drop … at the top); run it with `prunetune finetune`, or for a "
            "search put those keys under `trial:` with a `space:` beside it, as examples/search-default.yaml does"
        )
    return None


TRIALS_PER_DEPTH = 2  # the warm start's one trial per depth, and as many for the sampler
# Without the warm start the sampler finds every depth alone: 5 per depth is about the 24 trials a 6-layer search
# ran before the warm start. On the replay, 10 trials without it served 1 / 2 / 3 points in 21 / 21 / 78 % of
# replays (random search: 25 / 24 / 76 %), 24 in 61 / 79 / 100 % (docs/benchmarks.md §1e).
COLD_TRIALS_PER_DEPTH = 5
# The most trials of an unset count, per depth: the count the sampler alone needs. The search stops before it once no
# answer is still open (search/frontier.py); with misleading layer scores it ran 11 to 13 trials on average (§1g).
CAP_PER_DEPTH = 5
WARM_START_STRATEGIES = ("window", "angular-block")  # a warm-start block is a trial of the first of these searched


def warm_starts(space: SearchSpace) -> bool:
    """Whether the search's first trials are the angular blocks (space.warm_start, and a strategy to express them)."""
    return space.warm_start and any(s in space.strategies for s in WARM_START_STRATEGIES)


def droppable_depths(space: SearchSpace, num_layers: int) -> range:
    """The layer counts the search may drop from a model of ``num_layers``: ``min_count`` up to ``max_count``, or
    all but one layer when it is unset."""
    return range(space.min_count, min(space.max_count or num_layers - 1, num_layers - 1) + 1)


def trials_per_depth(space: SearchSpace) -> int:
    return TRIALS_PER_DEPTH if warm_starts(space) else COLD_TRIALS_PER_DEPTH


def trials_for(spec: SearchSpec, num_layers: int) -> int:
    """The search's trial count: ``num_trials`` when set, else :func:`trials_per_depth` per droppable depth."""
    if spec.num_trials is not None:
        return spec.num_trials
    return max(trials_per_depth(spec.space) * len(droppable_depths(spec.space, num_layers)), 1)


def trial_counts(spec: SearchSpec, num_layers: int) -> tuple[int, int]:
    """(min_trials, num_trials) resolved: the trials a search runs at least, and at most. ``num_trials`` set and
    ``min_trials`` unset: a fixed count. ``num_trials`` unset: at most :data:`CAP_PER_DEPTH`
    per droppable depth, and at least ``min_trials`` or :func:`trials_for`'s count; past the least the search goes
    on while an answer is still open (search/frontier.py)."""
    if spec.num_trials is not None:
        return spec.min_trials or spec.num_trials, spec.num_trials
    least = spec.min_trials or trials_for(spec, num_layers)
    return least, max(least, CAP_PER_DEPTH * len(droppable_depths(spec.space, num_layers)))


def with_trials(spec: SearchSpec, num_layers: int) -> SearchSpec:
    """``spec`` with ``min_trials`` and ``num_trials`` numbers (:func:`trial_counts`), as the search runs and
    records them."""
    least, most = trial_counts(spec, num_layers)
    return spec.with_overrides({"min_trials": least, "num_trials": most})


def decision_seeds(spec: SearchSpec) -> list[int]:
    """The seeds the reference and the finalists are judged on: never the search's own seed."""
    return [spec.trial.training.seed + i for i in range(1, spec.seeds + 1)]


def recheck_plan(spec: SearchSpec, tolerances: int = 1) -> RecheckPlan:
    """How max-drop re-checks a finalist: ``first_seeds`` first, the rest only while undecided; each interval at the
    level that holds every configuration a run of ``tolerances`` walks may call within together
    (:func:`~prunetune.search.decide.family_confidence`)."""
    first = spec.first_seeds
    stages = (first, spec.seeds) if first is not None and first < spec.seeds else (spec.seeds,)
    return RecheckPlan(stages, family_confidence(spec.max_finalists * tolerances), spec.collapse_margin)


def reference_epochs(spec: SearchSpec) -> tuple[int, ...]:
    return spec.reference.epochs or (int(spec.space.epochs[1]),)


def reference_key(trial: TrialConfig) -> str:
    """What makes two reference runs identical: the model, the task, the data and the training."""
    raw = trial.to_dict()
    for key in ("drop", "kept_layers", "variant", "scratch_model", "scores_sample_rows", "distill"):
        raw.pop(key)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def ray_address(spec: SearchSpec) -> str | None:
    return spec.address or os.environ.get("RAY_ADDRESS") or None
