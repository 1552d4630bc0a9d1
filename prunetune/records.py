"""What a search records, and the rules for reading it back: every MLflow name and every rule in one place.

The trainables (layer scores), the search driver (both writers: the trial recorder and the driver's own jobs)
and the analysis (the reader) all import this module, so no name or rule is written twice. It imports no
torch, no Ray and no MLflow: a laptop that only reads a search's records needs none of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "EPSILON", "FINAL", "FINAL_METRICS", "JOB_KINDS", "KIND_MODEL", "KIND_RECHECK", "KIND_REFERENCE", "KIND_SCRATCH",
    "KIND_SEARCH", "KIND_TRIAL", "LAYER_SCORES_ARTIFACT", "LayerScores", "MAX_DROP_ARTIFACT", "METRIC_DECIMALS",
    "METRIC_DROP", "PARENT", "PLACEMENT_TAGS", "RANKED_BY", "SPEC_ARTIFACT", "STORE_FILE", "TAG_ANSWER", "TAG_BEST",
    "TAG_CHECKPOINT_EPOCH", "TAG_KEPT", "TAG_KIND", "TAG_OPTUNA_TRIAL", "TAG_REFERENCE_KEY", "TAG_REFERENCE_RUN",
    "TAG_REFERENCE_RUNS", "TAG_REQUEST", "TAG_RETRIES", "TAG_SEARCH", "TAG_STATUS", "TAG_STORAGE", "TAG_TEACHER",
    "TAG_TRIAL", "TRIAL_PHASE_SECONDS", "budget_unit", "closing_metrics", "counted", "drop", "final_value",
    "in_budget_unit", "is_result", "kept_layers", "measured", "preference", "runs_where", "trial_status", "within"
]  # fmt: skip


# --- MLflow tags ------------------------------------------------------------------------------------------
TAG_KIND = "prunetune.kind"  # search | trial | reference | scratch | recheck | model
TAG_STATUS = "prunetune.status"  # complete | early-stopped | failed | interrupted (its driver was killed)
TAG_CHECKPOINT_EPOCH = "prunetune.checkpoint_epoch"  # the epoch a retry of the trial would continue from
TAG_RETRIES = "prunetune.retries"  # times the trial was retried after its process died
TAG_TRIAL = "prunetune.ray_trial_id"
TAG_SEARCH = "prunetune.search"
TAG_REFERENCE_KEY = "prunetune.reference_key"
TAG_REFERENCE_RUN = "prunetune.reference_run_id"  # on a search's run: the reference it was measured against
# On a search's run: the runs (one per decision seed) of the tuned reference's best configuration, JSON.
TAG_REFERENCE_RUNS = "prunetune.reference_run_ids"
TAG_BEST = "prunetune.best"
# The answer, marked where a user looks: on the search's run, the answer in one line; on the run that found it
# (a trial), what it answers ("search answer", or max-drop's tolerances and verdicts).
TAG_ANSWER = "prunetune.answer"
TAG_STORAGE = "prunetune.storage"  # on a search run: where its driver keeps its state (host:storage_path)
TAG_TEACHER = "prunetune.teacher"  # on a reference run: it is the search's teacher (its logits taught trials)
TAG_KEPT = "prunetune.kept_layers"  # on every finished run: the layers it kept, JSON
TAG_OPTUNA_TRIAL = "prunetune.optuna_trial"  # on a trial's run: its Optuna trial number
# Where a trial ran, and on how many CPU threads (torch's intra-op pool).
PLACEMENT_TAGS = {key: f"prunetune.{key}" for key in ("node_id", "cuda_visible_devices", "device", "torch_threads")}
PARENT = "mlflow.parentRunId"
# A search run's metric: the seconds its trials took (Tune's run), without the set-up before them (reference,
# baselines, scores) or the answer's model after them.
TRIAL_PHASE_SECONDS = "trial_phase_seconds"
# A run's creation token: a create the server committed but whose reply was lost is found by it on the retry,
# not made twice (store.RetryingClient.create_run).
TAG_REQUEST = "prunetune.request"
FILTER_TAGS = {  # runs_where's keys
    "kind": TAG_KIND,
    "parent": PARENT,
    "search": TAG_SEARCH,
    "trial": TAG_TRIAL,
    "request": TAG_REQUEST,
}
# On every experiment: MLflow 3's UI opens an experiment in its model-training view (runs, metrics) for this
# kind, not in its GenAI view (traces), which showed a search as empty.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# Artifacts of a search's parent run.
SPEC_ARTIFACT = "spec.json"
LAYER_SCORES_ARTIFACT = "layer_scores.json"
MAX_DROP_ARTIFACT = "max_drop_answer.json"  # a max-drop's answer per tolerance, as its --output writes it
STORE_FILE = "mlflow.db"  # a search's local MLflow store, in its storage_path (unless tracking_uri names another)

# --- what the tags hold -------------------------------------------------------------------------------------
KIND_SEARCH = "search"  # a search's parent run
KIND_TRIAL = "trial"  # one Tune trial (a child run)
KIND_REFERENCE = "reference"  # one run of the tuned reference's sweep (reused across searches by its key)
KIND_SCRATCH = "scratch"  # a scratch baseline (a child run)
KIND_RECHECK = "recheck"  # a max-drop finalist re-trained on a decision seed (a child run)
KIND_MODEL = "model"  # an answer's configuration trained once more, its weights kept (a child run)
# The runs of one training job, whose params are its whole TrialConfig (a search's run holds its spec instead).
JOB_KINDS = (KIND_TRIAL, KIND_REFERENCE, KIND_SCRATCH, KIND_RECHECK, KIND_MODEL)
COMPLETE, EARLY_STOPPED, FAILED, INTERRUPTED, RUNNING = "complete", "early-stopped", "failed", "interrupted", "running"
FINAL = "final_"  # prefix of a finished run's closing metrics (final_val_score, ...); per-epoch ones have none
# What every finished run (trial, reference, scratch, re-check) closes with, prefixed by FINAL.
FINAL_METRICS = ("val_score", "test_score", "drop", "budget_excess", "feasible", "objective", "epoch")


# --- MLflow search filters -----------------------------------------------------------------------------------
def runs_where(status: str | None = None, **tags: str) -> str:
    """An MLflow filter: every tag (``kind=KIND_TRIAL`` names ``TAG_KIND``; see :data:`FILTER_TAGS`) equal to its
    value, and the run's status (RUNNING, FINISHED, ...) when given. Values are quoted; a value holding a quote
    is refused rather than let through to break (or widen) the filter."""
    clauses = [f"tags.`{FILTER_TAGS[key]}` = {_quoted(value)}" for key, value in tags.items()]
    if status is not None:
        clauses.append(f"attributes.status = {_quoted(status)}")
    return " and ".join(clauses)


def _quoted(value: str) -> str:
    if "'" in value or '"' in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be used in an MLflow filter (it holds a quote or a backslash)")
    return f"'{value}'"


# --- rules ----------------------------------------------------------------------------------------------------
# What a max-drop answer's model carries of the finalist it is: the mean paired drop over its decision seeds and that
# mean's interval (a re-check run's own "drop" is its seed's paired drop).
METRIC_DROP = "drop"
METRIC_MEAN_DROP, METRIC_MEAN_DROP_LOW, METRIC_MEAN_DROP_HIGH = "mean_drop", "mean_drop_low", "mean_drop_high"
METRIC_DECIMALS = 6  # scores and drops are fractions over at most a million rows: further digits are float noise


def counted(count: int, noun: str) -> str:
    """``count`` of ``noun`` as a person writes it: "1 epoch", "2 epochs"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def measured(value: float) -> float:
    """A metric as it is recorded: to the precision it is measured to (0.011, not 0.011000000000000001)."""
    return round(float(value), METRIC_DECIMALS)


