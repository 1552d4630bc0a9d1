"""Benchmark 5: trials per hour with 1, 2 and 4 worker nodes of a local Ray cluster, against the ideal.

For each node count a fresh cluster is started with `ray start` (a head with no CPUs, so trials run on
the workers only, and W worker nodes of one CPU each), and the same search (same spec, same trials)
runs on it with ``max_concurrent = W``. Trials per hour are counted over the trial phase (``tuner.fit``,
the search's ``seconds`` metric); the ideal is W times the one-node rate, capped by the machine's cores
(worker nodes beyond the physical cores share them). Only this benchmark's own nodes are stopped.

    bench/scaling.py --nodes 1 2 4 --trials 8
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(*args: str) -> None:
    command = [str(BIN / "ray"), "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args]
    subprocess.run(command, check=True, env=ENV, capture_output=True, timeout=180)


def _stop(temp: str, address: str) -> None:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if temp in line or f"--gcs-address={address}" in line or f"--address={address}" in line:
            try:
                proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    shutil.rmtree(temp, ignore_errors=True)


def run_on(workers: int, trials: int, storage: str, overrides: dict) -> float:
    """Trials per hour of the search on a fresh cluster of ``workers`` one-CPU worker nodes."""
    import ray
    from prunetune.analysis.query import find_search, open_store
    from prunetune.search.runner import run_search
    from prunetune.search.spec import load_spec

    from prunetune.records import TRIAL_PHASE_SECONDS

    temp = tempfile.mkdtemp(prefix="ptscale")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    _ray_start("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", "--num-cpus=0")
    try:
        for _ in range(workers):
            _ray_start(f"--address={address}", "--num-cpus=1")
        spec = load_spec(
            str(HERE.parent / "examples" / "search-default.yaml"),
            overrides
            | {
                "name": f"bench-scaling-{workers}",
                "num_trials": trials,
                "max_concurrent": workers,
                "storage_path": f"{storage}/{workers}",
                "address": address,
            },
        )
        run_search(spec, say=lambda line: print(f"  [{workers} nodes] {line}", flush=True))
        mlflow = open_store(spec.resolved_tracking_uri())
        seconds = mlflow.get_run(find_search(mlflow, spec.name).run_id).data.metrics[TRIAL_PHASE_SECONDS]
        return trials / seconds * 3600
    finally:
        ray.shutdown()
        _stop(temp, address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--storage", default="prunetune-runs/bench-scaling")
    args = parser.parse_args()
    shutil.rmtree(args.storage, ignore_errors=True)
    # Short trials of a fixed length (no early stopping), so the node count is what changes.
    overrides = {
        "trial.data.max_train_rows": 400,
        "trial.data.max_eval_rows": 200,
        "trial.training.epochs": 1,
        "space.epochs": [1, 1],
        "scheduler": "none",
        "scratch_layers": [],
        "resources.cpus_per_trial": 1,
    }
    cores = os.cpu_count() or 1
    rates = {w: run_on(w, args.trials, args.storage, overrides) for w in args.nodes}
    base = rates[min(rates)] / min(rates)
    print(f"\n{args.trials} trials per search; {cores} cores on this machine")
    print("| worker nodes | trials per hour | ideal | share of ideal |")
    print("| --- | --- | --- | --- |")
    for workers, rate in rates.items():
        ideal = base * min(workers, cores)
        print(f"| {workers} | {rate:.0f} | {ideal:.0f} | {rate / ideal:.0%} |")


if __name__ == "__main__":
    main()
