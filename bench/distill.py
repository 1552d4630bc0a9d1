"""Benchmark 7: does distillation from the fine-tuned full model help a pruned MiniLM? Paired, over seeds.

The demo's setting by default (``examples/search-default.yaml``: IndicNews English, 2,000 training
headlines, 1,000 for validation, 2 epochs); ``--train-rows 4000`` is the measured table's (the replay's).
The reference is the full model at ``--teacher-lr`` (a search tunes it: 4e-4 at 2,000 rows, benchmark 3),
trained on every seed; the teacher is the reference on the first seed, as a search's is on its own seed,
and its logits on the training rows are computed once, as a search does. At the depths a 1-3-point budget
decides (3, 4 and 5 of 6 layers dropped), each depth's best kept set and learning rate from the measured
table is trained on the same seeds plain and distilled; the paired difference (distilled - plain) gets a 95 %
Student-t interval. Then max-drop's own decision rule (``answer_tolerance``) answers each tolerance from these
finalists, paired with the reference seed by seed: once from the plain ones, once from the distilled.

A setting is ``alpha:T`` (the logits), or ``alpha:T:beta`` to add hidden-state distillation, measured here
before it is built into prunetune: each kept layer's output is pulled (MSE over the real tokens, weight beta)
towards the teacher's layer at the top of the block it stands for (TinyBERT's layer mapping; the teacher runs
alongside the student on each batch, a cost this benchmark reports).

``--task sentence`` measures sentence-embedding distillation the same way: all-MiniLM-L6-v2 on the English STS
Benchmark (``examples/search-sbert.yaml``'s training, without its NLI phase: the pull acts on the STS phase
alone), Spearman on the dev split, the teacher's embeddings of the training sentences computed once, top
blocks dropped (the SBERT study's best strategy) at 4x the reference's rate. A setting is ``alpha`` there:
no temperature.

    python bench/distill.py --seeds 43 44 45 --settings 0.5:2 0.5:2:1
    python bench/distill.py --task sentence --settings 0.5 --sentence-target embedding
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# layers dropped -> (kept, learning rate): each depth's best in the measured table (seed means)
STUDENTS = {3: ([0, 4, 5], 4e-4), 4: ([0, 5], 4e-4), 5: ([5], 8e-4)}
# Sentence embeddings: the top blocks dropped, at 4x the reference's rate (pruned models want 2-4x)
SENTENCE_STUDENTS = {3: ([0, 1, 2], 8e-5), 4: ([0, 1], 8e-5), 5: ([0], 8e-5)}
TOLERANCES = (0.01, 0.02, 0.03)


def hidden_targets(kept: list[int], num_layers: int) -> list[int]:
    """The teacher layer each kept layer's output is matched to: the top of the block it stands for (the
    layer just below the next kept one; the last kept layer stands for the rest of the stack)."""
    return [following - 1 for following in kept[1:]] + [num_layers - 1]


def with_hidden_states(task_class: Any, teacher: Any, beta: float) -> Any:
    """A ClassificationTask whose loss adds the hidden-state pull to its own (plain or distilled) loss."""
    import torch

    class HiddenStateTask(task_class):  # type: ignore[misc,valid-type]
        def phases(self, checkpointing: Any) -> Any:
            (phase,) = super().phases(checkpointing)
            targets = hidden_targets(list(self.config.kept_layers), teacher.config.num_hidden_layers)
            own = phase.loss_of_batch
            captured: dict[str, Any] = {}
            # The student's hidden states, from the forward pass its own loss makes (this task is the model's
            # only user, so the hook stays for the model's life).
            self.model.register_forward_hook(
                lambda module, args, kwargs, out: captured.update(hidden=out.hidden_states), with_kwargs=True
            )
            self.model.config.output_hidden_states = True

            def loss_of_batch(indices: list[int]) -> Any:
                loss = own(indices)  # the student's forward pass; its hidden states are captured
                batch = self._batch("train", indices)
                with torch.no_grad():
                    taught = teacher(**batch, output_hidden_states=True).hidden_states
                mask = batch["attention_mask"].unsqueeze(-1).to(loss.dtype)
                tokens = mask.sum() * mask.new_tensor(captured["hidden"][0].shape[-1])
                for j, target in enumerate(targets):
                    gap = (captured["hidden"][j + 1] - taught[target + 1]) * mask
                    loss = loss + beta * gap.pow(2).sum() / tokens
                return loss

            phase.loss_of_batch = loss_of_batch
            return [phase]

    return HiddenStateTask


def embedding_pull_loss(hard: Any, student: tuple[Any, Any], teacher: tuple[Any, Any], alpha: float) -> Any:
    """The alternative measured for sentence embeddings (prunetune's first design, as in sentence-transformers'
    distillation examples): each sentence's embedding pulled towards the teacher's,
    ``(1 - alpha) * STS loss + alpha * |s - t|**2`` summed over the dimensions, averaged over the sentences.
    ``student`` and ``teacher``: the batch's first sentences' embeddings and its second ones'."""
    import torch

    if alpha == 0:
        return hard
    pull = (torch.cat(student) - torch.cat(teacher)).pow(2).sum(dim=-1).mean()
    return (1 - alpha) * hard + alpha * pull


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[43, 44, 45])
    parser.add_argument("--settings", nargs="+", default=["0.5:2"], help="alpha:T or alpha:T:beta to try")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--task", choices=["classification", "sentence"], default="classification")
    parser.add_argument("--teacher-lr", type=float, help="the full model's rate (default 4e-4, sentence 2e-5)")
    parser.add_argument("--train-rows", type=int, help="training rows (default: the demo's 2,000)")
    parser.add_argument("--eval-rows", type=int, help="validation rows (default: the demo's 1,000)")
    parser.add_argument("--depths", type=int, nargs="+", default=sorted(STUDENTS))
    parser.add_argument(
        "--sentence-target",
        choices=["similarity", "embedding"],
        default="similarity",
        help="--task sentence: pull each pair's cosine to the teacher's (prunetune's), or each embedding",
    )
    args = parser.parse_args()
    sentence = args.task == "sentence"
    students = SENTENCE_STUDENTS if sentence else STUDENTS
    args.teacher_lr = args.teacher_lr or (2e-5 if sentence else 4e-4)
    if sentence and any(len(setting.split(":")) > 2 for setting in args.settings):
        parser.error("--task sentence: hidden-state distillation (alpha:T:beta) is measured for classification only")

    import torch
    from prunetune.search.decide import Candidate, answer_tolerance, interval, paired_drops
    from prunetune.search.spec import load_spec
    from prunetune.trainables import jobs
    from prunetune.trainables.models import load_tokenizer, pick_device
    from prunetune.trainables.prepared import prepare_classification
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(args.threads)
    if args.sentence_target == "embedding":
        jobs.similarity_distill_loss = embedding_pull_loss  # what the STS phase's distilled batches call
    overrides = {"trial.data.max_train_rows": args.train_rows, "trial.data.max_eval_rows": args.eval_rows}
    overrides = {k: v for k, v in overrides.items() if v}
    if sentence:
        overrides = {
            "trial.data.source": "stsb:en", "trial.data.test_split": None, "trial.sentence.nli_data": None,
            "trial.data.max_train_rows": 2000,
        } | overrides  # fmt: skip
    spec_file = "search-sbert.yaml" if sentence else "search-default.yaml"
    base = load_spec(str(HERE.parent / "examples" / spec_file), overrides).trial
    data = None if sentence else prepare_classification(base, load_tokenizer(base.model), base.model)
    reference: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as teacher_dir:
        began = time.monotonic()
        for n, seed in enumerate(args.seeds):
            full = base.with_overrides({"training.learning_rate": args.teacher_lr, "training.seed": seed})
            result = jobs.run_job(full, output_dir=teacher_dir if n == 0 else None, prepared=data)
            reference[seed] = float(result["val_score"])
            print(f"  reference (full model, lr {args.teacher_lr:g}) seed {seed}: {reference[seed]:.4f}", flush=True)
        trained = (time.monotonic() - began) / len(args.seeds)
        began = time.monotonic()
        distilled = base.with_overrides({"distill.alpha": 0.5, "distill.teacher": teacher_dir})
        logits = jobs.TASKS[base.task](distilled, pick_device("auto"), data).teacher  # what a search does once
        once = time.monotonic() - began
        teacher_model = None if sentence else AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
        print(
            f"teacher: the reference on seed {args.seeds[0]}, val_score {reference[args.seeds[0]]:.4f}; "
            f"{trained:.0f} s per reference job; its outputs on the training rows ({tuple(logits.shape)}) in "
            f"{once:.1f} s (with a model load)"
        )

        given = [[float(x) for x in setting.split(":")] for setting in args.settings]  # alpha[:T[:beta]]
        settings = [(0.0, 1.0, 0.0)] + [tuple(parts + [1.0, 0.0][len(parts) - 1 :]) for parts in given]
        scores: dict[tuple[int, tuple[float, ...]], dict[int, float]] = {}
        seconds: dict[tuple[float, ...], list[float]] = {s: [] for s in settings}
        plain_task = jobs.TASKS["classification"]
        for dropped in args.depths:
            kept, learning_rate = students[dropped]
            for setting in settings:
                alpha, temperature, beta = setting
                jobs.TASKS["classification"] = (
                    with_hidden_states(plain_task, teacher_model, beta) if beta else plain_task
                )
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
                    result = jobs.run_job(config, prepared=data, teacher=logits if alpha else None)
                    seconds[setting].append(time.monotonic() - began)
                    scores.setdefault((dropped, setting), {})[seed] = float(result["val_score"])
                    print(
                        f"  dropped {dropped} kept {kept} {_name(setting)} seed {seed}: {result['val_score']:.4f}",
                        flush=True,
                    )
        jobs.TASKS["classification"] = plain_task

    rows = base.data.max_train_rows if data is None else len(data.task.train)
    target = f"; distillation pulls each {args.sentence_target}" if sentence else ""
    print(f"\n{rows} training rows; reference mean {100 * sum(reference.values()) / len(reference):.2f}{target}")
    print(
        f"\n| layers dropped | distillation | mean val_score ({len(args.seeds)} seeds) | "
        "paired difference vs plain, 95 % interval | mean seconds per job |"
    )
    print("| --- | --- | --- | --- | --- |")
    for dropped in args.depths:
        plain = scores[(dropped, settings[0])]
        for setting in settings:
            mine = scores[(dropped, setting)]
            mean = sum(mine.values()) / len(mine)
            cost = sum(seconds[setting]) / len(seconds[setting])
            if setting == settings[0]:
                print(f"| {dropped} | {_name(setting)} | {100 * mean:.2f} | | {cost:.1f} |")
                continue
            spread = interval([100 * (mine[s] - plain[s]) for s in args.seeds])
            print(
                f"| {dropped} | {_name(setting)} | {100 * mean:.2f} | {spread.mean:+.2f} [{spread.low:+.2f}, "
                f"{spread.high:+.2f}] | {cost:.1f} |"
            )

    print("\nmax-drop's decision on these finalists (paired with the reference on the same seeds):")
    print("| distillation | " + " | ".join(f"within {100 * t:g} point(s)" for t in TOLERANCES) + " |")
    print("| --- |" + " --- |" * len(TOLERANCES))
    for setting in settings:
        candidates = [
            Candidate(
                tuple(students[d][0]), d, "table", students[d][1], base.training.epochs,
                sum(scores[(d, setting)].values()) / len(args.seeds), setting[:2],
            )
            for d in args.depths
        ]  # fmt: skip

        def measure(candidate: Candidate, setting: tuple[float, ...] = setting) -> Any:
            mine = scores[(candidate.layers_dropped, setting)]
            return mine, paired_drops(reference, mine)

        cells = []
        for tolerance in TOLERANCES:
            answer = answer_tolerance(tolerance, candidates, measure, max_finalists=len(candidates))
            found = answer.mean_within
            cells.append(
                "none"
                if found is None
                else f"{found.candidate.layers_dropped} ({found.verdict}, drop {100 * found.drops_interval.mean:+.2f})"
            )
        print(f"| {_name(setting)} | " + " | ".join(cells) + " |")


def _name(setting: tuple[float, ...]) -> str:
    alpha, temperature, beta = setting
    logits = "none" if alpha == 0 else f"alpha {alpha:g}, T {temperature:g}"
    return logits if not beta else f"{logits} + hidden states (beta {beta:g})"


if __name__ == "__main__":
    main()
