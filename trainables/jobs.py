"""The prune + fine-tune jobs: plain functions of a :class:`TrialConfig` and a ``report(metrics)`` callback.

No Ray here: the search wraps these functions; the command line and tests call them directly.
Every job returns one result dict (final metrics, what was kept, what was trained) and calls
``report`` once per epoch with that epoch's metrics.
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prunetune.trainables import data as datasets
from prunetune.trainables.distill import (
    TRAIN_OUTPUTS,
    distill_loss,
    similarity_distill_loss,
    teacher_embeddings,
    teacher_logits,
)
from prunetune.trainables.models import (
    Baseline,
    load_classifier,
    load_sentence_model,
    load_tokenizer,
    loading,
    model_name_for,
    pick_device,
    prepare,
    resolve_model,
)
from prunetune.trainables.prepared import (
    PreparedData,
    padded_splits,
    preparation_key,
    prepare_classification,
)
from prunetune.trainables.scores import compute_layer_scores
from prunetune.trainables.strategies import check_kept, get_strategy, kept_layers
from prunetune.trainables.surgery import num_layers, parameter_count
from prunetune.trainables.training import Checkpointing, Metrics, Report, seed_everything, train

from prunetune.config import ConfigError, TrainingConfig, TrialConfig
from prunetune.libs import np, sentence_transformers, sk_metrics, st_losses, stats, torch, transformers

__all__ = ["ClassificationTask", "SentenceSimilarityTask", "TASKS", "Task", "latency_ms", "run_job"]


log = logging.getLogger(__name__)

LATENCY_ROWS = 32  # the batch a trial's inference latency is measured on


def _ignore(metrics: Metrics) -> None:
    pass


def decide_kept_layers(config: TrialConfig, model: Any, tokenizer: Any) -> tuple[int, ...]:
    """The kept layers: fixed in the config (decided by the search driver), or from its strategy here."""
    total = num_layers(model)
    if config.variant == "scratch" and config.scratch_model is not None:
        return tuple(range(total))  # a named small model is trained whole, at its own depth
    if config.kept_layers is not None:
        return check_kept(total, config.kept_layers)
    scores = None
    if get_strategy(config.drop.strategy).needs_scores:
        scores = compute_layer_scores(
            model,
            tokenizer,
            datasets.sample_texts(config.data, config.scores_sample_rows),
            model_name=config.model,
            max_length=config.training.max_length,
        )
    return kept_layers(config.drop.strategy, total, config.drop.params(), scores)


def _shape(config: TrialConfig, model: Any, tokenizer: Any, device: str) -> tuple[tuple[int, ...], int, Baseline]:
    """Make the loaded ``model`` the trial's variant on ``device``: kept layers, layers before, baseline kind."""
    original = num_layers(model)
    kept = decide_kept_layers(config, model, tokenizer)
    seed_everything(config.training.seed)  # the head's init must not depend on what scoring consumed
    baseline = prepare(model, config, kept)
    model.to(device)
    return kept, original, baseline


def _summary(config: TrialConfig, model: Any, kept: tuple[int, ...], original: int, baseline: Any) -> Metrics:
    return {
        "task": config.task,
        "model": config.model,
        "variant": config.variant,
        "baseline_kind": baseline.kind,
        "baseline_source": baseline.source,
        "strategy": config.drop.strategy if config.kept_layers is None else "explicit",
        "kept_layers": list(kept),
        "layers_kept": len(kept),
        "layers_dropped": original - len(kept),
        "layers_original": original,
        "parameters": parameter_count(model),
        "seed": config.training.seed,
    }


def latency_ms(model: Any, forward: Any, repeats: int = 5) -> float:
    """Median wall time of ``forward()`` (one batch of validation rows, no gradients), in milliseconds.
    Measured once per trial, on the device it trains on: the latency axis of a multi-objective search."""
    was_training = model.training
    model.eval()
    times = []
    with torch.inference_mode():
        forward()  # warm-up: first-call allocations are not the model's speed
        for _ in range(repeats):
            started = time.perf_counter()
            forward()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    model.train(was_training)
    return statistics.median(times) * 1000


