"""Per-layer contribution scores and block angular distances, from one pass over a data sample.

One forward pass with ``output_hidden_states=True`` gives the ``n + 1`` hidden states of an
``n``-layer encoder (the embeddings, then each layer's output). For every pair of states ``(i, j)``
we average, over the non-padding tokens of the sample, the cosine similarity of the two token
vectors and their angular distance ``arccos(cos) / pi``. Both strategies that need scores read
this one table:

* contribution of layer ``l``: ``cosine[l][l + 1]``, how little layer ``l`` changes its input
  (Poor Man's BERT; ShortGPT's Block Influence is ``1 -`` this);
* angular distance of the block of ``k`` layers starting at ``l``: ``angular[l][l + k]``
  (Gromov et al. 2024).

``LayerScores`` is plain data (no torch) so the pure strategies and the search driver can use it;
torch is imported only inside :func:`compute_layer_scores`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunetune.trainables.sources import cache_root
from prunetune.trainables.surgery import encoder_of

from prunetune.libs import torch
from prunetune.records import LayerScores

__all__ = ["compute_layer_scores"]


SCORES_VERSION = 1  # bump when the computation changes, so old cache entries are not reused


def default_cache_dir() -> Path:

    return cache_root() / "scores"


def _content_key(encoder: Any, texts: Sequence[str], max_length: int) -> str:
    """Hash of the encoder's weights and config, the sample texts and the max length."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"v{SCORES_VERSION}|{max_length}|".encode())
    digest.update(encoder.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    for text in texts:
        digest.update(b"\x00" + text.encode())
    return digest.hexdigest()


def compute_layer_scores(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    model_name: str = "",
    max_length: int = 128,
    batch_size: int = 32,
    cache_dir: Path | None = None,
) -> LayerScores:
    """Score every layer and block of ``model`` on ``texts`` (cached by content).

    ``model`` may be a bare encoder, a task model or a sentence-transformers model; the
    encoder inside is found by :mod:`prunetune.trainables.surgery`.
    """

    if not texts:
        raise ValueError("compute_layer_scores needs at least one text in the data sample")
    encoder = encoder_of(model)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    cache_file = cache_dir / f"{_content_key(encoder, texts, max_length)}.json"
    if cache_file.exists():
        return LayerScores.from_json(cache_file.read_text())

    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    cos_sum: torch.Tensor | None = None
    ang_sum: torch.Tensor | None = None
    tokens = 0
    with torch.no_grad():
        for first in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[first : first + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            out = encoder(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_hidden_states=True,
            )
            mask = batch["attention_mask"].bool()
            # (states, real_tokens, hidden): only non-padding tokens count.
            states = torch.stack(out.hidden_states)[:, mask].float()
            unit = torch.nn.functional.normalize(states, dim=-1)
            # cos[i, j, t] for every pair of states and every token, summed over tokens.
            cos = torch.einsum("ith,jth->ijt", unit, unit).clamp(-1.0, 1.0)
            cos_batch = cos.sum(-1)
            ang_batch = (torch.arccos(cos) / torch.pi).sum(-1)
            cos_sum = cos_batch if cos_sum is None else cos_sum + cos_batch
            ang_sum = ang_batch if ang_sum is None else ang_sum + ang_batch
            tokens += int(mask.sum())
    encoder.train(was_training)
    assert cos_sum is not None and ang_sum is not None
    num_layers = cos_sum.shape[0] - 1
    scores = LayerScores(
        model=model_name,
        num_layers=num_layers,
        sample_size=len(texts),
        max_length=max_length,
        cosine=tuple(tuple(float(v) for v in row) for row in (cos_sum / tokens).tolist()),
        angular=tuple(tuple(float(v) for v in row) for row in (ang_sum / tokens).tolist()),
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(scores.to_json())
    tmp.replace(cache_file)  # atomic: concurrent trials never read half a file
    return scores
