"""Run a search, as the flow of docs/design.md §1: the tuned reference and the shared work once, then Optuna
trials on Ray Tune, every job recorded in MLflow. The steps live in their own modules; this one wires them."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunetune.search.answer_model import ModelFacts, SavedModel, save_answer_model
from prunetune.search.context import Say, SearchContext
from prunetune.search.decide import TunedReference
from prunetune.search.disk import DropFinishedCheckpoints, trial_folder_name
from prunetune.search.jobs import numbers
from prunetune.search.packing import memory_probe, resolve_resources
from prunetune.search.reference import tuned_reference
from prunetune.search.scratch import scratch_baselines
from prunetune.search.shared import (
    SharedWork,
    check_depths,
    check_resources,
    check_storage,
    layer_scores,
    model_num_layers,
    prepared_data,
    share,
    this_machine,
)
from prunetune.search.spec import SearchSpec, droppable_depths, ray_address, trial_counts, trials_per_depth, with_trials
from prunetune.search.store import (
    TrackingClient,
    TrackingError,
    TrackingUnreachable,
    check_answers,
    experiment_id,
    open_store,
    paged_runs,
    search_lock,
    shared_view_state,
    store_lock,
    ui_link,
)
from prunetune.search.teacher import distills, teach
from prunetune.search.tracking import TrialRecorder, close_interrupted, log_params_and_metrics, recorded_results

from prunetune import stops
from prunetune.config import TrialConfig, flat_params
from prunetune.libs import optuna, ray, tune
from prunetune.records import (
    COMPLETE,
    KIND_MODEL,
    KIND_RECHECK,
    KIND_REFERENCE,
    KIND_SCRATCH,
    KIND_SEARCH,
    LAYER_SCORES_ARTIFACT,
    RUNNING,
    SPEC_ARTIFACT,
    TAG_ANSWER,
    TAG_BEST,
    TAG_KIND,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_STORAGE,
    TRIAL_PHASE_SECONDS,
    LayerScores,
    budget_unit,
    counted,
    in_budget_unit,
    preference,
    runs_where,
    trial_status,
)

log = logging.getLogger(__name__)
# The columns the link to MLflow opens its runs table on, the search's trials unfolded: what a user decides on.
VIEW_PARAMS = ("drop.strategy", "kept_layers", "training.learning_rate", "training.epochs")
VIEW_METRICS = ("layers_dropped", "val_score", "drop")  # a trial run logs them per epoch
VIEW_TAGS = (TAG_STATUS, TAG_ANSWER)
# The spec's values a user filters searches by, as the search run's params; the whole spec is its artifact.
SEARCH_PARAMS = (
    "trial.model", "trial.task", "trial.data.source", "budget.tolerance", "budget.relative", "num_trials", "seeds",
    "space.strategies", "objective",
)  # fmt: skip


@dataclass(frozen=True)
class SearchResult:
    spec: SearchSpec  # as it ran: gpus_per_trial "auto" and an unset max_concurrent resolved to numbers
    parent_run_id: str
    reference: TunedReference  # the tuned reference the budget was measured against
    trials: int
    best: dict[str, Any] | None  # the best feasible trial: strategy, kept layers, score, drop, lr, epochs
    experiment_path: str
    # What the search computed once (the tokenized data, the teacher's outputs), in Ray's object store: max-drop's
    # re-checks read it too, instead of preparing it once per job.
    shared: SharedWork | None = None
    model: SavedModel | None = None  # the best trial's model, trained once more with its weights kept

    @property
    def reference_score(self) -> float:
        return self.reference.score


@dataclass(frozen=True)
class Store:
    """Where a search records: its MLflow experiment and parent run, and Tune's experiment folder."""

    tracking_uri: str
    mlflow: TrackingClient
    experiment: str
    parent: str
    experiment_path: str
    resuming: bool  # Tune's own state is restored (else the trials start afresh)


Checked = tuple[int, Any, list[dict[str, Any]]]  # the model's layers, the prepared data, its dataset records


