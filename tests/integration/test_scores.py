from __future__ import annotations

import math

import pytest
from prunetune.trainables.data import sample_texts
from prunetune.trainables.models import load_any
from prunetune.trainables.scores import compute_layer_scores
from prunetune.trainables.strategies import kept_layers

from prunetune.config import DataConfig
from prunetune.records import LayerScores
from tests.helpers import MINILM, tiny_config


def test_scores_of_minilm_on_real_headlines(data_env, tmp_path) -> None:
    model = load_any(MINILM)
    texts = sample_texts(DataConfig(source="indicnews:english:shc"), 64)
    scores = compute_layer_scores(model, model.tokenizer, texts, model_name=MINILM, max_length=32, cache_dir=tmp_path)

    assert scores.num_layers == 6 and scores.sample_size == 64
    for i in range(7):
        assert scores.cosine[i][i] == pytest.approx(1.0, abs=1e-4)
        assert scores.angular[i][i] == pytest.approx(0.0, abs=1e-2)
        for j in range(7):
            assert scores.cosine[i][j] == pytest.approx(scores.cosine[j][i], abs=1e-5)
            assert 0.0 <= scores.angular[i][j] <= 1.0
    # Each layer changes its input by a real amount, and the top layer of MiniLM the most.
    contributions = [scores.contribution(layer) for layer in range(6)]
    assert all(0.2 < c < 0.999 for c in contributions)
    assert min(contributions) == contributions[5]
    assert kept_layers("angular-block", 6, {"count": 2}, scores) != tuple(range(4))  # not simply the top
    rows = scores.layer_table()
    assert [r["layer"] for r in rows] == list(range(6))
    assert math.isclose(rows[0]["block_influence"], 1 - rows[0]["cosine_in_out"], abs_tol=1e-5)

    # Cached by content: a second call reads the file; other texts give another entry.
    assert len(list(tmp_path.iterdir())) == 1
    assert (
        compute_layer_scores(model, model.tokenizer, texts, model_name=MINILM, max_length=32, cache_dir=tmp_path)
        == scores
    )
    compute_layer_scores(model, model.tokenizer, texts[:10], model_name=MINILM, max_length=32, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert LayerScores.from_json(scores.to_json()) == scores


def test_padding_does_not_change_scores(tmp_path) -> None:
    """Mask-aware: a text scored alone or padded beside a long one gives the same token statistics."""
    import torch
    from prunetune.trainables.models import resolve_model
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    model = AutoModel.from_config(_bert_with_vocab(tokenizer.vocab_size))
    short, long = "short one", "a much longer sentence that forces a lot of padding on the short one"
    alone = compute_layer_scores(model, tokenizer, [short, long], batch_size=1, cache_dir=tmp_path / "a")
    together = compute_layer_scores(model, tokenizer, [short, long], batch_size=2, cache_dir=tmp_path / "b")
    for i in range(4):
        for j in range(4):
            assert alone.cosine[i][j] == pytest.approx(together.cosine[i][j], abs=1e-5)


def _bert_with_vocab(vocab: int):
    config = tiny_config("bert", layers=3)
    config.vocab_size = vocab
    return config
