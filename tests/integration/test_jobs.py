"""The prune + fine-tune jobs on the packaged MiniLM and real data slices."""

from __future__ import annotations

import json

import pytest
from prunetune.trainables.jobs import run_job
from prunetune.trainables.surgery import num_layers

from prunetune.config import TrialConfig
from tests.helpers import tiny_config

HEADLINES = {
    "data.source": "indicnews:english:shc",
    "data.on_bad_row": "skip",
    "data.max_train_rows": 800,
    "data.max_eval_rows": 300,
    "training.epochs": 2,
    "training.max_length": 32,
    "training.learning_rate": 2e-4,
    "training.batch_size": 32,
}


@pytest.fixture(scope="module")
def pruned_run(shared_data, tmp_path_factory):
    import os

    os.environ["PRUNETUNE_DATA_DIR"] = str(shared_data)
    reports: list[dict] = []
    config = TrialConfig().with_overrides(HEADLINES | {"drop.strategy": "middle", "drop.count": 2})
    out = tmp_path_factory.mktemp("pruned-model")
    return config, run_job(config, reports.append, output_dir=str(out)), reports, out


def test_pruned_minilm_really_learns_headline_topics(pruned_run) -> None:
    config, result, reports, _ = pruned_run
    chance = 1 / 12
    assert result["kept_layers"] == [0, 1, 4, 5] and result["layers_dropped"] == 2
    assert result["val_accuracy"] > 4 * chance and result["val_macro_f1"] > 3 * chance
    assert [r["epoch"] for r in reports] == [1, 2]
    assert reports[-1]["val_accuracy"] > reports[0]["val_accuracy"] - 0.05
    assert result["train_rows"] == 800 and result["seed"] == 42
    assert result["val_score"] == result["val_accuracy"]
    assert result["latency_ms"] > 0 and all(r["latency_ms"] == result["latency_ms"] for r in reports)


def test_fine_tuned_model_is_saved_with_its_labels(pruned_run) -> None:
    from transformers import AutoModelForSequenceClassification

    _, result, _, out = pruned_run
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert num_layers(model) == 4 and len(model.config.id2label) == 12
    saved = json.loads((out / "prunetune-result.json").read_text())
    assert saved["result"]["val_accuracy"] == result["val_accuracy"]
    assert TrialConfig.from_dict(saved["config"]).drop.count == 2


def test_pruned_beats_random_init_scratch_of_equal_depth(pruned_run) -> None:
    config, pruned, _, _ = pruned_run
    scratch = run_job(config.with_overrides({"variant": "scratch"}))
    assert scratch["baseline_kind"] == "random-init" and scratch["layers_kept"] == 4
    assert pruned["val_accuracy"] > scratch["val_accuracy"] + 0.1


def test_scratch_baseline_from_a_named_small_model(data_env, tmp_path) -> None:
    from prunetune.trainables.models import resolve_model
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    config = tiny_config("bert", layers=2)
    config.vocab_size = tokenizer.vocab_size
    AutoModel.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    result = run_job(
        TrialConfig().with_overrides(
            HEADLINES
            | {
                "variant": "scratch",
                "scratch_model": str(tmp_path),
                "data.max_train_rows": 64,
                "data.max_eval_rows": 32,
                "training.epochs": 1,
                "drop.strategy": "top",
                "drop.count": 4,
            }
        )
    )
    assert result["baseline_kind"] == "small-pretrained" and result["baseline_source"] == str(tmp_path)
    assert result["layers_kept"] == 2 and result["parameters"] < 2_000_000


def test_sentence_embeddings_nli_then_sts_on_a_scored_block(data_env) -> None:
    reports: list[dict] = []
    config = TrialConfig().with_overrides(
        {
            "task": "sentence-similarity",
            "data.source": "stsb:en",
            "data.test_split": "test",
            "data.max_train_rows": 400,
            "data.max_eval_rows": 300,
            "sentence.nli_data.source": "glue:rte",
            "sentence.nli_data.max_train_rows": 200,
            "sentence.nli_training.epochs": 1,
            "sentence.sts_loss": "cosent",
            "drop.strategy": "angular-block",
            "drop.count": 3,
            "scores_sample_rows": 64,
            "training.epochs": 1,
            "training.max_length": 48,
            "training.learning_rate": 2e-5,
            "training.batch_size": 16,
        }
    )
    result = run_job(config, reports.append)
    assert result["layers_kept"] == 3 and result["strategy"] == "angular-block"
    assert [("nli_epoch" in r, "epoch" in r) for r in reports] == [(True, False), (False, True)]
    assert result["val_spearman"] > 0.6 and result["test_spearman"] > 0.6
    assert result["test_score"] == result["test_spearman"]


