"""Benchmark 2: work shared by all trials is done once per search, not once per trial.

What every trial of a search needs besides its own fine-tuning: the task's data read and tokenized, the
model's layer scores (for contribution / angular strategies) and the unpruned reference score (to know
its drop). prunetune prepares these once on the driver; a naive per-trial script does all of it in
every trial. Both are run here for real, N trials each, in one process:

* prunetune:  prepare data + layer scores + reference, once; then N fine-tunes given them;
* naive:      N x (read + tokenize, compute the layer scores, fine-tune the reference, fine-tune the trial).

    bench/shared_work.py --trials 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import os

    import torch
    import transformers
    from prunetune.trainables import data as datasets
    from prunetune.trainables.job_file import load_trial_config
    from prunetune.trainables.jobs import run_job
    from prunetune.trainables.models import load_any, load_tokenizer, tokenizer_of
    from prunetune.trainables.prepared import prepare_classification
    from prunetune.trainables.scores import compute_layer_scores
    from prunetune.trainables.strategies import kept_layers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    base = load_trial_config(
        str(HERE / "grid-minilm-indicnews-en.yaml"),
        {"data.max_train_rows": args.train_rows, "data.max_eval_rows": 500, "training.epochs": 1},
    )
    counts = [1 + i % 4 for i in range(args.trials)]  # the trials drop 1, 2, 3, 4, 1, ... layers by contribution

    def scores_cold() -> object:
        with tempfile.TemporaryDirectory() as cache:  # no cache: the naive script has none
            os.environ["PRUNETUNE_CACHE_DIR"] = cache
            model = load_any(base.model)
            texts = datasets.sample_texts(base.data, base.scores_sample_rows)
            return compute_layer_scores(
                model, tokenizer_of(model, base.model), texts, model_name=base.model,
                max_length=base.training.max_length,
            )  # fmt: skip

    timings: dict[str, float] = {}

    def timed(name: str, fn: object) -> object:
        started = time.monotonic()
        value = fn()  # type: ignore[operator]
        timings[name] = timings.get(name, 0.0) + time.monotonic() - started
        return value

    # prunetune: the shared work once, then N fine-tunes.
    prepared = timed(
        "shared: read + tokenize", lambda: prepare_classification(base, load_tokenizer(base.model), base.model)
    )
    scores = timed("shared: layer scores", scores_cold)
    timed("shared: reference run", lambda: run_job(base, prepared=prepared))
    for count in counts:
        kept = kept_layers("contribution", 6, {"count": count}, scores)  # type: ignore[arg-type]
        timed(
            "trials: fine-tune",
            lambda k=kept: run_job(base.with_overrides({"kept_layers": list(k)}), prepared=prepared),
        )

    # naive: everything inside every trial.
    for count in counts:

        def naive_trial(c: int = count) -> None:
            own = prepare_classification(base, load_tokenizer(base.model), base.model)
            own_scores = scores_cold()
            run_job(base, prepared=own)  # its own reference, to know its drop
            kept = kept_layers("contribution", 6, {"count": c}, own_scores)  # type: ignore[arg-type]
            run_job(base.with_overrides({"kept_layers": list(kept)}), prepared=own)

        timed("naive: trials", naive_trial)

    shared = sum(v for k, v in timings.items() if k.startswith("shared"))
    prunetune = shared + timings["trials: fine-tune"]
    fine_tune = timings["trials: fine-tune"] / len(counts)
    print(f"{base.model} on {args.train_rows} rows of {base.data.source}, 1 epoch, {args.threads} threads")
    print("| step | seconds |")
    print("| --- | --- |")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| prunetune: 1 x preparation + {len(counts)} x fine-tune | {prunetune:.1f} |")
    print(f"| naive: {len(counts)} x (preparation + fine-tune) | {timings['naive: trials']:.1f} |")
    print(
        f"\nper trial: fine-tune {fine_tune:.1f} s; shared work {shared:.1f} s once "
        f"vs {timings['naive: trials'] / len(counts) - fine_tune:.1f} s per naive trial"
    )
    for n in (10, 100):
        naive = n * timings["naive: trials"] / len(counts)
        print(
            f"projected for {n} trials: prunetune {shared + n * fine_tune:.0f} s, naive {naive:.0f} s "
            f"({naive / (shared + n * fine_tune):.2f}x)"
        )


if __name__ == "__main__":
    main()
