"""The prune + fine-tune jobs: plain functions of a :class:`TrialConfig` and a ``report(metrics)`` callback.

No Ray here: the search wraps these functions; the command line and tests call them directly.
Every job returns one result dict (final metrics, what was kept, what was trained) and calls
``report`` once per epoch with that epoch's metrics.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from prunetune.trainables import data as datasets
from prunetune.trainables.config import TrialConfig
from prunetune.trainables.models import (
    Baseline,
    load_classifier,
    load_sentence_model,
    load_tokenizer,
    model_name_for,
    pick_device,
    prepare,
)
from prunetune.trainables.prepared import (
    Features,
    PreparedData,
    pad_batch,
    preparation_key,
    prepare_classification,
)
from prunetune.trainables.scores import compute_layer_scores
from prunetune.trainables.strategies import check_kept, get_strategy, kept_layers
from prunetune.trainables.surgery import num_layers, parameter_count
from prunetune.trainables.training import Checkpointing, Metrics, Report, seed_everything, train

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
    import statistics

    import torch

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


# ---------------------------------------------------------------- classification


def _classification_scores(
    model: Any, split: Any, rows: Features, tokenizer: Any, device: str, batch_size: int
) -> Metrics:
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    predictions: list[int] = []
    for first in range(0, len(split), batch_size):
        indices = list(range(first, min(first + batch_size, len(split))))
        logits = model(**_move(pad_batch(tokenizer, rows, indices), device)).logits
        predictions.extend(torch.argmax(logits, dim=-1).tolist())
    gold = list(split.targets)
    return {"accuracy": accuracy_score(gold, predictions), "macro_f1": f1_score(gold, predictions, average="macro")}


def run_classification(
    config: TrialConfig,
    report: Report = _ignore,
    output_dir: str | None = None,
    checkpointing: Checkpointing | None = None,
    prepared: PreparedData | None = None,
) -> Metrics:
    """Fine-tune a (pruned) encoder for text classification: accuracy and macro-F1 per epoch.

    ``prepared``: the data read and tokenized once for a whole search; used when it was prepared
    from this config's data, tokenizer and length, else the job prepares its own.
    """
    started = time.monotonic()
    seed_everything(config.training.seed)
    device = pick_device(config.training.device)
    name = model_name_for(config)
    tokenizer = load_tokenizer(name)
    if prepared is None or prepared.key != preparation_key(config, name):
        prepared = prepare_classification(config, tokenizer, name)
    task_data, features = prepared.task, prepared.features
    if task_data.report.total:
        log.warning("%s: %s", config.data.source, task_data.report.summary())
    assert task_data.label_names is not None
    model = load_classifier(name, task_data.label_names)
    kept, original, baseline = _shape(config, model, tokenizer, device)
    sample = _move(
        pad_batch(tokenizer, features["validation"], list(range(min(LATENCY_ROWS, len(task_data.validation))))), device
    )
    latency = latency_ms(model, lambda: model(**sample))
    report = _with_model_facts(report, model, latency)

    def loss_of_batch(indices: list[int]) -> Any:
        import torch

        batch = _move(pad_batch(tokenizer, features["train"], indices), device)
        labels = torch.tensor([task_data.train.targets[i] for i in indices], device=device)
        return model(**batch, labels=labels).loss

    def evaluate() -> Metrics:
        bs = config.training.eval_batch_size
        scores: Metrics = {}
        for split_name, prefix in (("validation", "val"), ("test", "test")):
            if split_name in features:
                split = task_data.validation if split_name == "validation" else task_data.test
                assert split is not None
                found = _classification_scores(model, split, features[split_name], tokenizer, device, bs)
                scores |= {f"{prefix}_{k}": v for k, v in found.items()}
        scores["val_score"] = scores["val_accuracy"]
        if "test_accuracy" in scores:
            scores["test_score"] = scores["test_accuracy"]
        return scores

    history = train(
        model, config.training, len(task_data.train), loss_of_batch, evaluate, report, checkpointing=checkpointing
    )
    result = _summary(config, model, kept, original, baseline) | history[-1]
    result |= {
        "latency_ms": latency,
        "train_rows": len(task_data.train),
        "data_skipped_rows": task_data.report.total,
        "seconds": time.monotonic() - started,
    }
    if output_dir is not None:
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
        _write_result(output_dir, result, history, config)
    return result | {"history": history}


# ---------------------------------------------------------------- sentence embeddings


def _features(st: Any, texts: list[str], device: str) -> dict[str, Any]:
    tokenize = getattr(st, "preprocess", None) or st.tokenize
    return _move(tokenize(texts), device)


def _spearman(st: Any, split: datasets.TextSplit, batch_size: int) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    assert split.pairs is not None
    first = st.encode(list(split.texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    second = st.encode(list(split.pairs), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    cosine = np.sum(first * second, axis=1)
    return float(spearmanr(cosine, np.asarray(split.targets)).statistic)


def run_sentence_similarity(
    config: TrialConfig,
    report: Report = _ignore,
    output_dir: str | None = None,
    checkpointing: Checkpointing | None = None,
    prepared: PreparedData | None = None,
) -> Metrics:
    """Two-phase sentence-embedding training: optional NLI (SoftmaxLoss), then STS; Spearman per epoch.

    ``prepared`` is accepted for a uniform job signature and not used: sentence-transformers tokenizes
    its pairs itself, and a search prepares data for classification tasks only.
    """
    import torch
    from sentence_transformers import losses  # type: ignore[attr-defined]  # a submodule, lazily exported

    started = time.monotonic()
    seed_everything(config.training.seed)
    sts = datasets.load_scored_pairs(config.data)
    nli = None
    if config.sentence.nli_data is not None:
        nli = datasets.load_labelled(config.sentence.nli_data, pairs=True)
    device = pick_device(config.training.device)
    st = load_sentence_model(model_name_for(config), device=device)
    st.max_seq_length = config.training.max_length
    kept, original, baseline = _shape(config, st, st.tokenizer, device)
    sample = _features(st, list(sts.validation.texts[:LATENCY_ROWS]), device)
    latency = latency_ms(st, lambda: st(dict(sample)))
    report = _with_model_facts(report, st, latency)
    history: list[Metrics] = []
    skipped = sts.report.total

    if nli is not None and checkpointing is not None and checkpointing.saved_state() is not None:
        nli = None  # resuming the STS phase: the NLI phase is already in the saved weights
    if nli is not None:
        assert nli.label_names is not None and nli.train.pairs is not None
        # sentence-transformers 5 renamed get_sentence_embedding_dimension
        dimension = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        nli_loss = losses.SoftmaxLoss(st, dimension(), len(nli.label_names)).to(device)
        nli_train = nli.train

        def nli_batch(indices: list[int]) -> Any:
            a = _features(st, [nli_train.texts[i] for i in indices], device)
            b = _features(st, [nli_train.pairs[i] for i in indices], device)  # type: ignore[index]
            return nli_loss([a, b], torch.tensor([nli_train.targets[i] for i in indices], device=device))

        def nli_eval() -> Metrics:
            return {"val_spearman": _spearman(st, sts.validation, config.training.eval_batch_size)}

        history += train(nli_loss, config.sentence.nli_training, len(nli_train), nli_batch, nli_eval, report, "nli_")
        skipped += nli.report.total

    sts_loss = (losses.CoSENTLoss(st) if config.sentence.sts_loss == "cosent" else losses.CosineSimilarityLoss(st)).to(
        device
    )

    def sts_batch(indices: list[int]) -> Any:
        a = _features(st, [sts.train.texts[i] for i in indices], device)
        b = _features(st, [sts.train.pairs[i] for i in indices], device)  # type: ignore[index]
        return sts_loss([a, b], torch.tensor([float(sts.train.targets[i]) for i in indices], device=device))

    def sts_eval() -> Metrics:
        scores = {"val_spearman": _spearman(st, sts.validation, config.training.eval_batch_size)}
        if sts.test is not None:
            scores["test_spearman"] = _spearman(st, sts.test, config.training.eval_batch_size)
            scores["test_score"] = scores["test_spearman"]
        scores["val_score"] = scores["val_spearman"]
        return scores

    history += train(
        sts_loss, config.training, len(sts.train), sts_batch, sts_eval, report, checkpointing=checkpointing
    )
    result = _summary(config, st, kept, original, baseline) | history[-1]
    result |= {
        "latency_ms": latency,
        "train_rows": len(sts.train),
        "data_skipped_rows": skipped,
        "seconds": time.monotonic() - started,
    }
    if output_dir is not None:
        st.save(output_dir)
        _write_result(output_dir, result, history, config)
    return result | {"history": history}


JOBS = {"classification": run_classification, "sentence-similarity": run_sentence_similarity}


def run_job(
    config: TrialConfig,
    report: Report = _ignore,
    output_dir: str | None = None,
    checkpointing: Checkpointing | None = None,
    prepared: PreparedData | None = None,
) -> Metrics:
    """Run the job of ``config.task``; ``prepared`` is data a search read and tokenized once."""
    return JOBS[config.task](config, report, output_dir, checkpointing, prepared)


def _write_result(output_dir: str, result: Metrics, history: list[Metrics], config: TrialConfig) -> None:
    path = Path(output_dir) / "prunetune-result.json"
    path.write_text(json.dumps({"config": config.to_dict(), "result": result, "history": history}, indent=2))