EPSILON = 1e-9  # equal up to float noise counts as equal: a drop of exactly the tolerance is within


def drop(reference: float, score: float, relative: bool = False) -> float:
    """How far ``score`` falls below ``reference``: absolute points, or a fraction of the reference."""
    return (reference - score) / reference if relative else reference - score


def budget_unit(relative: bool) -> str:
    """The unit a person reads drops and tolerances in, the spec's (``budget.relative``): a drop is recorded as a
    fraction (0.012), and shown x 100, as points of the score or as a percentage of the reference's score."""
    return "% of the reference" if relative else "points"


def in_budget_unit(value: float, relative: bool | None = None, signed: bool = False) -> str:
    """A recorded drop or tolerance as a person reads it: 0.012 -> "1.2"; with ``relative`` given, its unit too
    ("1.2 points", "1.2 % of the reference"). ``signed``: a drop, two decimals and its sign ("+1.20")."""
    number = f"{100 * value:+.2f}" if signed else f"{100 * value:g}"
    if relative is None:
        return number
    unit = "point" if not relative and number == "1" else budget_unit(relative)  # 1 point, 2 points
    return f"{number} {unit}"


def within(drop: float, tolerance: float) -> bool:
    """The one rule for "within the budget", everywhere: a drop of exactly the tolerance is within it."""
    return drop <= tolerance + EPSILON


