"""The search's teacher for distillation (:mod:`prunetune.trainables.distill`).

The teacher is the tuned reference's configuration trained on the search's own seed: the best the full model
does, as the trials are tuned. It is trained once, as a reference run (so max-drop's pairing on the search seed
reuses it), and its outputs on the training rows (a classifier's logits, a sentence model's embeddings of the
STS training sentences) are computed in the same job, cached by content (the config and the digests of the
data's rows), and put once in Ray's object store: every distilled trial, re-check and answer model reads them
from there (:class:`~prunetune.search.shared.SharedWork`); none loads or runs the teacher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from prunetune.search.context import SearchContext
from prunetune.search.decide import TunedReference
from prunetune.search.jobs import run_jobs
from prunetune.search.reference import reference_trials
from prunetune.search.shared import SharedWork
from prunetune.search.spec import SearchSpec, reference_key
from prunetune.trainables.distill import TRAIN_OUTPUTS
from prunetune.trainables.sources import cache_root

from prunetune.config import TrialConfig
from prunetune.libs import np, ray
from prunetune.records import KIND_REFERENCE, TAG_REFERENCE_KEY, TAG_TEACHER, counted

__all__ = ["cache_file", "distills", "teach", "teacher_config"]


TEACHER_VERSION = 2  # bump when the outputs' computation changes, so old cache entries are not reused


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


def cache_file(config: TrialConfig, data_digests: list[str]) -> Path:
    """Where the teacher's outputs of ``config`` on data whose rows have ``data_digests`` are cached."""

    raw = json.dumps({"config": config.to_dict(), "data": data_digests, "version": TEACHER_VERSION}, sort_keys=True)
    return cache_root() / "teacher-outputs" / f"{hashlib.sha256(raw.encode()).hexdigest()[:24]}.npy"


def teach(ctx: SearchContext, reference: TunedReference, data_digests: list[str]) -> SharedWork:
    """The search's shared work with the teacher's outputs on the training rows: read from the cache, else trained
    once. ``data_digests``: the digests of the search's data (:func:`~prunetune.search.shared.dataset_inputs`)."""
    assert ctx.shared is not None  # the driver shares the prepared data before the teacher
    say = ctx.say
    config = teacher_config(ctx.spec, reference)
    path = cache_file(config, data_digests)
    outputs = "logits" if config.task == "classification" else "embeddings of the training sentences"
    what = f"the tuned reference (lr {reference.learning_rate:.1e}, {counted(reference.epochs, 'epoch')}) on seed "
    what += str(config.training.seed)
    if path.exists():
        found = np.load(path)
        say(f"teacher: {what}; its {outputs} ({len(found)} rows) read from the cache ({path})")
    else:
        say(f"teacher: {what}, trained once; its {outputs} teach every distilled trial")
        tags = {TAG_REFERENCE_KEY: reference_key(config), TAG_TEACHER: "true"}
        ((_, result),) = run_jobs(ctx, [(config, KIND_REFERENCE, tags)], train_outputs=True)
        found = np.asarray(result[TRAIN_OUTPUTS], dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.npy")
        np.save(partial, found)
        os.replace(partial, path)  # whole or absent: a concurrent search never reads half a file
    return dataclasses.replace(ctx.shared, teacher=ray.put(found))