def test_interrupted_job_resumes_from_its_checkpoint_exactly(data_env, tmp_path) -> None:
    from prunetune.trainables.models import resolve_model
    from prunetune.trainables.training import Checkpointing
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    config = tiny_config("bert", layers=3)
    config.vocab_size = tokenizer.vocab_size
    AutoModel.from_config(config).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    trial = TrialConfig().with_overrides(
        HEADLINES
        | {
            "model": str(tmp_path / "model"),
            "data.max_train_rows": 128,
            "data.max_eval_rows": 64,
            "training.epochs": 3,
            "drop.strategy": "top",
            "drop.count": 1,
        }
    )
    whole = run_job(trial)

    class Crash(Exception):
        pass

    def crash_after_first(metrics: dict) -> None:
        if metrics["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        run_job(trial, crash_after_first, checkpointing=Checkpointing(str(tmp_path / "a")))
    reported: list[dict] = []
    resumed = run_job(trial, reported.append, checkpointing=Checkpointing(str(tmp_path / "b"), str(tmp_path / "a")))
    assert [r["epoch"] for r in reported] == [2, 3]  # epoch 1 is not trained again
    assert resumed["val_accuracy"] == pytest.approx(whole["val_accuracy"], abs=1e-9)
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-4)


def test_data_prepared_once_gives_the_same_result_and_is_checked_against_the_config(data_env) -> None:
    from prunetune.trainables.models import load_tokenizer
    from prunetune.trainables.prepared import prepare_classification

    def pad_batch(tokenizer, rows, indices):  # what padding each batch with the tokenizer gives
        return dict(tokenizer.pad([rows[i] for i in indices], padding=True, return_tensors="pt"))

    config = TrialConfig().with_overrides(
        HEADLINES | {"data.max_train_rows": 96, "data.max_eval_rows": 48, "training.epochs": 1, "kept_layers": [0, 5]}
    )
    tokenizer = load_tokenizer(config.model)
    prepared = prepare_classification(config, tokenizer, config.model)
    assert len(prepared.features["train"]) == len(prepared.task.train) == 96
    batch = pad_batch(tokenizer, prepared.features["train"], [0, 1, 2])
    assert batch["input_ids"].shape[0] == 3 and batch["input_ids"].shape[1] <= config.training.max_length
    alone = run_job(config)
    shared = run_job(config, prepared=prepared)  # what every trial of a search gets
    assert shared["val_score"] == alone["val_score"] and shared["train_loss"] == alone["train_loss"]
    # Padded once per split, a batch is what padding it with the tokenizer gives, on either padding side.
    import copy

    import torch
    from prunetune.trainables.prepared import PaddedSplit

    rows = prepared.features["train"]
    for side in ("right", "left"):
        sided = copy.deepcopy(tokenizer)  # the process's tokenizer is shared by its trials: left as it is
        sided.padding_side = side
        padded = PaddedSplit(sided, rows, "cpu")
        for indices in ([5, 0, 77, 31], list(range(10, 42)), [95]):
            expected, got = pad_batch(sided, rows, indices), padded.batch(indices)
            assert set(got) == set(expected)
            assert all(torch.equal(got[name], expected[name]) for name in expected), (side, indices)
    # Data prepared for another slice is not used: the job reads its own rows.
    other = config.with_overrides({"data.max_train_rows": 64})
    assert run_job(other, prepared=prepared)["train_rows"] == 64


class _Payload:
    """Stands for an object someone with write access to the checkpoint storage planted there."""

    def __reduce__(self):
        return (print, ("code ran while loading a checkpoint",))


def test_a_checkpoint_that_holds_more_than_tensors_is_refused_not_unpickled(tmp_path, capsys) -> None:
    import pickle

    import torch
    from prunetune.trainables.training import Checkpointing

    torch.save({"model": {}, "history": "[]", "extra": _Payload()}, tmp_path / Checkpointing.STATE)
    with pytest.raises(pickle.UnpicklingError):
        Checkpointing(str(tmp_path / "new"), str(tmp_path)).saved_state()
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.gpu
def test_device_auto_trains_on_the_gpu_and_learns(data_env) -> None:
    """Where CUDA is, `device: auto` trains there (the device machine runs this test), and as well."""
    config = TrialConfig().with_overrides(HEADLINES | {"drop.strategy": "top", "drop.count": 2})
    result = run_job(config)
    assert result["device"].startswith("cuda")
    assert result["val_accuracy"] > 0.5  # 10 topics: chance is 0.1
