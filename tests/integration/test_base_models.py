"""A reused trial process reads the base model once; each trial trains a private copy (issue 12)."""

from __future__ import annotations

from prunetune.trainables.jobs import run_job
from prunetune.trainables.models import BASE_MODELS, load_classifier

from prunetune.config import TrialConfig

SMALL = {
    "data.source": "indicnews:english:shc",
    "data.on_bad_row": "skip",
    "data.max_train_rows": 160,
    "data.max_eval_rows": 80,
    "training.epochs": 1,
    "training.max_length": 24,
    "training.batch_size": 16,
}


def _weights(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_trials_of_one_process_read_the_model_once_and_match_cold_trials(tiny_model, data_env) -> None:
    import torch

    BASE_MODELS.clear()
    base = TrialConfig().with_overrides(SMALL | {"model": tiny_model, "training.seed": 7})
    configs = [
        base.with_overrides({"kept_layers": [0, 3]}),
        base.with_overrides({"kept_layers": [1, 2, 3], "training.learning_rate": 1e-3}),
        base.with_overrides({"variant": "scratch", "kept_layers": [0, 1]}),  # re-initialises every weight
    ]
    from prunetune.trainables.models import load_tokenizer
    from prunetune.trainables.prepared import prepare_classification

    data = prepare_classification(base, load_tokenizer(tiny_model), tiny_model)  # read once, as a search does
    warm = [run_job(config, prepared=data) for config in configs]
    assert BASE_MODELS.loads == 1  # three trials, one read from disk

    # The weights kept in memory are the checkpoint's still: no trial's surgery or training reached them.
    held, fresh = next(iter(BASE_MODELS._held.values()))
    assert fresh == ["classifier.bias", "classifier.weight"]
    from transformers import AutoModelForSequenceClassification

    on_disk = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=held.config.num_labels)
    stored = _weights(on_disk)
    for name, tensor in held.state_dict().items():
        if name not in fresh:
            assert torch.equal(tensor, stored[name]), name

    # Each trial equals the same trial run cold, in a process that had read nothing: same head, same training.
    for config, result in zip(configs, warm, strict=True):
        BASE_MODELS.clear()
        cold = run_job(config, prepared=data)
        assert BASE_MODELS.loads == 1
        assert cold["kept_layers"] == result["kept_layers"]
        assert cold["train_loss"] == result["train_loss"] and cold["val_score"] == result["val_score"]


def test_a_classifier_head_is_drawn_from_the_seed_whether_read_or_copied(tiny_model) -> None:
    import torch
    from prunetune.trainables.training import seed_everything

    BASE_MODELS.clear()
    seed_everything(3)
    read = _weights(load_classifier(tiny_model, ("a", "b")))
    seed_everything(3)
    copied = _weights(load_classifier(tiny_model, ("a", "b")))
    other = _weights(load_classifier(tiny_model, ("a", "b")))  # not seeded again: a different head
    assert BASE_MODELS.loads == 1
    assert all(torch.equal(read[name], copied[name]) for name in read)
    assert not torch.equal(copied["classifier.weight"], other["classifier.weight"])
    embeddings = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(copied[embeddings], other[embeddings])
    load_classifier(tiny_model, ("a", "b", "c"))  # other labels: another head shape, read apart
    assert BASE_MODELS.loads == 2
