"""Benchmark 6: jobs per hour, a prunetune search against plain worker processes, K at a time on one device.

1. **The search**: a real prunetune search (local Ray, local SQLite MLflow store, Optuna, the reference score
   given so no sweep runs, no early stopping) runs N trials, K at a time, on whatever device is present
   (``device: auto``: CUDA if there, sharing one GPU as ``gpus_per_trial: 1/K``; else the CPU).
2. **The baseline**: the very same trial configs, read back from MLflow, run in K plain worker processes,
   each calling ``run_job`` on data it read and tokenized once (a competent plain script).
3. Jobs per hour for each and their ratio; the fixed cost per trial = (search - plain) x K / N. The plain
   workers are timed twice: once they hold their data (the steady state, the stricter baseline), and from
   the start of their processes (like the search's trial phase, which starts its trial processes).
4. The parts of a trial's fixed cost, timed in this process, cold (first trial of a process) and warm (a
   reused trial process): the model read, the prepared data read, the data padded on the device.

    bench/gpu.py --jobs 8 --concurrency 2 --threads 1              # CPU, small jobs
    bench/gpu-device     # on the lent H100, from the kit bench/gpu-kit packs: 96 jobs, 12 at a time
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import pickle
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # plain_workers, beside this script (imports too)
import plain_workers  # noqa: E402

HERE = Path(__file__).resolve().parent


def plain_run(configs: list[Any], concurrency: int, threads: int) -> tuple[float, float]:
    """Seconds for K plain processes to run ``configs``: (from the start of the processes to their end, from
    when every worker has started and prepared its data to the last job's end)."""
    context = multiprocessing.get_context("spawn")
    init = (threads, configs[0])
    started = time.monotonic()
    with concurrent.futures.ProcessPoolExecutor(
        concurrency, mp_context=context, initializer=plain_workers.start, initargs=init
    ) as pool:
        list(pool.map(plain_workers.ready, range(concurrency)))  # every worker started and holding its data
        began = time.monotonic()
        list(pool.map(plain_workers.run, configs))
        ran = time.monotonic()
    return time.monotonic() - started, ran - began  # the first, like Tune's trial phase, ends with the processes


def fixed_cost_parts(base: Any, device: str) -> list[tuple[str, float, float]]:
    """(part, before seconds, after seconds) of what a trial pays before training, in this process: "before",
    what each trial of a reused process paid before issue 12 (or the process's first trial still pays)."""
    import ray
    from prunetune.search.shared import share
    from prunetune.trainables import models, prepared
    from prunetune.trainables.prepared import padded_splits, prepare_classification

    tokenizer = models.load_tokenizer(base.model)
    data = prepare_classification(base, tokenizer, base.model)
    labels = data.task.label_names
    rows: list[tuple[str, float, float]] = []

    def timed(part: str, cold: Any, warm: Any) -> None:
        began = time.perf_counter()
        cold()
        middle = time.perf_counter()
        warm()
        rows.append((part, middle - began, time.perf_counter() - middle))

    models.BASE_MODELS.clear()
    load = lambda: models.load_classifier(base.model, labels)  # noqa: E731
    timed("model: read from disk (first in the process) / copied from memory", load, load)
    models.BASE_MODELS.clear()  # what every trial of a reused process paid before: the model read again
    timed("model: read from disk again / copied from memory", load, load)
    models.load_tokenizer.cache_clear()
    read_tokenizer = lambda: models.load_tokenizer(base.model)  # noqa: E731
    timed("tokenizer: read from disk / held", read_tokenizer, read_tokenizer)
    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    shared = share(data)
    shared.prepared()  # the first read of the process
    blob = pickle.dumps(data)  # what Ray unpickled for every trial before: the ObjectRef read anew
    rows.append(
        (
            "data: unpickled per trial / held by the process",
            _seconds(lambda: pickle.loads(blob)),
            _seconds(shared.prepared),
        )
    )
    ray.shutdown()
    prepared._PADDED.clear()
    timed(
        "data: padded on the device / held",
        lambda: padded_splits(data, tokenizer, device),
        lambda: padded_splits(data, tokenizer, device),
    )
    return rows


def _seconds(call: Any) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="trials of the search (repeats are not trained)")
    parser.add_argument("--concurrency", type=int, default=2, help="K: trials at a time, and plain workers")
    parser.add_argument("--threads", type=int, default=1, help="cores per trial and per worker")
    parser.add_argument("--storage", default="prunetune-runs/bench-gpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec overrides")
    parser.add_argument("--parts-only", action="store_true", help="only time the parts of a trial's fixed cost")
    args = parser.parse_args()

    import shutil

    import torch
    from prunetune.analysis.query import find_search, open_store, search_runs_frame
    from prunetune.search.runner import run_search
    from prunetune.search.spec import load_spec
    from prunetune.trainables.models import pick_device

    from prunetune.config import TrialConfig, parse_overrides
    from prunetune.records import TRIAL_PHASE_SECONDS

    device = pick_device("auto")
    shutil.rmtree(args.storage, ignore_errors=True)
    overrides = {
        "name": "bench-gpu",
        "trial.data.max_train_rows": 2000,
        "trial.data.max_eval_rows": 1000,
        "trial.training.device": "auto",
        "space.epochs": [1, 1],
        "space.strategies": ["window"],
        "budget.reference_score": 0.5,  # given: no reference sweep, the trials alone are measured
        "scratch_layers": [],
        "scheduler": "none",
        "save_model": False,
        "num_trials": args.jobs,
        "max_concurrent": args.concurrency,
        "resources.cpus_per_trial": args.threads,
        "resources.gpus_per_trial": 1 / args.concurrency if device == "cuda" else 0,
        "storage_path": args.storage,
    } | parse_overrides(args.set)
    spec = load_spec(str(HERE.parent / "examples" / "search-default.yaml"), overrides)

    if args.parts_only:
        _print_parts(spec.trial, device)
        return
    run_search(spec, say=lambda line: print("  " + line, flush=True))
    mlflow = open_store(spec.resolved_tracking_uri())
    search = find_search(mlflow, spec.name)
    searched = mlflow.get_run(search.run_id).data.metrics[TRIAL_PHASE_SECONDS]  # Tune's trials alone
    frame = search_runs_frame(mlflow, search)
    trained = frame[frame["kind"] == "trial"]
    unfinished = trained[trained["status"] != "complete"]
    if len(trained) < args.jobs or len(unfinished):
        raise SystemExit(
            f"bench: {len(trained)} of {args.jobs} trials recorded, {len(unfinished)} not complete: see the log above"
        )
    configs = [TrialConfig.from_flat(mlflow.get_run(run_id).data.params) for run_id in trained["run_id"]]
    plain_started, plain = plain_run(configs, args.concurrency, args.threads)

    n, k = len(configs), args.concurrency
    print(f"\n{n} jobs trained, {k} at a time, {args.threads} core(s) each, on {device}; torch {torch.__version__}")
    print("| way | seconds | jobs per hour |")
    print("| --- | --- | --- |")
    print(f"| {k} plain workers calling run_job, once holding their data | {plain:.1f} | {3600 * n / plain:.0f} |")
    print(f"| the same, their processes' start included | {plain_started:.1f} | {3600 * n / plain_started:.0f} |")
    print(f"| prunetune search (`tuner.fit`) | {searched:.1f} | {3600 * n / searched:.0f} |")
    print(
        f"\nsearch / plain: {plain / searched:.1%} of the plain workers' jobs per hour; "
        f"fixed cost per trial {(searched - plain) * k / n:.2f} s"
    )
    print(f"search / plain with their start: {plain_started / searched:.1%}")

    if device == "cuda":  # first: the probe reads the whole GPU's memory in use, before this process holds any
        _print_packing(spec)
    _print_parts(spec.trial, device)


