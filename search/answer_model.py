"""The answer as a model: the winning configuration trained once more with its weights kept, saved in Hugging
Face (classification) or sentence-transformers format with a model card, and logged to the search's run as an
MLflow model (``transformers`` or ``sentence_transformers`` flavor), registered under a name if asked.

Trials keep no weights (a search of a thousand trials would keep a thousand models), so a search's answer's model
is one more job: its configuration and seed are the answer's, its own scores are measured and written on its card.
max-drop's answers were all re-trained on the first decision seed already, so there each re-check on that seed keeps
its model (:func:`keep_trained`) and the answer's is the one its re-check trained (``trained``), not a job more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunetune.search.context import Say, SearchContext
from prunetune.search.jobs import run_jobs
from prunetune.search.store import TrackingClient
from prunetune.search.trainable import MODEL_FILES
from prunetune.trainables.jobs import run_job

from prunetune.config import TrialConfig
from prunetune.errors import PrunetuneError
from prunetune.libs import huggingface_hub, mlflow_entities, mlflow_fluent, sentence_transformers, transformers
from prunetune.records import JOB_KINDS, KIND_MODEL, PARENT, TAG_KIND, TAG_SEARCH, TAG_TEACHER, counted, final_value

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "ExportError", "ModelFacts", "SavedModel", "command", "describe_model", "export_run", "keep_trained",
    "kept_trained", "layers_kept", "log_model", "model_card", "model_params", "save_answer_model"
]  # fmt: skip


@dataclass(frozen=True)
class SavedModel:
    path: Path  # the model's folder: from_pretrained / SentenceTransformer(path) load it
    run_id: str  # the MLflow run of the job that trained it (a child of the search's run)
    model_uri: str  # the MLflow model logged to the search's run
    scores: dict[str, float]  # its own val/test scores
    registered: str | None = None  # "NAME version N" when registered


@dataclass(frozen=True)
class ModelFacts:
    """How an answer's model was chosen, for its card (``rows``, read by a person) and for MLflow (``metrics`` and
    ``tags`` of the logged model, beside its own scores)."""

    rows: list[tuple[str, str]]
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass(frozen=True)
class TrainedModel:
    """A job's model kept on disk before anyone knows whether it answers: its folder, the run that trained it, and
    that run's own scores."""

    folder: Path
    run_id: str
    scores: dict[str, float]


def keep_trained(result: dict[str, Any], run_id: str, folder: Path) -> TrainedModel:
    """The model a job kept (``result``'s :data:`MODEL_FILES`, taken out of it) written to ``folder``, with a note
    beside it naming its run and scores, so that a resumed driver finds it too (:func:`kept_trained`)."""
    _unpack(result.pop(MODEL_FILES), folder)
    trained = TrainedModel(folder, run_id, _own_scores(result))
    note = {"run_id": run_id, "scores": trained.scores}
    _note_of(folder).write_text(json.dumps(note), encoding="utf-8")  # after the folder: a note means it is whole
    return trained


def kept_trained(folder: Path) -> TrainedModel | None:
    """The model :func:`keep_trained` wrote to ``folder``, if it is there whole."""
    note = _note_of(folder)
    if not (folder.is_dir() and note.is_file()):
        return None
    found = json.loads(note.read_text(encoding="utf-8"))
    return TrainedModel(folder, str(found["run_id"]), {k: float(v) for k, v in found["scores"].items()})


def _note_of(folder: Path) -> Path:
    return folder.with_name(folder.name + ".json")


def save_answer_model(
    ctx: SearchContext,
    trial: TrialConfig,
    folder: Path,
    facts: ModelFacts,
    register: str | None = None,
    trained: TrainedModel | None = None,
) -> SavedModel:
    """Save ``trial``'s model with its card to ``folder`` and log it to the search's run: the model ``trained`` kept
    (the same configuration and seed) if given, else ``trial`` trained once more keeping its weights. ``facts``:
    the card's rows about how it was chosen (scores with intervals, the reference)."""
    if trained is None:
        ctx.say(f"model: training {_describe(trial)} once more to keep its weights")
        jobs = [(trial, KIND_MODEL, {PARENT: ctx.parent})]
        ((run_id, result),) = run_jobs(ctx, jobs, keep_model=True, progress=False)
        _unpack(result.pop(MODEL_FILES), folder)
        scores = _own_scores(result)
    else:
        seed = trial.training.seed
        ctx.say(f"model: {_describe(trial)} as its re-check on seed {seed} trained it (run {trained.run_id})")
        _replace(trained.folder, folder)
        _note_of(trained.folder).unlink(missing_ok=True)
        run_id, scores = trained.run_id, trained.scores
    measured = [(f"this model's {k.replace('_', ' ')}", f"{v:.4f}") for k, v in scores.items()]
    (folder / "README.md").write_text(model_card(trial, facts.rows + measured, command()), encoding="utf-8")
    own = ModelFacts(
        facts.rows, facts.metrics | scores | {"layers_kept": float(len(trial.kept_layers or []))}, facts.tags
    )
    model_uri, registered = log_model(
        ctx.spec.resolved_tracking_uri(), run_id, ctx.parent, folder, trial, own, register
    )
    ctx.say(
        f"model: saved to {folder}; MLflow model {model_uri}" + (f", registered as {registered}" if registered else "")
    )
    return SavedModel(folder, run_id, model_uri, scores, registered)


