"""More seeds for a seed table: every configuration of the table at each of its learning rates, trained on new
seeds by K plain worker processes sharing one device, and written in the table's own columns.

The seed table (bench/tables/) has seeds 0 and 1; a decision of ``max-drop``'s 5 seeds needs more to be replayed and
its noise to be checked. Each row here is one ``run_job`` call (no Ray, no MLflow) of the trial of
``--spec`` (the table's setting: examples/max-drop-minilm-indicnews.yaml) with the row's kept layers,
learning rate, epochs and seed. Rows are appended as they finish, so a run cut short keeps what it trained
and a second run skips it; jobs go seed by seed, so whole seeds come first. ``--stop-after`` starts no job
after that many seconds (the device call's own limit), and lets the running ones finish.

    bench/seed_table.py --seeds 3 4 5 --output bench/results/minilm-l6-indicnews-en-seeds-3-5.csv
    bench/seed-table-device     # on a GPU machine, from the kit: 14 workers, seeds 3 onwards

The same configurations in another setting (``--learning-rates`` replaces the table's, the epochs are the spec's),
as the STS-B table was made (bench/tables/README.md):

    bench/seed_table.py --spec examples/max-drop-minilm-stsb.yaml --variants reference pruned random-init \
        --learning-rates 1e-4 2e-4 4e-4 --seeds 0 1 --output bench/tables/minilm-l6-stsb-en-lr-seeds.csv
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # plain_workers, beside this script (imports too)
import plain_workers  # noqa: E402
from paths import SEED_TABLE  # noqa: E402

HERE = Path(__file__).resolve().parent
COLUMNS = ("config", "kept_layers", "layers_dropped", "variant", "learning_rate", "epochs", "seed", "val_score")


def table_points(
    table: Path,
    variants: list[str],
    configs: list[str] | None = None,
    learning_rates: list[float] | None = None,
    epochs: int | None = None,
) -> list[dict[str, str]]:
    """The table's distinct (configuration, learning rate, epochs), in the table's order, seeds left out.

    ``learning_rates`` (with ``epochs``) replace the table's own: the same configurations in another setting,
    such as another task whose best learning rates differ. ``configs`` keeps only the configurations named."""
    points: dict[tuple[str, str, str], dict[str, str]] = {}
    with table.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["variant"] not in variants or (configs is not None and row["config"] not in configs):
                continue
            if learning_rates is None:
                points.setdefault((row["config"], row["learning_rate"], row["epochs"]), row)
                continue
            for rate in learning_rates:
                moved = row | {"learning_rate": f"{rate:g}", "epochs": str(epochs)}
                points.setdefault((row["config"], moved["learning_rate"], moved["epochs"]), moved)
    return [{c: row[c] for c in COLUMNS if c not in ("seed", "val_score")} for row in points.values()]


def trial_config(base: Any, point: dict[str, str], seed: int) -> Any:
    """The point's trial: the reference keeps every layer (no surgery), a pruned row its kept layers, a
    random-init row (a scratch model) the same architecture at that depth with every weight re-initialised."""
    kept = None if point["variant"] == "reference" else json.loads(point["kept_layers"])
    return base.with_overrides(
        {
            "kept_layers": kept,
            "variant": "scratch" if point["variant"] == "random-init" else "pruned",
            "training.learning_rate": float(point["learning_rate"]),
            "training.epochs": int(point["epochs"]),
            "training.seed": seed,
        }
    )


def trained_rows(output: Path) -> set[tuple[str, str, str, str]]:
    """(configuration, learning rate, epochs, seed) already in ``output``; a new file gets its header."""
    if not output.exists():
        with output.open("w", newline="") as handle:
            csv.writer(handle).writerow(COLUMNS)
        return set()
    with output.open(newline="") as handle:
        return {(r["config"], r["learning_rate"], r["epochs"], r["seed"]) for r in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=SEED_TABLE, help="the table whose configurations are trained")
    parser.add_argument("--spec", default=str(HERE.parent / "examples" / "max-drop-minilm-indicnews.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--variants", nargs="+", default=["reference", "pruned"], help="add random-init for scratch")
    parser.add_argument("--configs", nargs="+", default=None, help="only these configurations (a pilot)")
    parser.add_argument(
        "--learning-rates", type=float, nargs="+", default=None, help="instead of the table's (epochs: the spec's)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="K: plain workers sharing the device")
    parser.add_argument("--threads", type=int, default=1, help="cores per worker")
    parser.add_argument("--stop-after", type=float, default=None, help="seconds after which no job starts")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="trial overrides")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from prunetune.config import TrialConfig, parse_overrides
    from prunetune.libs import yaml

    raw = yaml.safe_load(Path(args.spec).read_text())["trial"]
    base = TrialConfig.from_dict(raw).with_overrides({"training.device": "auto"} | parse_overrides(args.set))
    points = table_points(args.table, args.variants, args.configs, args.learning_rates, base.training.epochs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    done = trained_rows(args.output)
    plan = [
        (point, seed)
        for seed in args.seeds
        for point in points
        if (point["config"], point["learning_rate"], point["epochs"], str(seed)) not in done
    ]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"{len(points)} configurations x seeds {args.seeds}: {len(plan)} jobs to train "
        f"({len(points) * len(args.seeds) - len(plan)} already in {args.output}), "
        f"{args.concurrency} workers on {device}, {args.threads} core(s) each",
        flush=True,
    )
    context = multiprocessing.get_context("spawn")
    started = time.monotonic()
    trained = 0
    with concurrent.futures.ProcessPoolExecutor(
        args.concurrency, mp_context=context, initializer=plain_workers.start, initargs=(args.threads, base)
    ) as pool:
        waiting = list(reversed(plan))
        running: dict[concurrent.futures.Future[tuple[float, float]], tuple[dict[str, str], int]] = {}
        while waiting or running:
            late = args.stop_after is not None and time.monotonic() - started > args.stop_after
            while waiting and not late and len(running) < args.concurrency + 2:  # a short queue: stops promptly
                point, seed = waiting.pop()
                running[pool.submit(plain_workers.run, trial_config(base, point, seed))] = (point, seed)
            if late and waiting:
                queued = [future for future in running if future.cancel()]
                for future in queued:
                    waiting.append(running.pop(future))
                print(f"stop-after {args.stop_after:g} s: {len(waiting)} jobs not started", flush=True)
                waiting = []
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                point, seed = running.pop(future)
                score, seconds = future.result()
                with args.output.open("a", newline="") as handle:
                    csv.writer(handle).writerow([*point.values(), seed, round(score, 4)])
                trained += 1
                print(
                    f"[{trained}/{len(plan)}] seed {seed} {point['config']} lr {float(point['learning_rate']):g}: "
                    f"{score:.4f} ({seconds:.1f} s)",
                    flush=True,
                )
    wall = time.monotonic() - started
    print(f"{trained} jobs in {wall:.0f} s, workers' start included: {trained / wall:.3f} jobs/s", flush=True)


if __name__ == "__main__":
    main()
