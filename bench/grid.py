"""Benchmark 1a: the exhaustive grid, run once, stored as a table (config -> scores).

Every distinct set of kept layers that the searchable strategies can produce for the model (every
contiguous window at every offset — which includes top, bottom and middle — alternate even/odd,
contribution-based), plus the unpruned reference, times a few learning rates. Each row is one plain
``run_job`` call (no Ray, no MLflow: the table is the ground truth the replay searches are scored
against). The CSV is appended row by row, so an interrupted run continues where it stopped.

    bench/grid.py --output bench/results/grid-minilm-indicnews-en.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from prunetune.trainables.job_file import load_trial_config
from prunetune.trainables.strategies import StrategyError, kept_layers

from prunetune.config import TrialConfig

HERE = Path(__file__).resolve().parent
COLUMNS = (
    "kept_layers",
    "layers_dropped",
    "strategies",
    "learning_rate",
    "epochs",
    "seed",
    "val_score",
    "val_macro_f1",
    "seconds",
)


def kept_sets(num_layers: int, scores: object) -> dict[tuple[int, ...], list[str]]:
    """Every kept-layer set the searchable strategies reach, with the strategies (and params) reaching it."""
    found: dict[tuple[int, ...], list[str]] = {tuple(range(num_layers)): ["none"]}
    for count in range(1, num_layers):
        for start in range(num_layers - count + 1):
            found.setdefault(kept_layers("window", num_layers, {"count": count, "start": start}), []).append(
                f"window(count={count},start={start})"
            )
        for name in ("top", "bottom", "middle", "alternate-even", "alternate-odd", "contribution", "angular-block"):
            try:
                kept = kept_layers(name, num_layers, {"count": count}, scores)  # type: ignore[arg-type]
            except StrategyError:
                continue
            found.setdefault(kept, []).append(f"{name}(count={count})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "grid-minilm-indicnews-en.yaml"))
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[2e-4, 4e-4])
    parser.add_argument("--output", default=str(HERE / "results" / "grid-minilm-indicnews-en.csv"))
    args = parser.parse_args()

    from prunetune.trainables import data as datasets
    from prunetune.trainables.jobs import run_job
    from prunetune.trainables.models import load_any, tokenizer_of
    from prunetune.trainables.scores import compute_layer_scores
    from prunetune.trainables.surgery import num_layers

    base: TrialConfig = load_trial_config(args.config)
    model = load_any(base.model)
    total = num_layers(model)
    scores = compute_layer_scores(
        model,
        tokenizer_of(model, base.model),
        datasets.sample_texts(base.data, base.scores_sample_rows),
        model_name=base.model,
        max_length=base.training.max_length,
    )
    del model
    sets = kept_sets(total, scores)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # The replay realises contribution-based points from the same scores the grid used.
    output.with_name(output.stem + "-scores.json").write_text(scores.to_json())
    done = set()
    if output.exists():
        with output.open() as f:
            done = {(r["kept_layers"], float(r["learning_rate"])) for r in csv.DictReader(f)}
    else:
        with output.open("w", newline="") as f:
            csv.writer(f).writerow(COLUMNS)
    plan = [(kept, names, lr) for lr in args.learning_rates for kept, names in sets.items()]
    print(f"{len(sets)} kept-layer sets x {len(args.learning_rates)} learning rates = {len(plan)} jobs", flush=True)
    for number, (kept, names, lr) in enumerate(plan, 1):
        key = (json.dumps(list(kept)), lr)
        if key in done:
            continue
        config = base.with_overrides({"kept_layers": list(kept), "training.learning_rate": lr})
        started = time.monotonic()
        result = run_job(config)
        row = {
            "kept_layers": key[0],
            "layers_dropped": total - len(kept),
            "strategies": ";".join(names),
            "learning_rate": lr,
            "epochs": config.training.epochs,
            "seed": config.training.seed,
            "val_score": round(result["val_score"], 6),
            "val_macro_f1": round(result["val_macro_f1"], 6),
            "seconds": round(time.monotonic() - started, 1),
        }
        with output.open("a", newline="") as f:
            csv.writer(f).writerow([row[c] for c in COLUMNS])
        print(
            f"[{number}/{len(plan)}] kept {list(kept)} lr {lr:g}: {row['val_score']:.4f} ({row['seconds']} s)",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