def refuse_early(spec: SearchSpec) -> Checked:
    """Everything that can be refused, refused before anything is made (no folder, lock, store or Ray):
    the model and its depth, the space, the storage, the tracking store, the data (read and checked here)."""
    from prunetune.search.searcher import check_space

    num_layers = model_num_layers(spec.trial.model)
    check_space(spec, num_layers)
    check_depths(spec, num_layers)
    check_storage(spec)
    if ray_address(spec) is None:  # a local Ray: this machine is its node (an "auto" GPU share asks for CPUs only)
        cpus_first = (
            spec.with_overrides({"resources.gpus_per_trial": 0}) if spec.resources.gpus_per_trial == "auto" else spec
        )
        check_resources(cpus_first, [this_machine()])
    check_answers(spec.resolved_tracking_uri())  # an MLflow store that cannot be opened, or does not answer
    prepared, inputs = prepared_data(spec)  # bad data ends here, before Ray or MLflow
    return num_layers, prepared, inputs


def run_search(
    spec: SearchSpec,
    *,
    resume: bool = False,
    say: Say = print,
    save_best: bool = True,
    register: str | None = None,
    checked: Checked | None = None,
    tolerances: tuple[float, ...] = (),
) -> SearchResult:
    """Run (or with ``resume`` continue) the search ``spec`` and return its best feasible trial, with its
    model when ``save_best`` and ``spec.save_model`` (registered in MLflow as ``register`` if given).
    ``checked``: what :func:`refuse_early` returned, when the caller ran it already. ``tolerances``: every tolerance
    the caller will decide (max-drop's), where the search looks for answers still open; () for the budget's alone."""
    num_layers, prepared, inputs = checked or refuse_early(spec)
    with search_lock(spec.storage, spec.name):  # a second driver on this search is refused here
        refuse_another_driver(spec, resume)  # and one on the same tracking server from another folder
        if spec.num_trials is None:
            say(trials_line(spec, num_layers))
        spec = with_trials(spec, num_layers)
        _init_ray(spec)
        stops.reclaim()  # ray.init installed its own SIGTERM handler, which exits with no clean-up
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]
        spec = resolve_resources(spec, nodes, lambda: memory_probe(spec), say)  # as it runs, and is recorded
        check_resources(spec, nodes)
        store = _open_store(spec, resume, say)
        stage = _Stage()
        try:
            return _search(spec, store, stage, num_layers, prepared, inputs, say, save_best, register, tolerances)
        except KeyboardInterrupt:  # SIGINT or SIGTERM (prunetune.stops), wherever the driver waited
            raise _stop(spec, store, stage, say) from None


def trials_line(spec: SearchSpec, num_layers: int) -> str:
    """What the terminal says of the trial count before the search, e.g. "num_trials unset: at least 10 trials (2
    per depth the search may drop, 1 to 5 of 6 layers), then on while an answer is still open, at most 25; --set
    num_trials=N for a fixed count"."""
    least, most = trial_counts(spec, num_layers)
    depths = droppable_depths(spec.space, num_layers)
    counts = f"{depths.start}" if len(depths) == 1 else f"{depths.start} to {depths.stop - 1}"
    per_depth = f"{trials_per_depth(spec.space)} per depth the search may drop, " if spec.min_trials is None else ""
    return (
        f"num_trials unset: at least {least} trials ({per_depth}{counts} of {num_layers} layers), then on while an "
        f"answer is still open, at most {most}; --set num_trials=N for a fixed count"
    )


@dataclass
class _Stage:
    """Where a search is, for the line a stop prints and what it closes."""

    phase: str = "while training the reference"
    recorder: TrialRecorder | None = None
    results: Any = None  # Tune's results, once fit has returned


