"""A classification task's data, loaded and tokenized once and shared by every trial of a search.

Trials of one search differ only in which layers they keep and how they train; they read the same rows
with the same tokenizer. So the search driver reads and tokenizes the data once
(:func:`prepare_classification`) and Ray hands the result to every trial through its object store
(``tune.with_parameters``), on whichever node the trial runs. A job checks the preparation's ``key``
against its own config and prepares its data itself when they differ (a job run alone does the same).

Rows are tokenized without padding; each batch is padded to its own longest row (as
``DataCollatorWithPadding`` does), so a batch of short headlines stays short.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from prunetune.trainables import data as datasets

from prunetune.config import TrialConfig

__all__ = ["PaddedSplit", "PreparedData", "padded_splits", "preparation_key", "prepare_classification"]


Features = tuple[dict[str, list[int]], ...]  # one dict of token-id lists per row


@dataclass(frozen=True)
class PreparedData:
    key: str  # what it was prepared from (see :func:`preparation_key`)
    task: datasets.TaskData
    features: dict[str, Features]  # split name -> the rows' token ids


def preparation_key(config: TrialConfig, tokenizer_name: str) -> str:
    """Everything the prepared data depends on: the data config, the tokenizer, the truncation length."""
    raw = {"data": asdict(config.data), "tokenizer": tokenizer_name, "max_length": config.training.max_length}
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tokenize(tokenizer: Any, split: datasets.TextSplit, max_length: int) -> Features:
    encoded = tokenizer(
        list(split.texts), list(split.pairs) if split.pairs else None, truncation=True, max_length=max_length
    )
    names = list(encoded.keys())
    return tuple({name: encoded[name][row] for name in names} for row in range(len(split)))


def prepare_classification(config: TrialConfig, tokenizer: Any, tokenizer_name: str) -> PreparedData:
    """Read the task's splits and tokenize every row once."""
    task = datasets.load_labelled(config.data, pairs=config.data.text_pair_column is not None)
    splits = {"train": task.train, "validation": task.validation}
    if task.test is not None:
        splits["test"] = task.test
    max_length = config.training.max_length
    features = {name: _tokenize(tokenizer, split, max_length) for name, split in splits.items()}
    return PreparedData(preparation_key(config, tokenizer_name), task, features)


# Padded splits larger than this stay in host memory (each batch is copied to the device): 512 MiB of int32
# token ids is 100,000 rows of 512 tokens in three tensors, far beyond a headline task.
DEVICE_LIMIT_BYTES = 512 * 2**20


class PaddedSplit:
    """One split's rows padded once, by the tokenizer, to the split's longest row, kept as int32 tensors on the
    trial's device. A batch is its rows picked and trimmed to their own longest: what padding each batch with
    the tokenizer gives, without a tokenizer call and a host-to-device copy per batch."""

    def __init__(self, tokenizer: Any, rows: Features, device: str) -> None:
        import torch

        padded = tokenizer.pad(list(rows), padding=True, return_tensors="pt")
        size = sum(t.numel() for t in padded.values()) * 4
        self.device = device
        self.store = device if size <= DEVICE_LIMIT_BYTES else "cpu"
        self.tensors = {name: t.to(torch.int32).to(self.store) for name, t in padded.items()}
        self.lengths = [len(row["input_ids"]) for row in rows]
        self.left = tokenizer.padding_side == "left"

    def batch(self, indices: list[int]) -> dict[str, Any]:
        import torch

        longest = max(self.lengths[i] for i in indices)
        columns = slice(-longest, None) if self.left else slice(0, longest)
        if indices == list(range(indices[0], indices[0] + len(indices))):  # evaluation walks rows in order
            picked = {name: t[indices[0] : indices[0] + len(indices), columns] for name, t in self.tensors.items()}
        else:
            at = torch.tensor(indices, device=self.store)
            picked = {name: t[at, columns] for name, t in self.tensors.items()}
        return {name: t.to(self.device, non_blocking=True).long() for name, t in picked.items()}


_PADDED: dict[tuple[str, str], dict[str, PaddedSplit]] = {}


def padded_splits(prepared: PreparedData, tokenizer: Any, device: str) -> dict[str, PaddedSplit]:
    """The prepared data's splits padded on ``device``, once per process: a reused trial process keeps them for
    the next trial of the search (the last search's data only)."""
    key = (prepared.key, device)
    if key not in _PADDED:
        _PADDED.clear()
        _PADDED[key] = {name: PaddedSplit(tokenizer, rows, device) for name, rows in prepared.features.items()}
    return _PADDED[key]
