"""The search's teacher for distillation (:mod:`prunetune.trainables.distill`).

The teacher is the tuned reference's configuration trained on the search's own seed: the best the full model
does, as the trials are tuned. It is trained once, as a reference run (so max-drop's pairing on the search seed
reuses it), and its logits on the training rows are computed in the same job, cached by content (the config
and the prepared data), and put once in Ray's object store: every distilled trial, re-check and answer model
reads them from there (:class:`~prunetune.search.shared.SharedWork`); none loads or runs the teacher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from prunetune.search.decide import TunedReference
from prunetune.search.jobs import run_jobs
from prunetune.search.reference import reference_trials
from prunetune.search.shared import SharedWork
from prunetune.search.spec import SearchSpec, reference_key
from prunetune.trainables.config import TrialConfig
from prunetune.trainables.distill import TRAIN_LOGITS

from prunetune.libs import np, ray
from prunetune.records import KIND_REFERENCE, TAG_REFERENCE_KEY, TAG_TEACHER

TEACHER_VERSION = 1  # bump when the logits' computation changes, so old cache entries are not reused


def distills(spec: SearchSpec) -> bool:
    """Whether any trial of the search may distil: the space samples it, or the spec's trial does."""
    return spec.space.distill or spec.trial.distill.on


def teacher_config(spec: SearchSpec, reference: TunedReference) -> TrialConfig:
    """The tuned reference's configuration on the search's own seed."""
    return reference_trials(spec)[0].with_overrides(
        {
            "training.learning_rate": reference.learning_rate,
            "training.epochs": reference.epochs,
            "training.seed": spec.trial.training.seed,
        }
    )


def cache_file(config: TrialConfig, preparation_key: str) -> Path:
    from prunetune.trainables.sources import cache_root

    raw = json.dumps({"config": config.to_dict(), "data": preparation_key, "version": TEACHER_VERSION}, sort_keys=True)
    return cache_root() / "teacher-logits" / f"{hashlib.sha256(raw.encode()).hexdigest()[:24]}.npy"


def teach(
    spec: SearchSpec,
    mlflow: Any,
    experiment: str,
    reference: TunedReference,
    shared: SharedWork,
    preparation_key: str,
    say: Any,
) -> SharedWork:
    """``shared`` with the teacher's logits on the training rows: read from the cache, else trained once."""
    config = teacher_config(spec, reference)
    path = cache_file(config, preparation_key)
    what = f"the tuned reference (lr {reference.learning_rate:.1e}, {reference.epochs} epochs) on seed "
    what += str(config.training.seed)
    if path.exists():
        logits = np.load(path)
        say(f"teacher: {what}; its logits on {len(logits)} training rows read from the cache ({path})")
    else:
        say(f"teacher: {what}, trained once; its logits on the training rows teach every distilled trial")
        tags = {TAG_REFERENCE_KEY: reference_key(config), TAG_TEACHER: "true"}
        ((_, result),) = run_jobs(
            spec, mlflow, experiment, [(config, KIND_REFERENCE, tags)], shared, say, train_logits=True
        )
        logits = np.asarray(result[TRAIN_LOGITS], dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.npy")
        np.save(partial, logits)
        os.replace(partial, path)  # whole or absent: a concurrent search never reads half a file
    return dataclasses.replace(shared, teacher=ray.put(logits))
