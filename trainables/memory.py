"""A trial's GPU memory peak, measured: what ``gpus_per_trial: auto`` packs GPUs by.

The probe trains the *unpruned* encoder (the largest model any trial trains) for a few steps with the
trial's optimizer, on batches of ``batch_size`` rows at the full ``max_length`` (longer than any real batch),
then scores a batch of ``eval_batch_size`` rows. The peak is the GPU's memory in use at the end: the CUDA
context, and every block PyTorch's allocator reserved (it keeps them: its peak reservation stays).
"""

from __future__ import annotations

from typing import Any

from prunetune.trainables.models import load_classifier, pick_device
from prunetune.trainables.training import make_optimizer, seed_everything

from prunetune.config import TrialConfig
from prunetune.libs import torch

__all__ = ["training_peak"]


PROBE_STEPS = 3


def training_peak(config: TrialConfig) -> tuple[int, int] | None:
    """(peak bytes in use on the GPU, the GPU's bytes) while training ``config``'s full model; None without
    CUDA. The encoder of a sentence-similarity task is probed with a classification head (a few kB)."""
    if pick_device(config.training.device) != "cuda":
        return None
    seed_everything(config.training.seed)
    training = config.training
    model: Any = load_classifier(config.model, ("a", "b")).to("cuda").train()
    optimizer, _ = make_optimizer(model, training, PROBE_STEPS)
    vocab = model.config.vocab_size

    # At most the positions the model has (RoBERTa's start after the padding index): what the tokenizer keeps.
    length = min(training.max_length, getattr(model.config, "max_position_embeddings", 512) - 2)

    def batch(rows: int) -> dict[str, Any]:
        ids = torch.randint(0, vocab, (rows, length), device="cuda")
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    for _ in range(PROBE_STEPS):
        labels = torch.zeros(training.batch_size, dtype=torch.long, device="cuda")
        model(**batch(training.batch_size), labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.inference_mode():
        model.eval()(**batch(training.eval_batch_size))
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return int(total - free), int(total)