def _search(
    spec: SearchSpec,
    store: Store,
    stage: _Stage,
    num_layers: int,
    prepared: Any,
    inputs: list[dict[str, Any]],
    say: Say,
    save_best: bool,
    register: str | None,
    tolerances: tuple[float, ...] = (),
) -> SearchResult:
    # The prepared data: one copy in the object store, read once per process.
    ctx = SearchContext(spec, store.mlflow, store.experiment, store.parent, say, share(prepared))
    reference = tuned_reference(ctx)
    stage.phase = "while training the scratch baselines"
    scratch_baselines(ctx, num_layers, reference)
    if distills(spec):
        stage.phase = "while training the teacher"
        ctx = ctx.sharing(teach(ctx, reference, [split["digest"] for split in inputs]))
    shared = ctx.shared
    stage.phase = "while scoring the layers"
    scores = layer_scores(spec)
    _log_text(store.mlflow, store.parent, spec.storage / spec.name / LAYER_SCORES_ARTIFACT, scores.to_json())

    stage.phase = "before the first trial"
    recorder = stage.recorder = TrialRecorder(
        store.tracking_uri,
        store.experiment,
        store.parent,
        spec.name,
        spool_path(spec),
        spec.tracking_patience_s,
        inputs,
        (_optuna_url(spec), _study_name(spec, store.parent)),
    )
    replayed = recorder.replay()  # what a driver killed during an outage had not delivered, first
    if replayed:
        say(f"{replayed} record(s) the last driver could not deliver to MLflow: delivering them now")
        recorder.flush()  # before Tune resumes: a trial closed in them is not trained again
        if recorder.unreachable:
            raise recorder.stopped()
    callbacks = [recorder, _progress(spec, say)] + ([] if spec.keep_checkpoints else [DropFinishedCheckpoints()])
    tuner, searcher = _tuner(spec, store, reference, scores, num_layers, shared, callbacks, say, tolerances)
    started = time.monotonic()
    stage.phase = "during the trials"
    try:
        with stops.tune_loop():  # a stop signal asks Tune to stop its trials and save its state
            results = stage.results = tuner.fit()
    except Exception as err:
        # One line, not Tune's traceback. A resumed Tune runs the recorder it pickled at the start, not
        # this one, so the stop is also looked for in the exception's chain.
        stop = recorder.stopped() if recorder.unreachable else _tracking_stop(err)
        if stop is not None:
            raise stop from None
        raise
    stops.raise_if_requested()  # Tune stopped for a signal: its results are not the search's
    if searcher is not None and searcher.stop_reason:
        say(searcher.stop_reason)
    lost_runs, lost_optuna = recorder.settle(results), _fail_orphaned_optuna_trials(spec, store.parent)
    if lost_runs or lost_optuna:
        say(
            f"{lost_runs} trial run(s) lost with the killed driver closed as interrupted, "
            f"{lost_optuna} Optuna trial(s) told FAIL"
        )
    trial_phase = time.monotonic() - started  # Tune's trials alone: benchmarks 3 and 6 compare it to a loop
    best, best_trial, best_id = _best_feasible(results)
    if best is not None and best_id is not None and save_best:  # max-drop's search only picks: it marks its own
        budget = in_budget_unit(spec.budget.tolerance, spec.budget.relative)
        mark_answer(ctx, str(best_id), f"search answer: the deepest drop within {budget}")
    model = None
    if best is not None and best_trial is not None and save_best and spec.save_model:
        stage.phase = "while training the answer's model"
        model = _save_best(ctx, reference, best, best_trial, register)
    _close_search(store, best, {"trials": len(results), TRIAL_PHASE_SECONDS: trial_phase})
    return SearchResult(spec, store.parent, reference, len(results), best, store.experiment_path, shared, model)


def _stop(spec: SearchSpec, store: Store, stage: _Stage, say: Say) -> stops.Interrupted:
    """Close what a stopped search had open, and say how far it got: its jobs cancelled, its runs closed as
    interrupted (the search's own run too), its running Optuna trials told FAIL. Tune saved its own state
    before ``fit`` returned. ``--resume`` continues from here."""
    say(f"stopping {stage.phase}: cancelling the running jobs and closing their records (again to quit at once)")
    if ray.is_initialized():
        ray.shutdown()  # cancels this driver's tasks and trials, on every node
    if stage.recorder is not None:
        stage.recorder.settle(stage.results or [])  # a trial cut short: interrupted, with its epochs so far
    _fail_orphaned_optuna_trials(spec, store.parent)
    close_running_runs(spec, store.mlflow, store.experiment)
    if stage.recorder is not None:
        done = len(recorded_results(store.mlflow, store.experiment, store.parent))
        return stops.interrupted(f"after {done} of {spec.trials} trials")
    return stops.interrupted(stage.phase)


