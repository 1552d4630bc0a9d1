"""Benchmark 7: does distillation from the fine-tuned full model help a pruned MiniLM? Paired, over seeds.

The demo's setting (``examples/search-default.yaml``: IndicNews English, 2,000 training headlines, 1,000
for validation, 2 epochs). The teacher is the full model at the reference's best learning rate (2e-4 in
the measured table), trained once; its logits on the training rows are computed once, as a search would.
At the depths the 1-point budget decides (4 and 5 of 6 layers dropped), each depth's best kept set and
learning rate from the measured table (``[0, 5]`` at 4e-4, ``[5]`` at 8e-4) is trained on the same seeds
plain and distilled; the paired difference (distilled - plain) gets a 95 % Student-t interval.

    bench/distill.py --seeds 43 44 45 --settings 0.5:2 0.9:4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUDENTS = {4: ([0, 5], 4e-4), 5: ([5], 8e-4)}  # layers dropped -> (kept, learning rate), the table's best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[43, 44, 45])
    parser.add_argument("--settings", nargs="+", default=["0.5:2"], help="alpha:temperature pairs to try")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--teacher-lr", type=float, default=2e-4, help="the full model's rate (a search tunes it)")
    args = parser.parse_args()

    import torch
    from prunetune.search.decide import interval
    from prunetune.search.spec import load_spec
    from prunetune.trainables.jobs import ClassificationTask, run_job
    from prunetune.trainables.models import load_tokenizer, pick_device
    from prunetune.trainables.prepared import prepare_classification

    torch.set_num_threads(args.threads)
    base = load_spec(str(HERE.parent / "examples" / "search-default.yaml")).trial
    data = prepare_classification(base, load_tokenizer(base.model), base.model)
    with tempfile.TemporaryDirectory() as teacher_dir:
        began = time.monotonic()
        teacher = run_job(
            base.with_overrides({"training.learning_rate": args.teacher_lr}), output_dir=teacher_dir, prepared=data
        )
        trained = time.monotonic() - began
        began = time.monotonic()
        distilled = base.with_overrides({"distill.alpha": 0.5, "distill.teacher": teacher_dir})
        logits = ClassificationTask(distilled, pick_device("auto"), data).teacher  # what a search does once
        once = time.monotonic() - began
        print(
            f"teacher: full model, val_score {teacher['val_score']:.4f}, trained in {trained:.0f} s; "
            f"its logits on {len(logits)} training rows in {once:.1f} s (with a model load)"
        )

        settings = [(0.0, 1.0)] + [tuple(float(x) for x in s.split(":")) for s in args.settings]
        scores: dict[tuple[int, float, float], dict[int, float]] = {}
        seconds: dict[tuple[float, float], list[float]] = {s: [] for s in settings}
        for dropped, (kept, learning_rate) in STUDENTS.items():
            for alpha, temperature in settings:
                for seed in args.seeds:
                    config = base.with_overrides({
                        "kept_layers": kept,
                        "training.learning_rate": learning_rate,
                        "training.seed": seed,
                        "distill.alpha": alpha,
                        "distill.temperature": temperature,
                        "distill.teacher": teacher_dir if alpha else None,
                    })  # fmt: skip
                    began = time.monotonic()
                    result = run_job(config, prepared=data, teacher=logits if alpha else None)
                    seconds[(alpha, temperature)].append(time.monotonic() - began)
                    scores.setdefault((dropped, alpha, temperature), {})[seed] = float(result["val_score"])
                    print(
                        f"  dropped {dropped} kept {kept} alpha {alpha:g} T {temperature:g} seed {seed}: "
                        f"{result['val_score']:.4f}",
                        flush=True,
                    )

    print(
        f"\n| layers dropped | distillation | mean val_score ({len(args.seeds)} seeds) | "
        "paired difference vs plain, 95 % interval | mean seconds per job |"
    )
    print("| --- | --- | --- | --- | --- |")
    for dropped in STUDENTS:
        plain = scores[(dropped, 0.0, 1.0)]
        for alpha, temperature in settings:
            mine = scores[(dropped, alpha, temperature)]
            mean = sum(mine.values()) / len(mine)
            name = "none" if alpha == 0 else f"alpha {alpha:g}, T {temperature:g}"
            cost = sum(seconds[(alpha, temperature)]) / len(seconds[(alpha, temperature)])
            if alpha == 0:
                print(f"| {dropped} | {name} | {100 * mean:.2f} | | {cost:.1f} |")
                continue
            spread = interval([100 * (mine[s] - plain[s]) for s in args.seeds])
            print(
                f"| {dropped} | {name} | {100 * mean:.2f} | {spread.mean:+.2f} [{spread.low:+.2f}, "
                f"{spread.high:+.2f}] | {cost:.1f} |"
            )


if __name__ == "__main__":
    main()
