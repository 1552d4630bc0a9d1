"""Run a search: reference first, shared work once, then Optuna trials on Ray Tune, all recorded in MLflow."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from prunetune.search.decide import TunedReference
from prunetune.search.jobs import numbers, run_jobs
from prunetune.search.reference import tuned_reference
from prunetune.search.spec import SearchSpec, ray_address
from prunetune.search.store import client, experiment_id, paged_runs
from prunetune.search.tracking import TrialRecorder, close_interrupted, log_params_and_metrics
from prunetune.trainables.config import ConfigError

from prunetune.records import LAYER_SCORES_ARTIFACT, PARENT, SPEC_ARTIFACT, TAG_BEST, TAG_KIND, TAG_SEARCH, LayerScores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    parent_run_id: str
    reference: TunedReference  # the tuned reference the budget was measured against
    trials: int
    best: dict[str, Any] | None  # the best feasible trial: strategy, kept layers, score, drop, lr, epochs
    experiment_path: str

    @property
    def reference_score(self) -> float:
        return self.reference.score


@functools.lru_cache(maxsize=32)
def model_num_layers(model: str) -> int:
    """The layer count from the model's config alone (no weights loaded)."""
    from prunetune.trainables.models import loading, resolve_model
    from transformers import AutoConfig

    with loading(model):
        config = AutoConfig.from_pretrained(resolve_model(model))
    return int(config.num_hidden_layers)


def _init_ray(spec: SearchSpec) -> None:
    import ray

    if ray.is_initialized():
        return
    address = ray_address(spec)
    # Trials must see the same data folder and cache as the driver, wherever they run.
    env = {k: os.environ[k] for k in ("PRUNETUNE_DATA_DIR", "PRUNETUNE_CACHE_DIR", "HF_HUB_OFFLINE") if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    if address is None:
        ray.init(include_dashboard=False, runtime_env=runtime_env, logging_level=logging.WARNING)
    else:
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)