def close_running_runs(
    spec: SearchSpec, mlflow: TrackingClient, experiment: str, kinds: tuple[str, ...] = ()
) -> list[Any]:
    """The search's runs still RUNNING (of ``kinds``; none given: every kind, its own run too), closed as
    interrupted; the runs closed."""
    running = runs_where("RUNNING", search=spec.name)
    found = list(paged_runs(mlflow, [experiment], running))  # in full first: closing changes the filter
    closed = [run for run in found if not kinds or run.data.tags.get(TAG_KIND) in kinds]
    for run in closed:
        close_interrupted(mlflow, run.info.run_id)
    return closed


def _tracking_stop(err: BaseException | None) -> TrackingUnreachable | None:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, TrackingUnreachable):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def render_search(result: SearchResult, tolerance: float, relative: bool) -> str:
    """The search's answer as a person reads it: the reference, the best trial within the budget, the model."""
    lines = [
        f"reference: {result.reference.describe()}",
        f"trials: {result.trials}; MLflow search run {result.parent_run_id}; Ray results {result.experiment_path}",
        "",
    ]
    best, budget = result.best, in_budget_unit(tolerance, relative)
    if best is None:
        lines.append(f"no trial stayed within the budget ({budget}): widen it, or search more trials")
        return "\n".join(lines)
    lines += [
        "| layers dropped | strategy | kept layers | lr | epochs | val_score | drop |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {best['layers_dropped']} | {best['strategy']} | {best['kept_layers']} | {best['learning_rate']:.1e} | "
        f"{best['epochs']} | {best['val_score']:.4f} | {in_budget_unit(best['drop'], signed=True)} |",
        "",
        f"drop in {budget_unit(relative)}, within the budget of {budget}; the score is the best of the search's trials "
        "on one seed (biased upward): `prunetune max-drop` re-checks answers over seeds",
    ]
    if result.model is not None:
        lines.append(f"model: {result.model.path} (MLflow {result.model.model_uri})")
    return "\n".join(lines)


def _save_best(
    ctx: SearchContext, reference: TunedReference, best: dict[str, Any], trial: TrialConfig, register: str | None
) -> SavedModel:
    spec = ctx.spec
    drop = in_budget_unit(best["drop"], spec.budget.relative, signed=True)
    facts = [
        ("search", f"{spec.name}, MLflow run {ctx.parent}"),
        ("reference", reference.describe()),
        ("search's score", f"{best['val_score']:.4f} on seed {trial.training.seed} (the best of the search's trials)"),
        ("drop", f"{drop} (tolerance {in_budget_unit(spec.budget.tolerance)})"),
    ]
    folder = spec.storage / spec.name / "model"
    metrics = {
        "drop": float(best["drop"]),
        "tolerance": spec.budget.tolerance,
        "selection_score": float(best["val_score"]),
    }
    return save_answer_model(ctx, trial, folder, ModelFacts(facts, metrics, {"answers": "search"}), register)


def _open_store(spec: SearchSpec, resume: bool, say: Say) -> Store:
    """The MLflow experiment and the search's parent run (the same one again on resume)."""
    tracking_uri = spec.resolved_tracking_uri()
    server = tracking_uri.startswith(("http://", "https://"))
    local = None if server else (spec.storage / "mlartifacts").as_uri()
    with store_lock(spec.storage):  # creating the SQLite stores is one process's job at a time
        mlflow = open_store(tracking_uri, spec.tracking_patience_s)  # every driver call rides out an outage
        experiment = experiment_id(mlflow, spec.name, local)
        optuna.storages.RDBStorage(_optuna_url(spec))
    experiment_path = f"{spec.ray_storage.rstrip('/')}/{spec.name}"
    # A search killed before Tune started (in its reference sweep, say) has a parent run but no Tune state:
    # it is continued all the same, its trials started afresh.
    continuing = resume and (spec.storage / spec.name / "parent_run_id").exists()
    restoring = continuing and tune.Tuner.can_restore(experiment_path)
    if resume and not continuing:
        say(f"nothing to resume at {spec.storage / spec.name}: starting a new search")
    parent = _parent_run(spec, mlflow, experiment, continuing)
    say(f"search {spec.name}: MLflow {tracking_uri} (experiment {experiment}, parent run {parent})")
    # The link opens the runs table on the columns that read a search (MLflow keeps columns per browser).
    view_key, view = search_view()
    mlflow.set_experiment_tag(experiment, view_key, view)  # the same tag on every start
    say(f"search {spec.name}: watch it in {ui_link(tracking_uri, experiment, view_key)}")
    if continuing:
        _close_interrupted_jobs(spec, mlflow, experiment, say)
    return Store(tracking_uri, mlflow, experiment, parent, experiment_path, restoring)


