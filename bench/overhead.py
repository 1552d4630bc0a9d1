"""Benchmark 3: what prunetune (Ray Tune + Optuna + MLflow) adds on top of the training itself.

1. A real search runs N trials one at a time (``max_concurrent: 1``, no early stopping, each trial on all
   the cores), on a local Ray instance with a local MLflow store — or with ``--address``/``--tracking-uri``
   on a running cluster and ``mlflow server``.
2. The very same trial configs, read back from MLflow, run again in a plain Python loop calling
   ``run_job`` in one process with the same thread count.
3. Overhead per trial = (the search's trial phase - the loop) / N; its share of a trial's time.

The search's one-off set-up (Ray start, the reference run, layer scores) is reported apart: it is paid
once per search, not per trial (benchmark 2 measures that shared work).

    bench/overhead.py --trials 4 --threads 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="cores per trial, in the search and in the loop")
    parser.add_argument("--storage", default="prunetune-runs/bench-overhead")
    parser.add_argument("--address", help="a running Ray cluster (default: a local Ray instance)")
    parser.add_argument("--tracking-uri", help="an mlflow server (default: a local SQLite store)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec overrides")
    args = parser.parse_args()

    import shutil

    import torch
    from prunetune.analysis.query import find_search, open_store, search_runs_frame
    from prunetune.search.runner import run_search
    from prunetune.search.spec import load_spec
    from prunetune.trainables.jobs import run_job

    from prunetune.config import TrialConfig, parse_overrides
    from prunetune.records import TRIAL_PHASE_SECONDS

    shutil.rmtree(args.storage, ignore_errors=True)
    overrides = {
        "name": "bench-overhead",
        "trial.data.max_train_rows": 2000,
        "trial.data.max_eval_rows": 1000,
        "trial.training.epochs": 1,
        "space.epochs": [1, 1],
        "scheduler": "none",
        "num_trials": args.trials,
        "max_concurrent": 1,
        "resources.cpus_per_trial": args.threads,
        "save_model": False,  # the answer's model is trained after the trials: not what this measures
        "storage_path": args.storage,
        "tracking_uri": args.tracking_uri,
        "address": args.address,
    } | parse_overrides(args.set)
    spec = load_spec(str(HERE.parent / "examples" / "search-default.yaml"), overrides)

    started = time.monotonic()
    result = run_search(spec, say=lambda line: print("  " + line, flush=True))
    search_total = time.monotonic() - started
    mlflow = open_store(spec.resolved_tracking_uri())
    search = find_search(mlflow, spec.name)
    trial_phase = mlflow.get_run(search.run_id).data.metrics[TRIAL_PHASE_SECONDS]  # Tune's trials alone
    frame = search_runs_frame(mlflow, search)
    trial_runs = frame[frame["kind"] == "trial"].sort_values("start_time")
    configs = [TrialConfig.from_flat(mlflow.get_run(run_id).data.params) for run_id in trial_runs["run_id"]]

    torch.set_num_threads(args.threads)
    loop_times = []
    for config in configs:  # in the search's order, so each job pairs with its trial
        began = time.monotonic()
        run_job(config)
        loop_times.append(time.monotonic() - began)
    loop = sum(loop_times)
    per_trial = (trial_phase - loop) / len(configs)
    mean_trial = loop / len(configs)
    print(
        f"\nsearch {spec.name}: {len(configs)} trials, one at a time, {args.threads} cores each; "
        f"reference {result.reference_score:.4f}"
    )
    print("| what | seconds |")
    print("| --- | --- |")
    print(f"| whole search (Ray start, reference, scores, trials, MLflow) | {search_total:.1f} |")
    print(f"| one-off set-up (everything before the first trial) | {search_total - trial_phase:.1f} |")
    print(f"| trial phase (Tune's trials) | {trial_phase:.1f} |")
    print(f"| the same {len(configs)} jobs in a plain loop | {loop:.1f} |")
    print(f"| mean job in the loop | {mean_trial:.1f} |")
    print(f"| overhead per trial | {per_trial:.2f} ({per_trial / mean_trial:.1%} of a trial) |")
    print("\n| trial | layers kept | MLflow run seconds (search) | loop seconds | torch threads (search) |")
    print("| --- | --- | --- | --- | --- |")
    for n, ((_, run), seconds) in enumerate(zip(trial_runs.iterrows(), loop_times, strict=True)):
        kept = len(configs[n].kept_layers or [])
        print(f"| {n} | {kept} | {run['seconds']:.1f} | {seconds:.1f} | {run.get('torch_threads', '?')} |")


if __name__ == "__main__":
    main()
