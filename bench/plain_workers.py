"""Plain worker processes for the benchmarks (bench/gpu.py, bench/seed_table.py): each reads and tokenizes its data
once, then calls ``run_job`` on it, as a competent plain script would. Use as a ``ProcessPoolExecutor``'s
``initializer=start, initargs=(threads, base)``, then submit :func:`run`."""

from __future__ import annotations

import time
from typing import Any

_WORKER: dict[str, Any] = {}


def start(threads: int, base: Any) -> None:
    """A plain worker: its threads, and the data read and tokenized once (the same for every seed and config)."""
    import torch
    from prunetune.trainables.models import load_tokenizer
    from prunetune.trainables.prepared import prepare_classification

    torch.set_num_threads(threads)
    # A sentence-similarity job tokenizes its pairs itself (run_job takes prepared data for classification only).
    prepared = None
    if base.task == "classification":
        prepared = prepare_classification(base, load_tokenizer(base.model), base.model)
    _WORKER["prepared"] = prepared


def ready(_: int) -> bool:
    """Whether this worker has started and holds its data (map it over the workers before a clock starts)."""
    return "prepared" in _WORKER


def run(config: Any) -> tuple[float, float]:
    """One job on the worker's data: (val_score, seconds)."""
    from prunetune.trainables.jobs import run_job

    started = time.monotonic()
    score = float(run_job(config, prepared=_WORKER["prepared"])["val_score"])
    return score, time.monotonic() - started