def export_run(mlflow: TrackingClient, run_id: str, folder: Path, say: Say) -> dict[str, Any]:
    """Re-create the model of any recorded job (a trial, a re-check, a reference, a baseline) from its config,
    here, without Ray: trained again, since trials keep no weights. Saves it with its card; its result."""

    run = _recorded_run(mlflow, run_id)
    trial = TrialConfig.from_flat(run.data.params)
    if trial.distill.on and trial.distill.teacher is None:  # taught by its search's teacher: re-created first
        teacher = _teacher_of(mlflow, run)
        say(f"export: run {run_id} learnt from its search's teacher, run {teacher}: re-creating that first")
        export_run(mlflow, teacher, folder / "teacher", say)
        trial = trial.with_overrides({"distill.teacher": str(folder / "teacher")})
    recorded = final_value(run.data.metrics, "val_score")
    say(f"export: training {_describe(trial)} again, as run {run_id} did (its weights were not kept)")
    result = run_job(trial, report=lambda metrics: None, output_dir=str(folder))
    facts = [("re-created from", f"MLflow run {run_id} ({run.data.tags.get(TAG_KIND)} {run.info.run_name})")]
    if recorded is not None:
        facts.append(("recorded val_score", f"{recorded:.4f}"))
    facts.append(("this model's val score", f"{float(result['val_score']):.4f}"))
    (folder / "README.md").write_text(model_card(trial, facts, command()), encoding="utf-8")
    return dict(result)


def _teacher_of(mlflow: TrackingClient, run: Any) -> str:
    """The run id of the teacher of ``run``'s search (a reference run tagged as the teacher)."""
    query = f"tags.`{TAG_TEACHER}` = 'true' and tags.`{TAG_SEARCH}` = '{run.data.tags.get(TAG_SEARCH)}'"
    found = mlflow.search_runs([run.info.experiment_id], filter_string=query, max_results=1)
    if not found:
        raise ExportError(f"run {run.info.run_id} learnt from a teacher, and its search recorded none to re-create")
    return str(found[0].info.run_id)


