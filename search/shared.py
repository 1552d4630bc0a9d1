"""Work a search does once, on the driver, for every trial and baseline: the model's layer count, the
tokenized data and the layer scores (docs/design.md §1: shared work is never done per trial)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from prunetune.search.spec import SearchSpec
from prunetune.trainables.data import load_labelled, load_scored_pairs, sample_texts
from prunetune.trainables.models import load_any, load_tokenizer, loading, resolve_model, tokenizer_of
from prunetune.trainables.prepared import prepare_classification
from prunetune.trainables.scores import compute_layer_scores

from prunetune.config import ConfigError
from prunetune.libs import ray, torch, transformers
from prunetune.records import LayerScores

__all__ = [
    "SharedWork", "check_depths", "check_resources", "check_storage", "dataset_inputs", "layer_scores",
    "model_num_layers", "prepared_data", "share", "this_machine"
]  # fmt: skip


log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=32)
def model_num_layers(model: str) -> int:
    """The layer count from the model's config alone (no weights loaded)."""

    with loading(model):
        config = transformers.AutoConfig.from_pretrained(resolve_model(model))
    return int(config.num_hidden_layers)


def check_depths(spec: SearchSpec, num_layers: int) -> None:
    """Refuse, before anything runs, scratch depths the model cannot have."""
    if any(not 1 <= depth <= num_layers for depth in spec.scratch_layers):
        raise ConfigError(
            f"scratch_layers={list(spec.scratch_layers)}: each depth must lie in 1..{num_layers} "
            f"({spec.trial.model} has {num_layers} layers)"
        )


def check_resources(spec: SearchSpec, nodes: list[dict[str, float]]) -> None:
    """Some node of the cluster (``nodes``: each live node's resources) must hold one trial, unless the
    cluster scales: a request no node can meet would otherwise wait for ever, its runs left RUNNING."""
    need = {"CPU": spec.resources.cpus_per_trial, "GPU": spec.resources.gpus}
    need = {kind: amount for kind, amount in need.items() if amount > 0}
    if spec.resources.autoscaling or any(all(node.get(k, 0) >= v for k, v in need.items()) for node in nodes):
        return
    largest = {kind: max((node.get(kind, 0) for node in nodes), default=0) for kind in need}
    raise ConfigError(
        f"a trial asks for {', '.join(f'{v:g} {k}' for k, v in need.items())}, and no node of the Ray cluster "
        f"has that (the largest: {', '.join(f'{v:g} {k}' for k, v in largest.items())}): lower "
        "resources.cpus_per_trial / gpus_per_trial, or set resources.autoscaling: true on a cluster that adds nodes"
    )


def this_machine() -> dict[str, float]:
    """The resources of the node a local Ray instance starts on: this machine's CPUs and CUDA devices, known before
    Ray starts, so a trial it cannot hold is refused with no folder made and no 17 s wait."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}


def check_storage(spec: SearchSpec) -> None:
    """``storage_path`` must be a folder this user can write: refused at once, before Ray or MLflow start."""
    if spec.is_uri:
        return  # a bucket: Ray reports its own access errors
    path = spec.storage
    fix = "choose a folder you can write, e.g. --set storage_path=./prunetune-runs"
    existing = next(p for p in (path, *path.parents) if p.exists())  # checked, not created: a refused
    if not existing.is_dir():  # search leaves no folder behind
        raise ConfigError(f"storage_path {path}: {existing} is a file, not a folder: {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"storage_path {path} cannot be written ({existing} is not writable): {fix}")


def prepared_data(spec: SearchSpec) -> tuple[Any, list[dict[str, Any]]]:
    """A classification task's data, read and tokenized once here for every trial (None for other tasks,
    whose data is read here all the same): a file that cannot be read is refused on the driver, before Ray.
    With it, what every trial's run records as its dataset inputs (:func:`dataset_inputs`)."""
    if spec.trial.task != "classification":
        pairs = load_scored_pairs(spec.trial.data)
        if spec.trial.sentence.nli_data is not None:
            load_labelled(spec.trial.sentence.nli_data, pairs=True)
        return None, dataset_inputs(spec.trial.data.source, pairs)

    prepared = prepare_classification(spec.trial, load_tokenizer(spec.trial.model), spec.trial.model)
    if prepared.task.report.total:  # said once here, for the whole search, not once per job
        log.warning("%s: %s", spec.trial.data.source, prepared.task.report.summary())
    return prepared, dataset_inputs(spec.trial.data.source, prepared.task)


@dataclass(frozen=True)
class SharedWork:
    """What a search computes once for all its jobs, in Ray's object store, each part read once per process:
    the data read and tokenized, and (distilling) the teacher's outputs on the training rows.

    Tune's ``with_parameters`` and a task's arguments would read an ObjectRef anew for every trial: 0.16 s to
    unpickle 6,000 tokenized headlines, most of what a reused trial process pays per trial. This object
    travels instead (a few bytes), and a process keeps what it read for its next trials."""

    data: Any = None  # ray.ObjectRef of a PreparedData; None for a sentence task
    # ray.ObjectRef of the teacher's outputs on the training rows (float32 logits, or sentence embeddings);
    # None: no distillation
    teacher: Any = None

    def prepared(self) -> Any:
        return _read_once(self.data)

    def teacher_outputs(self) -> Any:
        return _read_once(self.teacher)


_READ: dict[str, Any] = {}


def _read_once(ref: Any) -> Any:
    if ref is None:
        return None
    key = ref.hex()
    if key not in _READ:
        if len(_READ) >= 2:  # one search's data and teacher at a time
            _READ.clear()
        _READ[key] = ray.get(ref)
    return _READ[key]


def share(prepared: Any) -> SharedWork:
    """``prepared`` in Ray's object store, for the baselines and every trial."""
    return SharedWork(None if prepared is None else ray.put(prepared))


def dataset_inputs(source: str, data: Any) -> list[dict[str, Any]]:
    """Each split the trials train and are scored on, as an MLflow dataset: its source, the digest of its
    rows (texts, pairs and targets as read, so two searches on the same rows show the same digest), its size."""
    found = []
    for split in ("train", "validation", "test"):
        rows = getattr(data, split)
        if rows is None:
            continue
        digest = hashlib.sha256(json.dumps([rows.texts, rows.pairs, rows.targets], default=str).encode())
        found.append(
            {
                "name": f"{source}:{split}",
                "digest": digest.hexdigest()[:16],
                "source": source,
                "split": split,
                "rows": len(rows),
            }  # fmt: skip
        )
    return found


def layer_scores(spec: SearchSpec) -> LayerScores:
    """Contribution / angular scores of the model, computed once per search on the driver (one forward pass
    over a sample, cached by content): the strategies that need them read them, and the report plots them."""

    model = load_any(spec.trial.model)
    texts = sample_texts(spec.trial.data, spec.trial.scores_sample_rows)
    return compute_layer_scores(
        model,
        tokenizer_of(model, spec.trial.model),
        texts,
        model_name=spec.trial.model,
        max_length=spec.trial.training.max_length,
    )