def _print_packing(spec: Any) -> None:
    """What ``gpus_per_trial: auto`` makes of this GPU: the probe's measured peak, and trials per GPU."""
    import os

    from prunetune.search.packing import trials_per_gpu
    from prunetune.trainables.memory import training_peak

    found = training_peak(spec.trial)
    assert found is not None
    peak, total = found
    cpus = os.cpu_count() or 1
    per_gpu = trials_per_gpu(cpus, 1, spec.resources.cpus_per_trial, total, peak)
    by_memory = trials_per_gpu(10**6, 1, 1, total, peak)  # the packing's own rule, CPUs no limit: memory alone
    print(
        f"\ngpus_per_trial auto: a trial's measured peak {peak / 2**30:.2f} GiB of {total / 2**30:.1f} GiB "
        f"-> {by_memory} trials by memory; with {cpus} CPUs at {spec.resources.cpus_per_trial} each: {per_gpu} per GPU"
    )


def _print_parts(base: Any, device: str) -> None:
    print("\n| part of a trial's fixed cost | before / first (s) | after, a reused process (s) |")
    print("| --- | --- | --- |")
    for part, cold, warm in fixed_cost_parts(base, device):
        print(f"| {part} | {cold:.3f} | {warm:.3f} |")


if __name__ == "__main__":
    main()
