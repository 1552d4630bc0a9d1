"""The search spec: one YAML file describing a whole search, validated before anything starts.

The ``trial`` section is a :class:`~prunetune.trainables.config.TrialConfig` — the base every
trial starts from; the ``space`` section says what Optuna may change in it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prunetune.trainables.config import ConfigError, TrialConfig, load_yaml, with_overrides

Objective = Literal["constrained", "multi"]
MultiAxis = Literal["layers_kept", "latency_ms"]
Scheduler = Literal["none", "asha"]


@dataclass(frozen=True)
class SearchSpace:
    """What the search may change. Ranges are static (see DESIGN.md): each strategy maps them to valid layers."""

    strategies: tuple[str, ...] = ("top", "bottom", "middle", "window")
    min_count: int = 1
    max_count: int | None = None  # None: all but one layer
    learning_rate: tuple[float, ...] = (5e-5, 3e-4)  # sampled log-uniformly
    epochs: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Budget:
    """How far below the reference run's validation score a pruned model may fall."""

    tolerance: float = 0.01
    relative: bool = False  # False: absolute points (0.01 = one point of accuracy)


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # 0.5 packs two trials per GPU


@dataclass(frozen=True)
class SearchSpec:
    name: str = "prunetune-default"
    trial: TrialConfig = field(default_factory=TrialConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    budget: Budget = field(default_factory=Budget)
    objective: Objective = "constrained"
    # The second axis of a multi-objective search, minimised against the score: layers kept, or the
    # inference latency each trial measures (ms per batch of 32 validation rows, on its own device).
    multi_axis: MultiAxis = "layers_kept"
    num_trials: int = 8
    max_concurrent: int = 2
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
    address: str | None = None  # a Ray cluster; None: $RAY_ADDRESS, else a local Ray instance

    def __post_init__(self) -> None:
        problems = []
        if self.num_trials < 1:
            problems.append(f"num_trials={self.num_trials}: must be at least 1")
        if self.max_concurrent < 1:
            problems.append(f"max_concurrent={self.max_concurrent}: must be at least 1")
        if not 0 <= self.budget.tolerance < 1:
            problems.append(f"budget.tolerance={self.budget.tolerance}: must lie in [0, 1), e.g. 0.01 for 1 point")
        if self.resources.cpus_per_trial <= 0 or self.resources.gpus_per_trial < 0:
            problems.append("resources: cpus_per_trial must be > 0 and gpus_per_trial >= 0")
        for key, pair in (("learning_rate", self.space.learning_rate), ("epochs", self.space.epochs)):
            if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
                problems.append(f"space.{key}={list(pair)}: write [low, high] with 0 < low <= high")
        if not self.space.strategies:
            problems.append("space.strategies is empty: name at least one (see `prunetune strategies`)")
        if self.space.min_count < 1:
            problems.append(f"space.min_count={self.space.min_count}: must be at least 1 (the reference runs anyway)")
        if self.space.max_count is not None and self.space.max_count < self.space.min_count:
            problems.append("space.max_count is below space.min_count")
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
        return self.tracking_uri or f"sqlite:///{self.storage / 'mlflow.db'}"

    def to_dict(self) -> dict[str, Any]:
        from prunetune.trainables.config import to_plain

        return to_plain(self)

    def with_overrides(self, overrides: Mapping[str, Any]) -> SearchSpec:
        return with_overrides(self, overrides)


def load_spec(path: str | None, overrides: Mapping[str, Any] | None = None) -> SearchSpec:
    """A SearchSpec from YAML (the embedded default when ``path`` is None), then ``--set`` overrides."""
    return load_yaml(SearchSpec, path, overrides)


def reference_key(trial: TrialConfig) -> str:
    """What makes two reference runs identical: the model, the task, the data and the training."""
    raw = trial.to_dict()
    for key in ("drop", "kept_layers", "variant", "scratch_model", "scores_sample_rows"):
        raw.pop(key)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def ray_address(spec: SearchSpec) -> str | None:
    return spec.address or os.environ.get("RAY_ADDRESS") or None