def _scratch_baselines(
    spec: SearchSpec, mlflow: Any, experiment: str, parent_run_id: str, num_layers: int, say: Any, prepared: Any
) -> None:
    """One model per depth in ``spec.scratch_layers``, trained from random init: "does pruning beat scratch?".
    Depths this search already trained (a resumed search) are not trained again."""
    done = {
        len(json.loads(run.data.tags.get("prunetune.kept_layers", "[]")))
        for run in mlflow.search_runs(
            [experiment],
            filter_string=f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{TAG_KIND}` = 'scratch' "
            f"and attributes.status = 'FINISHED'",
        )
    }
    depths = [depth for depth in spec.scratch_layers if depth not in done]
    if not depths:
        return
    say(f"scratch baselines: {depths} of {num_layers} layers, from random init")
    trials = [
        spec.trial.with_overrides({"drop.strategy": "none", "kept_layers": list(range(depth)), "variant": "scratch"})
        for depth in depths
    ]
    ran = run_jobs(spec, mlflow, experiment, [(t, "scratch", {PARENT: parent_run_id}) for t in trials], prepared)
    for depth, (_, result) in zip(depths, ran, strict=True):
        say(f"scratch baseline ({depth} layers): val_score {result['val_score']:.4f}")


def _prepared_data(spec: SearchSpec) -> Any:
    """A classification task's data, read and tokenized once here for every trial (None for other tasks)."""
    if spec.trial.task != "classification":
        return None
    from prunetune.trainables.models import load_tokenizer
    from prunetune.trainables.prepared import prepare_classification

    return prepare_classification(spec.trial, load_tokenizer(spec.trial.model), spec.trial.model)


def _layer_scores(spec: SearchSpec) -> LayerScores:
    """Contribution / angular scores of the model, computed once per search on the driver (one forward pass
    over a sample, cached by content): the strategies that need them read them, and the report plots them."""
    from prunetune.trainables.data import sample_texts
    from prunetune.trainables.models import load_any, tokenizer_of
    from prunetune.trainables.scores import compute_layer_scores

    model = load_any(spec.trial.model)
    texts = sample_texts(spec.trial.data, spec.trial.scores_sample_rows)
    return compute_layer_scores(
        model,
        tokenizer_of(model, spec.trial.model),
        texts,
        model_name=spec.trial.model,
        max_length=spec.trial.training.max_length,
    )


def _log_text(mlflow: Any, run_id: str, path: Any, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mlflow.log_artifact(run_id, str(path))


def _parent_run(spec: SearchSpec, mlflow: Any, experiment: str, resume: bool) -> str:
    marker = spec.storage / spec.name / "parent_run_id"
    if resume and marker.exists():
        return marker.read_text().strip()
    run = mlflow.create_run(experiment, run_name=spec.name, tags={TAG_KIND: "search", TAG_SEARCH: spec.name})
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(run.info.run_id)
    _log_text(mlflow, run.info.run_id, spec.storage / spec.name / SPEC_ARTIFACT, json.dumps(spec.to_dict(), indent=2))
    return run.info.run_id


def run_search(spec: SearchSpec, *, resume: bool = False, say: Any = print) -> SearchResult:
    """Run (or with ``resume`` continue) the search ``spec`` and return its best feasible trial."""
    import optuna
    from prunetune.search.progress import Progress
    from prunetune.search.searcher import BudgetSearch, check_space
    from prunetune.search.space import OBJECTIVE
    from prunetune.search.trainable import run_trial
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress lines, not Optuna's per-trial logs
    num_layers = model_num_layers(spec.trial.model)
    check_space(spec, num_layers)
    if any(not 1 <= depth <= num_layers for depth in spec.scratch_layers):
        raise ConfigError(
            f"scratch_layers={list(spec.scratch_layers)}: each depth must lie in 1..{num_layers} "
            f"({spec.trial.model} has {num_layers} layers)"
        )
    tracking_uri = spec.resolved_tracking_uri()
    spec.storage.mkdir(parents=True, exist_ok=True)
    mlflow = client(tracking_uri)
    server = tracking_uri.startswith(("http://", "https://"))
    local = None if server else (spec.storage / "mlartifacts").as_uri()
    experiment = experiment_id(mlflow, spec.name, local)
    experiment_path = f"{spec.ray_storage.rstrip('/')}/{spec.name}"
    resuming = resume and tune.Tuner.can_restore(experiment_path)
    if resume and not resuming:
        say(f"nothing to resume at {experiment_path}: starting a new search")
    parent = _parent_run(spec, mlflow, experiment, resuming)
    say(f"search {spec.name}: MLflow {tracking_uri} (experiment {experiment}, parent run {parent})")
    if resuming:
        _close_interrupted_jobs(spec, mlflow, experiment, say)

    _init_ray(spec)
    import ray

    prepared = _prepared_data(spec)
    shared = ray.put(prepared)  # one copy in the object store, for the baselines and every trial
    reference = tuned_reference(spec, mlflow, experiment, parent, say, shared)
    reference_score = reference.score
    _scratch_baselines(spec, mlflow, experiment, parent, num_layers, say, shared)
    scores = _layer_scores(spec)
    _log_text(mlflow, parent, spec.storage / spec.name / LAYER_SCORES_ARTIFACT, scores.to_json())

    # An ObjectRef given to with_parameters is passed on as it is (Ray's registry puts only other values):
    # trials read the same single copy as the baselines.
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, spec=spec, reference_score=reference_score, num_layers=num_layers, prepared=shared
        ),
        {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial},
    )
    recorder = TrialRecorder(tracking_uri, experiment, parent, spec.name)
    progress = Progress(spec, say)
    if resuming:
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        storage = optuna.storages.RDBStorage(_optuna_url(spec))
        searcher = BudgetSearch(
            spec,
            num_layers,
            scores,
            anchor_lr=reference.learning_rate,  # space.learning_rate_scale multiplies the tuned reference's
            storage=storage,
            study_name=_study_name(spec, parent),
        )
        multi = spec.objective == "multi"
        max_epochs = int(spec.space.epochs[1])
        scheduler = (
            ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=1, reduction_factor=2)
            if spec.scheduler == "asha" and not multi and max_epochs > 1
            else FIFOScheduler()
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent),
                scheduler=scheduler,
                num_samples=spec.num_trials,
                metric=None if multi else OBJECTIVE,
                mode=None if multi else "max",
                # A trial process is kept for the next trial: no interpreter start and torch import
                # per trial (benchmark 3).
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=spec.name,
                storage_path=spec.ray_storage,
                callbacks=[recorder, progress],
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # only the last epoch's state
                verbose=0,
            ),
        )
    started = time.monotonic()
    # Each epoch's checkpoint forces a snapshot of the experiment (num_to_keep=1), so a resume loses at most
    # the epoch in flight; Ray warns about it on every fast epoch. Measured cost: benchmark 3.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    results = tuner.fit()
    lost_runs, lost_optuna = recorder.settle(results), _fail_orphaned_optuna_trials(spec, parent)
    if lost_runs or lost_optuna:
        say(
            f"{lost_runs} trial run(s) lost with the killed driver closed as interrupted, "
            f"{lost_optuna} Optuna trial(s) told FAIL"
        )

    best = _best_feasible(results)
    summary = {"trials": len(results), "seconds": time.monotonic() - started}
    if best is not None:
        summary |= {f"best_{k}": v for k, v in best.items() if isinstance(v, (int, float))}
    log_params_and_metrics(mlflow, parent, {}, numbers(summary))
    if best is not None:
        mlflow.set_tag(parent, TAG_BEST, json.dumps(best))
    mlflow.set_terminated(parent, "FINISHED")
    return SearchResult(parent, reference, len(results), best, experiment_path)


def _optuna_url(spec: SearchSpec) -> str:
    return f"sqlite:///{spec.storage / 'optuna.db'}"


def _study_name(spec: SearchSpec, parent_run_id: str) -> str:
    return f"{spec.name}-{parent_run_id[:8]}"


def _close_interrupted_jobs(spec: SearchSpec, mlflow: Any, experiment: str, say: Any) -> None:
    """On resume: the reference or scratch job the killed driver was waiting for is closed as interrupted
    (it is trained again; an open run would otherwise stay RUNNING for ever)."""
    running = f"tags.`{TAG_SEARCH}` = '{spec.name}' and attributes.status = 'RUNNING'"
    for run in list(paged_runs(mlflow, [experiment], running)):  # in full first: closing changes the filter
        if run.data.tags.get(TAG_KIND) not in ("reference", "scratch", "recheck"):
            continue
        close_interrupted(mlflow, run.info.run_id)
        say(f"{run.data.tags[TAG_KIND]} run {run.info.run_id} was interrupted with the driver: closed, trained again")


def _fail_orphaned_optuna_trials(spec: SearchSpec, parent_run_id: str) -> int:
    """Optuna trials still RUNNING once Tune has finished belong to trials lost with a killed driver:
    told FAIL, so the study (and optuna-dashboard) shows no trial running for ever."""
    import optuna

    name = _study_name(spec, parent_run_id)
    storage = _optuna_url(spec)
    if name not in optuna.study.get_all_study_names(storage):
        return 0
    study = optuna.load_study(study_name=name, storage=storage)
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


def _best_feasible(results: Any) -> dict[str, Any] | None:
    best = None
    for result in results:
        metrics = result.metrics or {}
        if not metrics.get("feasible") or result.error:
            continue
        trial = result.config["trial"]
        if metrics.get("epoch", 0) < trial["training"]["epochs"]:
            continue  # stopped early: not a finished model
        row = {
            "strategy": trial["drop"]["strategy"],
            "kept_layers": trial["kept_layers"],
            "layers_dropped": int(metrics["layers_dropped"]),
            "val_score": metrics["val_score"],
            "drop": metrics["drop"],
            "learning_rate": trial["training"]["learning_rate"],
            "epochs": trial["training"]["epochs"],
        }
        if best is None or (row["layers_dropped"], row["val_score"]) > (best["layers_dropped"], best["val_score"]):
            best = row
    return best