# The view's sort: the deepest drops first, which lists the trials flat, not folded under the search's run.
VIEW_ORDER = ("metrics.`layers_dropped`", False)


def search_view() -> tuple[str, str]:
    """(experiment tag key, value) of the MLflow view the search's link opens: every run flat, the deepest drops
    first, with the columns a user decides on (:data:`VIEW_PARAMS`, :data:`VIEW_METRICS`, :data:`VIEW_TAGS`)."""
    return shared_view_state(list(VIEW_METRICS), list(VIEW_TAGS), params=VIEW_PARAMS, order_by=VIEW_ORDER)


def _init_ray(spec: SearchSpec) -> None:
    if ray.is_initialized():
        return
    address = ray_address(spec)
    # Trials must see the same data folder and cache as the driver, wherever they run; Ray's workers do not
    # start in the driver's directory, so a relative folder is made absolute here.
    env = {k: os.path.abspath(os.environ[k]) for k in ("PRUNETUNE_DATA_DIR", "PRUNETUNE_CACHE_DIR") if k in os.environ}
    env |= {k: os.environ[k] for k in ("HF_HUB_OFFLINE",) if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    # Ray's own warnings at start (token authentication on a local cluster, say) only with -v: the terminal
    # shows the search. Its errors always.
    level = logging.WARNING if logging.getLogger().isEnabledFor(logging.INFO) else logging.ERROR
    if address is None:
        ray.init(include_dashboard=False, runtime_env=runtime_env, logging_level=level)
    else:
        ray.init(address=address, runtime_env=runtime_env, logging_level=level)


def _progress(spec: SearchSpec, say: Say) -> Any:
    from prunetune.search.progress import Progress

    return Progress(spec, say)


def _tuner(
    spec: SearchSpec,
    store: Store,
    reference: TunedReference,
    scores: LayerScores,
    num_layers: int,
    shared: SharedWork | None,
    callbacks: list[Any],
    say: Say,
    tolerances: tuple[float, ...] = (),
) -> tuple[Any, Any]:
    """Tune's experiment, and prunetune's searcher when new (a resumed experiment restores its own, with the Optuna
    state)."""
    from prunetune.search.searcher import BudgetSearch
    from prunetune.search.space import OBJECTIVE, warm_start_line
    from prunetune.search.trainable import run_trial

    # The data travel as a SharedWork (a reference): trials read the same single copy as the baselines,
    # once per trial process.
    recorded = recorded_results(store.mlflow, store.experiment, store.parent) if store.resuming else {}
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            spec=spec,
            reference_score=reference.score,
            num_layers=num_layers,
            shared=shared,
            recorded=recorded,
        ),
        {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus},
    )
    if store.resuming:
        restored = tune.Tuner.restore(
            store.experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True
        )
        return restored, None
    searcher = BudgetSearch(
        spec,
        num_layers,
        scores,
        anchor_lr=reference.learning_rate,  # space.learning_rate_scale multiplies the tuned reference's
        storage=optuna.storages.RDBStorage(_optuna_url(spec)),
        study_name=_study_name(spec, store.parent),
        links={"mlflow_search_run_id": store.parent, "mlflow_experiment_id": store.experiment},
        tolerances=tolerances,
    )
    if searcher.warm_start:
        say(warm_start_line(searcher.warm_start, searcher.space.learning_rate(searcher.warm_start[0])))
    multi = spec.objective == "multi"
    max_epochs = int(spec.space.epochs[1])
    scheduler = (
        tune.schedulers.ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=1, reduction_factor=2)
        if spec.scheduler == "asha" and not multi and max_epochs > 1
        else tune.schedulers.FIFOScheduler()  # type: ignore[no-untyped-call]
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=tune.search.ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent or 1),
            scheduler=scheduler,
            num_samples=spec.trials,
            metric=None if multi else OBJECTIVE,
            mode=None if multi else "max",
            # A trial process is kept for the next trial: no interpreter start and torch import
            # per trial (benchmark 3).
            reuse_actors=True,
            trial_dirname_creator=trial_folder_name,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.ray_storage,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # only the last epoch's state
            verbose=0,
        ),
    )
    return tuner, searcher