def is_result(kind: str | None, status: str | None) -> bool:
    """Only a complete trial answers a question: early-stopped ones are half-trained, failed and interrupted
    ones unfinished, running ones not yet done."""
    return (kind or KIND_TRIAL) == KIND_TRIAL and status == COMPLETE


RANKED_BY = ("layers_dropped", "val_score")  # the record columns that preference() ranks, as a table sorts them


def closing_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """A finished run's closing record: the result's :data:`FINAL_METRICS` it has, as ``final_<name>``."""
    return {FINAL + name: float(result[name]) for name in FINAL_METRICS if isinstance(result.get(name), (int, float))}


def final_value(metrics: Mapping[str, float], name: str) -> float | None:
    """What :func:`closing_metrics` recorded as ``name``. Runs recorded before every writer closed this way
    (references, baselines, re-checks) hold only their last per-epoch ``name``, which is the same value."""
    value = metrics.get(FINAL + name, metrics.get(name))
    return None if value is None else float(value)


def kept_layers(tags: Mapping[str, str]) -> list[int] | None:
    """The layers a finished run kept (:data:`TAG_KEPT`), or None where it is not recorded."""
    raw = tags.get(TAG_KEPT)
    if not raw or raw in ("null", "None"):
        return None
    return [int(layer) for layer in json.loads(raw)]


def preference(layers_dropped: int, score: float) -> tuple[int, float]:
    """How results within a budget rank, best highest: the most layers dropped, then the higher score."""
    return (int(layers_dropped), float(score))


def trial_status(planned_epochs: int, epochs_run: int) -> str:
    """complete, or early-stopped when the trial ended before its planned epochs."""
    return COMPLETE if epochs_run >= planned_epochs else EARLY_STOPPED


# --- the per-layer scores a search computes once and logs (LAYER_SCORES_ARTIFACT) -----------------------------
@dataclass(frozen=True)
class LayerScores:
    """Mean cosine similarity and angular distance between every pair of hidden states."""

    model: str
    num_layers: int
    sample_size: int
    max_length: int
    cosine: tuple[tuple[float, ...], ...]
    angular: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        size = self.num_layers + 1
        for name in ("cosine", "angular"):
            matrix = getattr(self, name)
            if len(matrix) != size or any(len(row) != size for row in matrix):
                raise ValueError(f"LayerScores.{name} must be {size}x{size} for {self.num_layers} layers")

    def contribution(self, layer: int) -> float:
        """Mean cosine(input, output) of ``layer``: near 1 means the layer barely changes its input."""
        return self.cosine[layer][layer + 1]

    def block_distance(self, start: int, count: int) -> float:
        """Angular distance between the input of layer ``start`` and the output of ``start + count - 1``."""
        return self.angular[start][start + count]

    def layer_table(self) -> list[dict[str, float | int]]:
        """One row per layer: its contribution score and its own angular distance."""
        return [
            {
                "layer": layer,
                "cosine_in_out": round(self.contribution(layer), 6),
                "block_influence": round(1.0 - self.contribution(layer), 6),
                "angular_distance": round(self.block_distance(layer, 1), 6),
            }
            for layer in range(self.num_layers)
        ]

    def block_table(self, count: int) -> list[dict[str, float | int]]:
        """One row per block of ``count`` contiguous layers, by its start."""
        return [
            {"start": start, "count": count, "angular_distance": round(self.block_distance(start, count), 6)}
            for start in range(self.num_layers - count + 1)
        ]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LayerScores:
        raw = json.loads(text)
        raw["cosine"] = tuple(tuple(row) for row in raw["cosine"])
        raw["angular"] = tuple(tuple(row) for row in raw["angular"])
        return cls(**raw)
