"""The checkpoint policy of the training loop: a checkpoint only once ``every_s`` seconds have passed since the
last, never after the last epoch; a retry from an older checkpoint trains the same epochs to the same result."""

from __future__ import annotations

import pytest
import torch
from prunetune.trainables.training import Checkpointing, seed_everything, train

from prunetune.config import TrainingConfig

ROWS = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
TARGETS = ROWS.sum(dim=1, keepdim=True)


def a_run(checkpointing: Checkpointing | None, report=lambda metrics: None, epochs: int = 4) -> list[dict]:
    seed_everything(0)
    model = torch.nn.Linear(4, 1)
    config = TrainingConfig(learning_rate=1e-2, epochs=epochs, batch_size=16)

    def loss_of_batch(indices: list[int]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(ROWS[indices]), TARGETS[indices])

    def evaluate() -> dict:
        return {"val_score": -float(torch.nn.functional.mse_loss(model(ROWS), TARGETS))}

    return train(model, config, len(ROWS), loss_of_batch, evaluate, report, checkpointing=checkpointing)


def test_every_epoch_but_the_last_checkpoints_at_zero_seconds(tmp_path) -> None:
    saved: list[int] = []
    every_epoch = Checkpointing(str(tmp_path), every_s=0.0)
    a_run(every_epoch, report=lambda metrics: saved.append(every_epoch.saved_epoch))
    assert saved == [1, 2, 3, 3]  # after the last epoch, none: a finished run has nothing to resume


def test_no_checkpoint_before_one_is_due(tmp_path) -> None:
    sparse = Checkpointing(str(tmp_path), every_s=3600.0)
    a_run(sparse)
    assert sparse.saved_epoch == 0 and not (tmp_path / Checkpointing.STATE).exists()


def test_a_retry_from_an_older_checkpoint_trains_the_rest_to_the_same_result(tmp_path) -> None:
    whole = a_run(None)

    class Crash(Exception):
        pass

    first = Checkpointing(str(tmp_path / "a"), every_s=0.0)

    def crash_in_epoch_three(metrics: dict) -> None:
        if metrics["epoch"] == 1:
            first.every_s = 3600.0  # epoch 1 checkpointed, epoch 2 not: the crash loses two epochs
        if metrics["epoch"] == 3:
            raise Crash

    with pytest.raises(Crash):
        a_run(first, crash_in_epoch_three)
    assert first.saved_epoch == 1
    reported: list[dict] = []
    resumed = a_run(Checkpointing(str(tmp_path / "b"), str(tmp_path / "a"), every_s=3600.0), reported.append)
    assert [r["epoch"] for r in reported] == [2, 3, 4]  # from epoch 1's checkpoint: epoch 2 is trained again
    assert resumed[-1]["val_score"] == pytest.approx(whole[-1]["val_score"], rel=1e-6)