def mark_answer(ctx: SearchContext, trial_id: str, answers: str) -> None:
    """Tag the run of the trial ``trial_id`` with what it answers (:data:`TAG_ANSWER`), for the runs table."""
    for run in ctx.mlflow.search_runs([ctx.experiment], runs_where(parent=ctx.parent, trial=trial_id), max_results=1):
        ctx.mlflow.set_tag(run.info.run_id, TAG_ANSWER, answers)


def describe_answer(best: dict[str, Any]) -> str:
    """The answer in one line, as the search's run shows it."""
    return (
        f"{best['layers_dropped']} layers dropped: {best['strategy']} kept {best['kept_layers']}, "
        f"lr {best['learning_rate']:.1e}, {counted(best['epochs'], 'epoch')}, val_score {best['val_score']:.4f}"
    )


def _close_search(store: Store, best: dict[str, Any] | None, summary: dict[str, Any]) -> None:
    """The search's run: its summary metrics, the best result as a tag, FINISHED. The best result's
    :data:`VIEW_METRICS` (and layers kept) also go under their own names, and the answer in one line as
    :data:`TAG_ANSWER`, so the search's row in MLflow's runs table reads as its answer."""
    if best is not None:
        summary |= {f"best_{k}": v for k, v in best.items() if isinstance(v, (int, float))}
        summary |= {k: best[k] for k in (*VIEW_METRICS, "layers_kept") if k in best}
    log_params_and_metrics(store.mlflow, store.parent, {}, numbers(summary))
    if best is not None:
        store.mlflow.set_tag(store.parent, TAG_BEST, json.dumps(best))
        store.mlflow.set_tag(store.parent, TAG_ANSWER, describe_answer(best))
    store.mlflow.set_tag(store.parent, TAG_STATUS, COMPLETE)  # over an "interrupted" a stop left
    store.mlflow.set_terminated(store.parent, "FINISHED")


