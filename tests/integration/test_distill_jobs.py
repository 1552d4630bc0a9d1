"""A distilled job: the fine-tuned full MiniLM teaches a pruned one on real headlines (issue 13)."""

from __future__ import annotations

import json

import pytest
from prunetune.trainables.jobs import run_job

from prunetune.config import ConfigError, TrialConfig

SLICE = {
    "data.source": "indicnews:english:shc",
    "data.on_bad_row": "skip",
    "data.max_train_rows": 400,
    "data.max_eval_rows": 100,
    "training.epochs": 2,
    "training.batch_size": 16,  # 50 steps: enough to leave chance behind
    "training.max_length": 32,
    "training.learning_rate": 4e-4,
}


def test_finetune_distils_from_a_recorded_run_whose_model_is_re_created(data_env, tmp_path, monkeypatch) -> None:
    """`prunetune finetune --teacher-run`: the run's model (a reference's, say) is trained again from its
    recorded config, then teaches the pruned job; the teacher runs over the training rows once."""
    from mlflow.tracking import MlflowClient
    from prunetune.trainables import distill

    from prunetune.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    teacher_config = TrialConfig().with_overrides(SLICE | {"training.learning_rate": 2e-4})
    run = client.create_run(client.create_experiment("recorded"), tags={"prunetune.kind": "reference"})
    for key, value in teacher_config.to_flat().items():
        client.log_param(run.info.run_id, key, value)
    calls: list[int] = []
    original = distill.teacher_logits
    monkeypatch.setattr("prunetune.trainables.jobs.teacher_logits", lambda *a: calls.append(1) or original(*a))
    losses: list[int] = []  # counted, not replaced
    loss = distill.distill_loss
    monkeypatch.setattr("prunetune.trainables.jobs.distill_loss", lambda *a: losses.append(1) or loss(*a))

    sets = [f"{k}={v}" for k, v in SLICE.items()] + ["kept_layers=[0, 5]", "distill.alpha=0.5", "distill.temperature=2"]
    out, metrics = tmp_path / "student", tmp_path / "metrics.json"
    arguments = ["finetune", *[a for s in sets for a in ("--set", s)], "--teacher-run", run.info.run_id]
    code = main([*arguments, "--tracking-uri", uri, "-o", str(out), "--metrics", str(metrics)])
    assert code == 0
    assert (out / "teacher" / "config.json").exists()  # the re-created teacher, kept beside the student
    assert calls == [1]  # the teacher ran over the training rows once, not per batch or epoch
    assert len(losses) == 2 * 400 // 16  # every batch of both epochs learnt from it
    result = json.loads(metrics.read_text())
    assert result["layers_kept"] == 2 and result["val_accuracy"] > 2 / 12  # above chance (12 topics)

    student = TrialConfig.from_dict(json.loads((out / "prunetune-result.json").read_text())["config"])
    assert student.distill.alpha == 0.5 and student.distill.teacher == str(out / "teacher")

    # A teacher of another task is refused, naming both label sets; a distilled job needs a teacher.
    from transformers import AutoModelForSequenceClassification

    other = tmp_path / "other"
    AutoModelForSequenceClassification.from_pretrained(
        out / "teacher", num_labels=2, id2label={0: "x", 1: "y"}, label2id={"x": 0, "y": 1},
        ignore_mismatched_sizes=True,
    ).save_pretrained(other)  # fmt: skip
    with pytest.raises(ConfigError, match=r"predicts labels \['x', 'y'\]"):
        run_job(student.with_overrides({"distill.teacher": str(other)}))
    with pytest.raises(ConfigError, match="needs distill.teacher"):
        run_job(student.with_overrides({"distill.teacher": None}))


def test_a_sentence_job_learns_from_its_teachers_similarities(data_env, monkeypatch) -> None:
    """A pruned MiniLM learns STS with the full MiniLM's cosine of every training pair as a soft label: the
    teacher embeds the training sentences once, every batch of the STS phase is pulled, the student's cosines
    come closer to the teacher's, and it scores well above chance."""
    import torch
    from prunetune.trainables import distill
    from prunetune.trainables.models import resolve_model

    embedded: list[int] = []
    original = distill.teacher_embeddings
    monkeypatch.setattr("prunetune.trainables.jobs.teacher_embeddings", lambda *a: embedded.append(1) or original(*a))
    pulls: list[float] = []
    pull = distill.similarity_distill_loss
    cosine = torch.nn.functional.cosine_similarity

    def counted(hard, student, teacher, alpha):
        gap = cosine(*student, dim=-1).detach() - cosine(*teacher, dim=-1)
        pulls.append(float(gap.pow(2).mean()))
        return pull(hard, student, teacher, alpha)

    monkeypatch.setattr("prunetune.trainables.jobs.similarity_distill_loss", counted)
    config = TrialConfig().with_overrides(
        {
            "task": "sentence-similarity",
            "data.source": "stsb:en",
            "data.max_train_rows": 320,
            "data.max_eval_rows": 300,
            "kept_layers": [0, 5],
            "training.epochs": 1,
            "training.batch_size": 16,
            "training.max_length": 48,
            "training.learning_rate": 1e-4,
            "distill.alpha": 0.9,
            "distill.teacher": str(resolve_model("sentence-transformers/all-MiniLM-L6-v2")),
        }
    )
    result = run_job(config)
    assert embedded == [1]  # once, for every sentence, not per batch
    assert len(pulls) == 320 // 16  # every batch of the STS phase was pulled
    assert sum(pulls[-5:]) < sum(pulls[:5])  # the student's similarities came closer to the teacher's
    assert result["layers_kept"] == 2 and result["val_spearman"] > 0.5

    # The teacher's embeddings must cover the training sentences and share the student's dimensions.
    with pytest.raises(ConfigError, match="the teacher's embeddings cover 3 rows, the training data 640"):
        run_job(config, teacher=[[0.0] * 384] * 3)
