"""The one training loop every job uses: seeded shuffles, AdamW, linear warm-up and decay, per-epoch reports."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from prunetune.trainables.config import TrainingConfig

Metrics = dict[str, Any]
Report = Callable[[Metrics], None]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def epoch_batches(size: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled index batches, the same for the same (seed, epoch) whatever ran before."""
    order = list(range(size))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, size, batch_size)]


def _optimizer(model: Any, config: TrainingConfig, total_steps: int) -> tuple[Any, Any]:
    import torch
    from transformers import get_linear_schedule_with_warmup

    # Biases and LayerNorm weights are not decayed (the BERT recipe).
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    warmup = int(config.warmup_ratio * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def train(
    model: Any,
    config: TrainingConfig,
    train_size: int,
    loss_of_batch: Callable[[list[int]], Any],
    evaluate: Callable[[], Metrics],
    report: Report,
    prefix: str = "",
) -> list[Metrics]:
    """Train ``config.epochs`` epochs; after each, ``evaluate()`` and ``report`` the metrics.

    ``loss_of_batch(indices)`` returns the loss tensor of one batch of training rows.
    Metric names get ``prefix`` (``"nli_"`` for the NLI phase) except ``epoch``.
    """
    import torch

    batches_per_epoch = (train_size + config.batch_size - 1) // config.batch_size
    optimizer, scheduler = _optimizer(model, config, batches_per_epoch * config.epochs)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for indices in epoch_batches(train_size, config.batch_size, config.seed, epoch):
            loss = loss_of_batch(indices)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach()) * len(indices)
            count += len(indices)
        model.eval()
        with torch.no_grad():
            scores = evaluate()
        metrics = {f"{prefix}{k}": v for k, v in scores.items()}
        metrics.update({f"{prefix}train_loss": total / max(count, 1), f"{prefix}epoch": epoch})
        report(metrics)
        history.append(metrics)
    return history