def _recorded_run(mlflow: TrackingClient, run_id: str) -> Run:
    try:
        run = mlflow.get_run(run_id)
    except Exception as err:
        if getattr(err, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ExportError(f"no MLflow run {run_id} in this store: pick one with `prunetune trials SEARCH`") from None
    kind = run.data.tags.get(TAG_KIND)
    if kind not in JOB_KINDS:
        raise ExportError(
            f"run {run_id} is a {kind or 'non-prunetune'} run, not a job: export one of its trials "
            "(`prunetune trials SEARCH` lists them with their run ids)"
        )
    return run


class ExportError(PrunetuneError, ValueError):
    """A run that cannot be exported: names it and what to export instead."""


def model_card(trial: TrialConfig, facts: list[tuple[str, str]], made_by: str) -> str:
    """A Hugging Face model card: metadata for the hub, then what the model is and how it was chosen."""
    t = trial.training
    library, pipeline = _LIBRARIES[trial.task]
    rows = [
        ("base model", trial.model),
        ("layers kept", str(list(trial.kept_layers or []))),
        ("strategy", trial.drop.strategy),
        ("task", trial.task),
        ("data", f"{trial.data.source} (at most {trial.data.max_train_rows or 'all'} training rows)"),
        ("learning rate", f"{t.learning_rate:g}"),
        ("epochs", str(t.epochs)),
        ("batch size", str(t.batch_size)),
        ("max length", str(t.max_length)),
        ("seed", str(t.seed)),
        *facts,
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return (
        f"---\nlibrary_name: {library}\npipeline_tag: {pipeline}\nbase_model: {trial.model}\n"
        "tags:\n- prunetune\n- layer-pruning\n---\n\n"
        f"# {trial.model}, {layers_kept(len(trial.kept_layers or []))}\n\n"
        "Layer-pruned and fine-tuned by prunetune: the layers listed "
        "were kept, the others dropped, and the model fine-tuned.\n\n"
        f"| | |\n| --- | --- |\n{table}\n\n"
        f"Made by:\n\n```\n{made_by}\n```\n"
    )


def model_params(trial: TrialConfig) -> dict[str, str]:
    """The configuration a model was trained with, as its MLflow params: what it is, not the spec's defaults."""
    t = trial.training
    return {
        "base_model": trial.model,
        "kept_layers": str(list(trial.kept_layers or [])),
        "strategy": trial.drop.strategy,
        "learning_rate": f"{t.learning_rate:g}",
        "epochs": str(t.epochs),
        "seed": str(t.seed),
        "task": trial.task,
    }


def log_model(
    tracking_uri: str,
    run_id: str,
    search_run_id: str,
    folder: Path,
    trial: TrialConfig,
    facts: ModelFacts,
    register: str | None,
) -> tuple[str, str | None]:
    """Log ``folder`` as an MLflow model of the task's flavor to the run that trained it (``run_id``), linked to the
    search's run as one of its outputs, with the trained configuration as params and its own scores (and how it
    was chosen) as metrics; registered as ``register`` with a description of what it is. (Model URI,
    registration.)"""
    fluent = mlflow_fluent
    fluent.set_tracking_uri(tracking_uri)
    name = f"pruned-{len(trial.kept_layers or [])}-layers"
    client = fluent.tracking.MlflowClient(tracking_uri)
    flavor = {"params": model_params(trial), "tags": facts.tags}
    with fluent.start_run(run_id=run_id), _quiet_flavors():
        if trial.task == "classification":
            components = {  # loaded, not the folder's path: MLflow's path logging misreads transformers 5's tasks
                "model": transformers.AutoModelForSequenceClassification.from_pretrained(folder),
                "tokenizer": transformers.AutoTokenizer.from_pretrained(folder),
            }
            info = fluent.transformers.log_model(
                transformers_model=components,
                name=name,
                task="text-classification",
                model_card=huggingface_hub.ModelCard((folder / "README.md").read_text(encoding="utf-8")),
                registered_model_name=register,
                pip_requirements=_requirements("transformers", "torch"),  # not inferred: that loads the model again
                **flavor,
            )
        else:
            info = fluent.sentence_transformers.log_model(
                sentence_transformers.SentenceTransformer(str(folder), device="cpu"),
                name=name,
                registered_model_name=register,
                pip_requirements=_requirements("sentence-transformers", "transformers", "torch"),
                **flavor,
            )
        fluent.log_metrics(facts.metrics, model_id=info.model_id)  # the model's own, on its page
    client.log_outputs(search_run_id, [mlflow_entities.LoggedModelOutput(info.model_id, 0)])  # the search's too
    registered = None
    if register is not None and info.registered_model_version is not None:
        version = str(info.registered_model_version)
        client.update_model_version(register, version, description=describe_model(trial, facts))
        registered = f"{register} version {version}"
    return str(info.model_uri), registered


def describe_model(trial: TrialConfig, facts: ModelFacts) -> str:
    """What a registered version is, in one paragraph (the registry's description)."""
    kept = list(trial.kept_layers or [])
    chosen = "; ".join(f"{name}: {value}" for name, value in facts.rows)
    return f"{trial.model} pruned by prunetune to {layers_kept(len(kept))} {kept} ({trial.drop.strategy}). {chosen}"


@contextlib.contextmanager
def _quiet_flavors() -> Iterator[None]:
    """The flavors warn that no license or hub card was found (the card is ours) and print upload progress."""
    loggers = [logging.getLogger(name) for name in ("mlflow.transformers", "mlflow.sentence_transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def command() -> str:
    """The command line that made the model, as the user typed it (the program's name, not its path)."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "prunetune"


_LIBRARIES = {
    "classification": ("transformers", "text-classification"),
    "sentence-similarity": ("sentence-transformers", "sentence-similarity"),
}


def _describe(trial: TrialConfig) -> str:
    t = trial.training
    kept = list(trial.kept_layers or [])
    return f"{trial.drop.strategy} kept {kept} (lr {t.learning_rate:.1e}, {counted(t.epochs, 'epoch')})"


def _requirements(*packages: str) -> list[str]:
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in packages]


def _own_scores(result: dict[str, Any]) -> dict[str, float]:
    return {k: float(result[k]) for k in ("val_score", "test_score") if isinstance(result.get(k), (int, float))}


def _unpack(files: dict[str, bytes], folder: Path) -> None:
    """Write the model's files to ``folder``, replacing an older model there only once all are written."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for relative, data in files.items():
        target = partial / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    _replace(partial, folder)


def _replace(source: Path, folder: Path) -> None:
    """Move the folder ``source`` to ``folder``, replacing what was there."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, folder)


def layers_kept(count: int) -> str:
    return f"{count} layer kept" if count == 1 else f"{count} layers kept"