def _with_model_facts(report: Report, model: Any, latency: float) -> Report:
    """Every epoch's metrics carry the model's parameter count and latency (a search records both per trial)."""
    facts = {"parameters": parameter_count(model), "latency_ms": latency}
    return lambda metrics: report(metrics | facts)


def _move(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


# ---------------------------------------------------------------- one job, any task


@dataclass
class Phase:
    """One training phase: the module whose parameters train, its schedule, its loss and its scores."""

    module: Any
    training: TrainingConfig
    rows: int
    loss_of_batch: Callable[[list[int]], Any]
    evaluate: Callable[[], Metrics]
    prefix: str = ""  # metric-name prefix; the last, unprefixed phase is the one checkpointed and summarised


class Task(Protocol):
    """What a task type gives the common job (:func:`run_job`): a model to prune, its phases, how it is saved.

    A new task type is one class with this shape, registered in :data:`TASKS`."""

    model: Any
    tokenizer: Any
    train_rows: int
    skipped_rows: int

    def latency_forward(self) -> Callable[[], Any]: ...  # one inference batch on the pruned model

    def phases(self, checkpointing: Checkpointing | None) -> list[Phase]: ...  # built after pruning

    def save(self, output_dir: str) -> None: ...

    def outputs_on_train(self) -> Any: ...  # what the trained model teaches: its outputs on the training rows


class ClassificationTask:
    """Fine-tune a (pruned) encoder for text classification: accuracy and macro-F1 per epoch.

    ``prepared``: the data read and tokenized once for a whole search; used when it was prepared
    from this config's data, tokenizer and length, else the job prepares its own. ``teacher``: the teacher's
    logits on the training rows (a search computes them once); a distilled job without them computes them
    from ``distill.teacher``.
    """

    def __init__(self, config: TrialConfig, device: str, prepared: PreparedData | None, teacher: Any = None) -> None:
        name = model_name_for(config)
        self.config, self.device = config, device
        self.tokenizer = load_tokenizer(name)
        if prepared is None or prepared.key != preparation_key(config, name):
            prepared = prepare_classification(config, self.tokenizer, name)
            if prepared.task.report.total:  # data a search prepared was reported once, by its driver
                log.warning("%s: %s", config.data.source, prepared.task.report.summary())
        self.data, self.features = prepared.task, padded_splits(prepared, self.tokenizer, device)
        assert self.data.label_names is not None
        self.model = load_classifier(name, self.data.label_names)
        self.train_rows, self.skipped_rows = len(self.data.train), self.data.report.total
        self.teacher: Any = None  # the teacher's logits on the training rows, on the device
        if teacher is not None:
            self.teacher = _teacher_on(device, teacher, self.train_rows, "logits")
        elif config.distill.on:
            self.teacher = self._teacher_outputs()

    def outputs_on_train(self) -> Any:
        """This model's logits on the training rows, in row order (a CPU float32 tensor): what it teaches."""
        return teacher_logits(
            self.model, lambda rows: self._batch("train", rows), self.train_rows, self.config.training.eval_batch_size
        )

    def _teacher_outputs(self) -> Any:
        """The teacher's logits on the training rows, computed here once (a search computes them once for all
        its trials and passes them in): the teacher is loaded, run over the rows, and let go."""
        folder = self.config.distill.teacher
        if folder is None:
            raise ConfigError("distill.alpha > 0 needs distill.teacher: a fine-tuned model's folder")
        with loading(folder):
            teacher = transformers.AutoModelForSequenceClassification.from_pretrained(resolve_model(folder))
        labels = tuple(teacher.config.id2label[i] for i in range(teacher.config.num_labels))
        if labels != self.data.label_names:
            raise ConfigError(
                f"distill.teacher {folder} predicts labels {list(labels)}, the data has "
                f"{list(self.data.label_names or ())}: "
                "give a teacher fine-tuned on this task"
            )
        teacher.to(self.device)
        return teacher_logits(
            teacher, lambda rows: self._batch("train", rows), self.train_rows, self.config.training.eval_batch_size
        ).to(self.device)

    def _batch(self, split: str, indices: list[int]) -> dict[str, Any]:
        return self.features[split].batch(indices)

    def latency_forward(self) -> Callable[[], Any]:
        sample = self._batch("validation", list(range(min(LATENCY_ROWS, len(self.data.validation)))))
        return lambda: self.model(**sample)

    def _scores(self, split_name: str) -> Metrics:
        split = self.data.validation if split_name == "validation" else self.data.test
        assert split is not None
        batch_size, predictions = self.config.training.eval_batch_size, []
        for first in range(0, len(split), batch_size):
            indices = list(range(first, min(first + batch_size, len(split))))
            logits = self.model(**self._batch(split_name, indices)).logits
            predictions.extend(torch.argmax(logits, dim=-1).tolist())
        gold = list(split.targets)
        return {
            "accuracy": sk_metrics.accuracy_score(gold, predictions),
            "macro_f1": sk_metrics.f1_score(gold, predictions, average="macro"),
        }

    def phases(self, checkpointing: Checkpointing | None) -> list[Phase]:
        distill = self.config.distill

        def loss_of_batch(indices: list[int]) -> Any:
            labels = torch.tensor([self.data.train.targets[i] for i in indices], device=self.device)
            if not distill.on:
                return self.model(**self._batch("train", indices), labels=labels).loss
            logits = self.model(**self._batch("train", indices)).logits
            taught = self.teacher[torch.tensor(indices, device=self.teacher.device)]
            return distill_loss(logits, labels, taught, distill.alpha, distill.temperature)

        def evaluate() -> Metrics:
            scores: Metrics = {}
            for split_name, prefix in (("validation", "val"), ("test", "test")):
                if split_name in self.features:
                    scores |= {f"{prefix}_{k}": v for k, v in self._scores(split_name).items()}
            scores["val_score"] = scores["val_accuracy"]
            if "test_accuracy" in scores:
                scores["test_score"] = scores["test_accuracy"]
            return scores

        return [Phase(self.model, self.config.training, self.train_rows, loss_of_batch, evaluate)]

    def save(self, output_dir: str) -> None:
        self.model.save_pretrained(output_dir)
        self.tokenizer.save_pretrained(output_dir)


class SentenceSimilarityTask:
    """Two-phase sentence-embedding training: optional NLI (SoftmaxLoss), then STS; Spearman per epoch.

    A search's ``prepared`` data is not used: sentence-transformers tokenizes its pairs itself, and a
    search prepares data for classification tasks only.
    """

    def __init__(self, config: TrialConfig, device: str, prepared: PreparedData | None, teacher: Any = None) -> None:
        self.config, self.device = config, device
        self.sts = datasets.load_scored_pairs(config.data)
        self.nli = None
        if config.sentence.nli_data is not None:
            self.nli = datasets.load_labelled(config.sentence.nli_data, pairs=True)
        self.model = load_sentence_model(model_name_for(config), device=device)
        self.model.max_seq_length = config.training.max_length
        self.tokenizer = self.model.tokenizer
        self.train_rows = len(self.sts.train)
        self.skipped_rows = self.sts.report.total + (self.nli.report.total if self.nli is not None else 0)
        # The teacher's embeddings of the STS training sentences (:meth:`_train_sentences`), on the device.
        self.teacher: Any = None
        if teacher is not None:
            self.teacher = _teacher_on(device, teacher, 2 * self.train_rows, "embeddings")
        elif config.distill.on:
            self.teacher = self._teacher_outputs()

    def _train_sentences(self) -> list[str]:
        """Every STS training sentence, in the order a teacher's embeddings are kept: each pair's first
        sentences, then their second ones (so row i's pair is at i and train_rows + i)."""
        assert self.sts.train.pairs is not None
        return list(self.sts.train.texts) + list(self.sts.train.pairs)

    def outputs_on_train(self) -> Any:
        """This model's embeddings of the STS training sentences (a CPU float32 tensor): what it teaches."""
        return teacher_embeddings(self.model, self._train_sentences(), self.config.training.eval_batch_size)

    def _teacher_outputs(self) -> Any:
        """The teacher's embeddings of the training sentences, computed here once (a search computes them once
        for all its trials and passes them in)."""
        folder = self.config.distill.teacher
        if folder is None:
            raise ConfigError("distill.alpha > 0 needs distill.teacher: a fine-tuned sentence model's folder")
        with loading(folder):
            teacher = sentence_transformers.SentenceTransformer(resolve_model(folder), device=self.device)
        taught, learning = _embedding_dimension(teacher), _embedding_dimension(self.model)
        if taught != learning:  # refused before the teacher embeds anything
            raise ConfigError(
                f"distill.teacher {folder} embeds in {taught} dimensions, the student in {learning}: "
                "give a teacher of the student's own family (its unpruned model, fine-tuned)"
            )
        found = teacher_embeddings(teacher, self._train_sentences(), self.config.training.eval_batch_size)
        return found.to(self.device)

    def _features(self, texts: list[str]) -> dict[str, Any]:
        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize
        return _move(tokenize(texts), self.device)

    def latency_forward(self) -> Callable[[], Any]:
        sample = self._features(list(self.sts.validation.texts[:LATENCY_ROWS]))
        return lambda: self.model(dict(sample))

    def _spearman(self, split: datasets.TextSplit) -> float:
        assert split.pairs is not None
        encode = functools.partial(
            self.model.encode,
            batch_size=self.config.training.eval_batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        cosine = np.sum(encode(list(split.texts)) * encode(list(split.pairs)), axis=1)
        return float(stats.spearmanr(cosine, np.asarray(split.targets)).statistic)

    def _pair_loss(self, loss: Any, split: datasets.TextSplit, target: Callable[[Any], Any]) -> Callable[..., Any]:
        assert split.pairs is not None
        pairs = split.pairs

        def loss_of_batch(indices: list[int]) -> Any:
            a = self._features([split.texts[i] for i in indices])
            b = self._features([pairs[i] for i in indices])
            return loss([a, b], torch.tensor([target(split.targets[i]) for i in indices], device=self.device))

        return loss_of_batch

    def _distilled_sts_loss(self, loss: Any) -> Callable[..., Any]:
        """The STS phase's loss with the teacher's cosine of each pair as a soft label (one forward pass per
        sentence: the STS loss is computed from the same embeddings)."""
        split, alpha = self.sts.train, self.config.distill.alpha
        assert split.pairs is not None
        pairs = split.pairs

        def loss_of_batch(indices: list[int]) -> Any:
            a = self.model(self._features([split.texts[i] for i in indices]))["sentence_embedding"]
            b = self.model(self._features([pairs[i] for i in indices]))["sentence_embedding"]
            labels = torch.tensor([float(split.targets[i]) for i in indices], device=self.device)
            hard = loss.compute_loss_from_embeddings([a, b], labels)
            rows = torch.tensor(indices, device=self.device)
            taught = (self.teacher[rows], self.teacher[rows + self.train_rows])
            return similarity_distill_loss(hard, (a, b), taught, alpha)

        return loss_of_batch

    def phases(self, checkpointing: Checkpointing | None) -> list[Phase]:
        sts, phases = self.sts, []

        def evaluate() -> Metrics:
            scores = {"val_spearman": self._spearman(sts.validation)}
            if sts.test is not None:
                scores["test_spearman"] = scores["test_score"] = self._spearman(sts.test)
            return scores | {"val_score": scores["val_spearman"]}

        # resuming the STS phase: the NLI phase is already in the saved weights
        resuming = checkpointing is not None and checkpointing.saved_state() is not None
        if self.nli is not None and not resuming:
            assert self.nli.label_names is not None
            dimension = _embedding_dimension(self.model)
            nli_loss = st_losses.SoftmaxLoss(self.model, dimension, len(self.nli.label_names)).to(self.device)
            phases.append(
                Phase(
                    nli_loss,
                    self.config.sentence.nli_training,
                    len(self.nli.train),
                    self._pair_loss(nli_loss, self.nli.train, int),
                    lambda: {"val_spearman": self._spearman(sts.validation)},
                    prefix="nli_",
                )
            )
        loss_type = (
            st_losses.CoSENTLoss if self.config.sentence.sts_loss == "cosent" else st_losses.CosineSimilarityLoss
        )
        sts_loss = loss_type(self.model).to(self.device)
        sts_batches = (
            self._distilled_sts_loss(sts_loss)
            if self.config.distill.on
            else self._pair_loss(sts_loss, sts.train, float)
        )
        phases.append(Phase(sts_loss, self.config.training, len(sts.train), sts_batches, evaluate))
        return phases

    def save(self, output_dir: str) -> None:
        self.model.save(output_dir)


def _embedding_dimension(model: Any) -> int:
    """A sentence model's embedding size (sentence-transformers 5 renamed get_sentence_embedding_dimension)."""
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(dimension())


def _teacher_on(device: str, outputs: Any, rows: int, what: str) -> Any:
    """A teacher's outputs (one per training row) on the device, refused when they cover other rows: they
    would teach the wrong answers."""
    if len(outputs) != rows:
        raise ConfigError(f"the teacher's {what} cover {len(outputs)} rows, the training data {rows}")
    return torch.as_tensor(outputs, device=device)


TASKS: dict[str, Callable[..., Task]] = {
    "classification": ClassificationTask,
    "sentence-similarity": SentenceSimilarityTask,
}


def run_job(
    config: TrialConfig,
    report: Report = _ignore,
    output_dir: str | None = None,
    checkpointing: Checkpointing | None = None,
    prepared: PreparedData | None = None,
    teacher: Any = None,
    train_outputs: bool = False,
) -> Metrics:
    """Load, prune, time and train the task of ``config.task``, phase by phase; ``prepared`` is data a
    search read and tokenized once; ``teacher``: the teacher's outputs on the training rows, computed once
    by a search (else a distilled job computes them from ``distill.teacher``). ``train_outputs``: the trained
    model's outputs on the training rows come back too (:data:`TRAIN_OUTPUTS`): a search's teacher."""
    started = time.monotonic()
    seed_everything(config.training.seed)
    device = pick_device(config.training.device)
    task = TASKS[config.task](config, device, prepared, teacher)
    kept, original, baseline = _shape(config, task.model, task.tokenizer, device)
    latency = latency_ms(task.model, task.latency_forward())
    report = _with_model_facts(report, task.model, latency)
    history: list[Metrics] = []
    for phase in task.phases(checkpointing):
        saved = checkpointing if not phase.prefix else None  # only the final phase resumes from a checkpoint
        history += train(
            phase.module, phase.training, phase.rows, phase.loss_of_batch, phase.evaluate, report, phase.prefix, saved
        )
    result = _summary(config, task.model, kept, original, baseline) | history[-1]
    result |= {
        "latency_ms": latency,
        "train_rows": task.train_rows,
        "data_skipped_rows": task.skipped_rows,
        "seconds": time.monotonic() - started,
        "device": device,  # where it trained: cuda or cpu (``device: auto`` picks)
    }
    if train_outputs:
        result[TRAIN_OUTPUTS] = task.outputs_on_train().numpy()
    if output_dir is not None:
        task.save(output_dir)
        _write_result(output_dir, result, history, config)
    return result | {"history": history}


def _write_result(output_dir: str, result: Metrics, history: list[Metrics], config: TrialConfig) -> None:
    path = Path(output_dir) / "prunetune-result.json"
    path.write_text(json.dumps({"config": config.to_dict(), "result": result, "history": history}, indent=2))
