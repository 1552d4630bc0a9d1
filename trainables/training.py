"""The one training loop every job uses: seeded shuffles, AdamW, linear warm-up and decay, per-epoch reports."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunetune.config import TrainingConfig
from prunetune.libs import np, torch, transformers

__all__ = ["Checkpointing", "Metrics", "Report", "make_optimizer", "seed_everything", "train"]


Metrics = dict[str, Any]
Report = Callable[[Metrics], None]


@dataclass
class Checkpointing:
    """Where training writes its state after an epoch (before reporting it), and where an earlier attempt
    left one to continue from — so a retried trial resumes at its last checkpointed epoch.

    A checkpoint (weights and optimizer: about 270 MB for MiniLM) costs a write, Tune's copy to storage and a
    snapshot of the experiment: about a second on CPU, as much as a short GPU epoch. So one is written only
    once ``every_s`` seconds have passed since the last (or since the start); a retry then repeats at most
    that much training, plus the epoch in flight. 0: after every epoch."""

    directory: str
    resume_from: str | None = None
    every_s: float = 0.0
    last_saved: float = field(default_factory=time.monotonic)
    saved_epoch: int = 0  # the epoch of the checkpoint written last (0: none)

    STATE = "training_state.pt"

    def saved_state(self) -> dict[str, Any] | None:
        """The state an earlier attempt saved. Read with ``weights_only=True``: the checkpoint comes from
        shared storage, and unpickling arbitrary objects from there would run whatever code was put in it;
        the state is tensors and plain containers only, its history as JSON text."""
        if self.resume_from is None or not (Path(self.resume_from) / self.STATE).exists():
            return None
        state: dict[str, Any] = torch.load(Path(self.resume_from) / self.STATE, weights_only=True)
        state["history"] = json.loads(state["history"])
        return state

    def due(self) -> bool:
        return time.monotonic() - self.last_saved >= self.every_s

    def save(self, state: dict[str, Any], epoch: int) -> None:
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        tmp = Path(self.directory) / f"{self.STATE}.tmp"
        torch.save(state, tmp)
        tmp.replace(Path(self.directory) / self.STATE)
        self.last_saved, self.saved_epoch = time.monotonic(), epoch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def epoch_batches(size: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled index batches, the same for the same (seed, epoch) whatever ran before."""
    order = list(range(size))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, size, batch_size)]


def make_optimizer(model: Any, config: TrainingConfig, total_steps: int) -> tuple[Any, Any]:
    # Biases and LayerNorm weights are not decayed (the BERT recipe).
    decay: list[Any] = []
    no_decay: list[Any] = []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    warmup = int(config.warmup_ratio * total_steps)
    return optimizer, transformers.get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def train(
    model: Any,
    config: TrainingConfig,
    train_size: int,
    loss_of_batch: Callable[[list[int]], Any],
    evaluate: Callable[[], Metrics],
    report: Report,
    prefix: str = "",
    checkpointing: Checkpointing | None = None,
) -> list[Metrics]:
    """Train ``config.epochs`` epochs; after each, ``evaluate()`` and ``report`` the metrics.

    ``loss_of_batch(indices)`` returns the loss tensor of one batch of training rows.
    Metric names get ``prefix`` (``"nli_"`` for the NLI phase) except ``epoch``.
    With ``checkpointing``, the state after an epoch but the last is saved before it is reported, when one is
    due (:meth:`Checkpointing.due`), and a saved state is continued from (its epochs are not trained or
    reported again).
    """
    batches_per_epoch = (train_size + config.batch_size - 1) // config.batch_size
    optimizer, scheduler = make_optimizer(model, config, batches_per_epoch * config.epochs)
    history: list[Metrics] = []
    saved = checkpointing.saved_state() if checkpointing else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        history = saved["history"]
    for epoch in range(len(history) + 1, config.epochs + 1):
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
        history.append(metrics)
        # A finished run has nothing left to resume; a checkpoint not yet due is not worth its cost.
        if checkpointing is not None and epoch < config.epochs and checkpointing.due():
            checkpointing.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "history": json.dumps(history, default=float),  # numpy scalars become floats
                },
                epoch,
            )
        report(metrics)
    return history