def _log_text(mlflow: TrackingClient, run_id: str, path: Any, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mlflow.log_artifact(run_id, str(path))


def storage_id(spec: SearchSpec) -> str:
    """Where a driver keeps a search's state: its host and its storage folder (:data:`TAG_STORAGE`)."""
    return f"{socket.gethostname()}:{spec.storage}"  # spec.storage is already absolute


def refuse_another_driver(spec: SearchSpec, resume: bool) -> None:
    """A search of this name running from another storage folder on this tracking server is refused in one line,
    before Ray starts: the two drivers' locks do not meet (:func:`search_lock` guards one folder), and they would
    train the reference twice and mix their trials in one experiment. A running search run from this very
    folder has a dead driver (this one holds the folder's lock): it is no reason to refuse."""
    uri = spec.resolved_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return  # a store not made yet holds no search
    mlflow = open_store(uri, spec.tracking_patience_s)
    experiment = mlflow.get_experiment_by_name(spec.name)
    if experiment is None:
        return
    marker = spec.storage / spec.name / "parent_run_id"
    own = marker.read_text().strip() if resume and marker.exists() else None
    here = storage_id(spec)
    running = runs_where("RUNNING", kind=KIND_SEARCH, search=spec.name)
    for run in paged_runs(mlflow, [experiment.experiment_id], running):
        theirs = run.data.tags.get(TAG_STORAGE)
        if run.info.run_id == own or theirs in (None, here):
            continue
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
        raise TrackingError(
            f"search {spec.name} is already running on this tracking server from {theirs} (run {run.info.run_id}, "
            f"started {started}): give this one another name (--set name=...), or wait for it; if its driver "
            "died, `--resume` it from that storage_path, which closes its run"
        )


def _parent_run(spec: SearchSpec, mlflow: TrackingClient, experiment: str, resume: bool) -> str:
    marker = spec.storage / spec.name / "parent_run_id"
    if resume and marker.exists():
        parent = marker.read_text().strip()
        if mlflow.get_run(parent).info.status != "RUNNING":  # closed as interrupted by a stop: open again
            mlflow.update_run(parent, status="RUNNING")
            mlflow.set_tag(parent, TAG_STATUS, RUNNING)
        return parent
    tags = {TAG_KIND: KIND_SEARCH, TAG_SEARCH: spec.name, TAG_STORAGE: storage_id(spec)}
    run = mlflow.create_run(experiment, run_name=spec.name, tags=tags)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(run.info.run_id)
    _log_text(mlflow, run.info.run_id, spec.storage / spec.name / SPEC_ARTIFACT, json.dumps(spec.to_dict(), indent=2))
    # The spec's values a user filters on as params too ("spec." keeps them apart from the tuned reference's
    # own); the rest stay in the spec artifact, where a base trial value does not read as a result.
    every = flat_params(spec.to_dict(), "spec.")
    log_params_and_metrics(mlflow, run.info.run_id, {f"spec.{k}": every[f"spec.{k}"] for k in SEARCH_PARAMS}, {})
    return str(run.info.run_id)


def spool_path(spec: SearchSpec) -> Any:
    """The durable spool of the search's trial records (:mod:`prunetune.search.spool`)."""
    return spec.storage / spec.name / "mlflow-spool.jsonl"


def _optuna_url(spec: SearchSpec) -> str:
    return f"sqlite:///{spec.storage / 'optuna.db'}"


def _study_name(spec: SearchSpec, parent_run_id: str) -> str:
    return f"{spec.name}-{parent_run_id[:8]}"


def _close_interrupted_jobs(spec: SearchSpec, mlflow: TrackingClient, experiment: str, say: Say) -> None:
    """On resume: the reference or scratch job the killed driver was waiting for is closed as interrupted
    (it is trained again; an open run would otherwise stay RUNNING for ever)."""
    for run in close_running_runs(spec, mlflow, experiment, (KIND_REFERENCE, KIND_SCRATCH, KIND_RECHECK, KIND_MODEL)):
        say(f"{run.data.tags[TAG_KIND]} run {run.info.run_id} was interrupted with the driver: closed, trained again")


def _fail_orphaned_optuna_trials(spec: SearchSpec, parent_run_id: str) -> int:
    """Optuna trials still RUNNING once Tune has finished belong to trials lost with a killed driver:
    told FAIL, so the study (and optuna-dashboard) shows no trial running for ever."""
    name = _study_name(spec, parent_run_id)
    storage = _optuna_url(spec)
    if name not in optuna.study.get_all_study_names(storage):
        return 0
    study = optuna.load_study(study_name=name, storage=storage)
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


def _best_feasible(results: Any) -> tuple[dict[str, Any] | None, TrialConfig | None, str | None]:
    """The best finished feasible trial (:func:`records.preference`): its summary, its config, its Ray trial id."""
    best, best_trial, best_id = None, None, None
    for result in results:
        metrics = result.metrics or {}
        if not metrics.get("feasible") or result.error:
            continue
        trial = result.config["trial"]
        if trial_status(trial["training"]["epochs"], int(metrics.get("epoch", 0))) != COMPLETE:
            continue  # stopped early: not a finished model
        row = {
            "strategy": trial["drop"]["strategy"],
            "kept_layers": trial["kept_layers"],
            "layers_dropped": int(metrics["layers_dropped"]),
            "layers_kept": len(trial["kept_layers"]),
            "val_score": metrics["val_score"],
            "drop": metrics["drop"],
            "learning_rate": trial["training"]["learning_rate"],
            "epochs": trial["training"]["epochs"],
        }
        if best is None or preference(row["layers_dropped"], row["val_score"]) > preference(
            best["layers_dropped"], best["val_score"]
        ):
            best, best_trial, best_id = row, TrialConfig.from_dict(trial), metrics.get("trial_id")
    return best, best_trial, best_id
