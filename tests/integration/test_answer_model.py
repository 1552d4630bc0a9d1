"""The answer is a model: its folder loads with `from_pretrained` / `SentenceTransformer(path)`, and the MLflow
model logged to the search's run loads with its flavor, with the same outputs; a name registers it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from prunetune.search.answer_model import ModelFacts, log_model, model_card
from prunetune.search.store import experiment_id
from prunetune.trainables.models import resolve_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from prunetune.config import TrialConfig
from prunetune.records import TAG_KIND

TEXTS = ["a headline about cricket", "markets fell sharply today"]


def tiny_classifier(folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, num_labels=3)  # fmt: skip
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def a_search_run(tmp_path: Path) -> tuple[str, MlflowClient, str, str]:
    """A search's run, still running, and the finished run of the job that trained its answer's model."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "answer", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, tags={TAG_KIND: "search"}).info.run_id
    job = mlflow.create_run(experiment, tags={TAG_KIND: "model", "mlflow.parentRunId": parent}).info.run_id
    mlflow.set_terminated(job, "FINISHED")
    return uri, mlflow, parent, job


FACTS = ModelFacts([("verdict", "within at 1")], {"drop": 0.004, "val_score": 0.66}, {"verdict_1": "within"})


def test_a_classifier_logged_to_the_search_loads_with_the_transformers_flavor_and_from_pretrained(tmp_path) -> None:
    import mlflow.transformers

    folder = tmp_path / "model"
    tiny_classifier(folder)
    (folder / "README.md").write_text("---\nlibrary_name: transformers\n---\n\n# the card prunetune wrote\n")
    uri, client, parent, job = a_search_run(tmp_path)
    trial = TrialConfig().with_overrides({"kept_layers": [0, 5]})

    model_uri, registered = log_model(uri, job, parent, folder, trial, FACTS, register="pruned-minilm")

    assert registered == "pruned-minilm version 1"
    logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert logged.source_run_id == job and client.get_run(job).info.status == "FINISHED"  # left as it was
    assert logged.model_id in {o.model_id for o in client.get_run(parent).outputs.model_outputs}  # the search's
    assert client.get_run(parent).info.status == "RUNNING"  # left as it was: the search closes it
    assert logged.params["kept_layers"] == "[0, 5]" and logged.tags["verdict_1"] == "within"
    assert {m.key: m.value for m in logged.metrics} == {"drop": 0.004, "val_score": 0.66}
    (version,) = client.search_model_versions("name = 'pruned-minilm'")
    assert "pruned by prunetune" in version.description and "within at 1" in version.description
    components = mlflow.transformers.load_model(model_uri, return_type="components")
    direct = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = components["tokenizer"](TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(components["model"].eval()(**batch).logits, direct(**batch).logits)
    assert mlflow_registered(uri, "pruned-minilm") == ["1"]


def mlflow_registered(uri: str, name: str) -> list[str]:
    return [str(v.version) for v in MlflowClient(uri).search_model_versions(f"name = '{name}'")]


def test_a_sentence_model_loads_with_the_sentence_transformers_flavor_and_its_folder(tmp_path) -> None:
    import mlflow.sentence_transformers
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "model"
    SentenceTransformer(resolve_model("sentence-transformers/all-MiniLM-L6-v2"), device="cpu").save(str(folder))
    (folder / "README.md").write_text("# the card prunetune wrote\n")
    uri, _, parent, job = a_search_run(tmp_path)
    trial = TrialConfig().with_overrides({"task": "sentence-similarity", "kept_layers": [0, 1, 2, 3, 4, 5]})

    model_uri, registered = log_model(uri, job, parent, folder, trial, FACTS, register=None)

    assert registered is None
    logged = mlflow.sentence_transformers.load_model(model_uri)
    direct = SentenceTransformer(str(folder), device="cpu")
    assert torch.allclose(torch.tensor(logged.encode(TEXTS)), torch.tensor(direct.encode(TEXTS)))


def test_the_model_card_names_what_made_the_model() -> None:
    trial = TrialConfig().with_overrides({"kept_layers": [3, 4, 5], "drop.strategy": "bottom", "drop.count": 3})
    card = model_card(trial, [("drop vs the reference", "+0.42 points [−0.10, +0.95]")], "prunetune max-drop spec.yaml")
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification\n")
    for shown in ("| layers kept | [3, 4, 5] |", "| strategy | bottom |", "+0.42 points [−0.10, +0.95]",
                  "prunetune max-drop spec.yaml", f"| learning rate | {trial.training.learning_rate:g} |"):  # fmt: skip
        assert shown in card


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_a_model_kept_by_its_re_check_becomes_the_answers_model_without_a_job_more(tmp_path) -> None:
    """max-drop's answer is the model its re-check on the first decision seed kept: moved into place from where it
    waited (found again as a resumed driver would), its card written, logged to the re-check's run."""
    from prunetune.search.answer_model import keep_trained, kept_trained, save_answer_model
    from prunetune.search.context import SearchContext
    from prunetune.search.spec import load_spec
    from prunetune.search.trainable import MODEL_FILES

    made = tmp_path / "made"
    tiny_classifier(made)
    files = {str(p.relative_to(made)): p.read_bytes() for p in made.rglob("*") if p.is_file()}
    uri, client, parent, recheck = a_search_run(tmp_path)
    result = {"val_score": 0.61, "test_score": 0.6, "kept_layers": [0, 5], MODEL_FILES: files}
    waiting = tmp_path / "recheck-models" / "model-kept-0-5"
    kept = keep_trained(result, recheck, waiting)
    assert MODEL_FILES not in result and kept_trained(waiting) == kept  # a resumed driver finds it whole
    assert kept_trained(tmp_path / "recheck-models" / "another") is None

    spec = load_spec(None, {"tracking_uri": uri, "trial.kept_layers": "[0, 5]", "trial.training.seed": 43})
    ctx = SearchContext(spec, client, client.get_run(parent).info.experiment_id, parent, lambda line: None)
    experiment = ctx.experiment
    runs_before = len(client.search_runs([experiment]))
    saved = save_answer_model(ctx, spec.trial, tmp_path / "answer", FACTS, trained=kept_trained(waiting))

    assert len(client.search_runs([experiment])) == runs_before  # no job more
    assert saved.run_id == recheck and saved.scores == {"val_score": 0.61, "test_score": 0.6}
    assert not waiting.exists() and kept_trained(waiting) is None  # moved, its note gone
    assert "| this model's val score | 0.6100 |" in (saved.path / "README.md").read_text()
    assert client.get_logged_model(saved.model_uri.removeprefix("models:/")).source_run_id == recheck
    direct = AutoModelForSequenceClassification.from_pretrained(made).eval()
    moved = AutoModelForSequenceClassification.from_pretrained(saved.path).eval()
    batch = AutoTokenizer.from_pretrained(saved.path)(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(moved(**batch).logits, direct(**batch).logits)
