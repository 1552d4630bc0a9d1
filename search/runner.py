"""Run a search, as the flow of docs/design.md §1: the tuned reference and the shared work once, then Optuna
trials on Ray Tune, every job recorded in MLflow. The steps live in their own modules; this one wires them:
what is refused before anything starts, the search's store, the phases, and what a stop closes.

Importing it loads Ray (:mod:`.tuner` subclasses Tune's classes): the command line imports it when a search
runs, not for its light commands."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunetune.search.answer_model import ModelFacts, SavedModel, save_answer_model
from prunetune.search.context import Say, SearchContext
from prunetune.search.decide import TunedReference
from prunetune.search.disk import DropFinishedCheckpoints
from prunetune.search.outcome import BestTrial, SearchResult, best_feasible
from prunetune.search.packing import memory_probe, resolve_resources
from prunetune.search.progress import Progress
from prunetune.search.reference import tuned_reference
from prunetune.search.render import trials_line
from prunetune.search.results import TuneResults
from prunetune.search.scratch import scratch_baselines
from prunetune.search.shared import (
    check_depths,
    check_resources,
    check_storage,
    layer_scores,
    model_num_layers,
    prepared_data,
    share,
    this_machine,
)
from prunetune.search.single_driver import parent_run_marker, refuse_another_driver
from prunetune.search.space import check_space
from prunetune.search.spec import SearchSpec, ray_address, with_trials
from prunetune.search.store import (
    TrackingClient,
    TrackingUnreachable,
    check_answers,
    experiment_id,
    open_store,
    paged_runs,
    search_lock,
    store_lock,
    ui_link,
)
from prunetune.search.study import fail_orphaned_trials, study_name, study_url
from prunetune.search.teacher import distills, teach
from prunetune.search.tracking import TrialRecorder, close_interrupted, recorded_results
from prunetune.search.tuner import build_tuner, start_ray, stop_ray
from prunetune.search.view import close_search_run, log_text, mark_answer, open_search_run, search_view

from prunetune import stops
from prunetune.libs import optuna, tune
from prunetune.records import (
    KIND_MODEL,
    KIND_RECHECK,
    KIND_REFERENCE,
    KIND_SCRATCH,
    LAYER_SCORES_ARTIFACT,
    TAG_KIND,
    TRIAL_PHASE_SECONDS,
    in_budget_unit,
    runs_where,
)

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "Checked", "close_interrupted_jobs", "close_running_runs", "open_search_store", "refuse_early", "run_search",
    "spool_path", "tracking_stop"
]  # fmt: skip


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
    """Run (or continue) a search: the tuned reference, the scratch baselines, the layer scores, then Optuna's
    trials on Ray Tune, every job recorded in MLflow; what ``prunetune search`` runs.

    Args:
        spec: the search spec (:func:`~prunetune.search.spec.load_spec`).
        resume: continue the search of this name in ``spec.storage_path`` (nothing recorded is trained again).
        say: where progress lines go.
        save_best: train the best trial once more and keep its model (when ``spec.save_model``).
        register: the MLflow registered-model name of that model, if any.
        checked: what :func:`refuse_early` returned, when the caller ran it already.
        tolerances: every tolerance the caller will decide (max-drop's), where the search looks for answers
            still open; () for the budget's alone.

    Returns:
        The :class:`~prunetune.search.outcome.SearchResult`: the tuned reference, the best trial within the
        budget on the search's seed (``best``, None if no trial was within), and its model.

    Raises:
        PrunetuneError: a spec, model, data, storage or tracking store refused before anything starts.
        stops.Interrupted: a stop signal; the search's runs are closed as interrupted, ``resume`` continues it.

    Example:
        >>> from prunetune.search.spec import load_spec                   # doctest: +SKIP
        >>> result = run_search(load_spec("examples/search-default.yaml"))  # doctest: +SKIP
        >>> result.best.layers_dropped, result.best.kept_layers            # doctest: +SKIP
        (5, [5])
    """
    num_layers, prepared, inputs = checked or refuse_early(spec)
    with search_lock(spec.storage, spec.name):  # a second driver on this search is refused here
        refuse_another_driver(spec, resume)  # and one on the same tracking server from another folder
        if spec.num_trials is None:
            say(trials_line(spec, num_layers))
        spec = with_trials(spec, num_layers)
        nodes = start_ray(spec)
        stops.reclaim()  # ray.init installed its own SIGTERM handler, which exits with no clean-up
        spec = resolve_resources(spec, nodes, lambda: memory_probe(spec), say)  # as it runs, and is recorded
        check_resources(spec, nodes)
        store = open_search_store(spec, resume, say)
        stage = _Stage()
        try:
            return _search(spec, store, stage, num_layers, prepared, inputs, say, save_best, register, tolerances)
        except KeyboardInterrupt:  # SIGINT or SIGTERM (prunetune.stops), wherever the driver waited
            raise _stop(spec, store, stage, say) from None


@dataclass
class _Stage:
    """Where a search is, for the line a stop prints and what it closes."""

    phase: str = "while training the reference"
    recorder: TrialRecorder | None = None
    results: TuneResults | None = None  # Tune's results, once fit has returned


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
    tolerances: tuple[float, ...],
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
    log_text(store.mlflow, store.parent, spec.storage / spec.name / LAYER_SCORES_ARTIFACT, scores.to_json())

    stage.phase = "before the first trial"
    recorder = stage.recorder = TrialRecorder(
        store.tracking_uri,
        store.experiment,
        store.parent,
        spec.name,
        spool_path(spec),
        spec.tracking_patience_s,
        inputs,
        (study_url(spec), study_name(spec, store.parent)),
    )
    replayed = recorder.replay()  # what a driver killed during an outage had not delivered, first
    if replayed:
        say(f"{replayed} record(s) the last driver could not deliver to MLflow: delivering them now")
        recorder.flush()  # before Tune resumes: a trial closed in them is not trained again
        if recorder.unreachable:
            raise recorder.stopped()
    listeners = [recorder, Progress(spec, say)] + ([] if spec.keep_checkpoints else [DropFinishedCheckpoints()])
    recorded = recorded_results(store.mlflow, store.experiment, store.parent) if store.resuming else {}
    experiment, searcher = build_tuner(
        spec,
        experiment_path=store.experiment_path,
        resuming=store.resuming,
        parent_run=store.parent,
        experiment=store.experiment,
        reference=reference,
        scores=scores,
        num_layers=num_layers,
        shared=shared,
        recorded=recorded,
        listeners=listeners,
        say=say,
        tolerances=tolerances,
    )
    started = time.monotonic()
    stage.phase = "during the trials"
    try:
        with stops.tune_loop():  # a stop signal asks Tune to stop its trials and save its state
            results = stage.results = experiment.fit()
    except Exception as err:
        # One line, not Tune's traceback. A resumed Tune runs the recorder it pickled at the start, not
        # this one, so the stop is also looked for in the exception's chain.
        stop = recorder.stopped() if recorder.unreachable else tracking_stop(err)
        if stop is not None:
            raise stop from None
        raise
    stops.raise_if_requested()  # Tune stopped for a signal: its results are not the search's
    if searcher is not None and searcher.stop_reason:
        say(searcher.stop_reason)
    lost_runs, lost_optuna = recorder.settle(results), fail_orphaned_trials(spec, store.parent)
    if lost_runs or lost_optuna:
        say(
            f"{lost_runs} trial run(s) lost with the killed driver closed as interrupted, "
            f"{lost_optuna} Optuna trial(s) told FAIL"
        )
    trial_phase = time.monotonic() - started  # Tune's trials alone: benchmarks 3 and 6 compare it to a loop
    best = best_feasible(results)
    if best is not None and best.trial_id is not None and save_best:  # max-drop's search only picks: it marks its own
        budget = in_budget_unit(spec.budget.tolerance, spec.budget.relative)
        mark_answer(ctx, best.trial_id, f"search answer: the deepest drop within {budget}")
    model = None
    if best is not None and save_best and spec.save_model:
        stage.phase = "while training the answer's model"
        model = _save_best(ctx, reference, best, register)
    close_search_run(store.mlflow, store.parent, best, {"trials": len(results), TRIAL_PHASE_SECONDS: trial_phase})
    return SearchResult(spec, store.parent, reference, len(results), best, store.experiment_path, shared, model)


def _stop(spec: SearchSpec, store: Store, stage: _Stage, say: Say) -> stops.Interrupted:
    """Close what a stopped search had open, and say how far it got: its jobs cancelled, its runs closed as
    interrupted (the search's own run too), its running Optuna trials told FAIL. Tune saved its own state
    before ``fit`` returned. ``--resume`` continues from here."""
    say(f"stopping {stage.phase}: cancelling the running jobs and closing their records (again to quit at once)")
    stop_ray()  # cancels this driver's tasks and trials, on every node
    if stage.recorder is not None:
        stage.recorder.settle(stage.results or [])  # a trial cut short: interrupted, with its epochs so far
    fail_orphaned_trials(spec, store.parent)
    close_running_runs(spec, store.mlflow, store.experiment)
    if stage.recorder is not None:
        done = len(recorded_results(store.mlflow, store.experiment, store.parent))
        return stops.interrupted(f"after {done} of {spec.trials} trials")
    return stops.interrupted(stage.phase)


def close_running_runs(
    spec: SearchSpec, mlflow: TrackingClient, experiment: str, kinds: tuple[str, ...] = ()
) -> list[Run]:
    """The search's runs still RUNNING (of ``kinds``; none given: every kind, its own run too), closed as
    interrupted; the runs closed."""
    running = runs_where("RUNNING", search=spec.name)
    found = list(paged_runs(mlflow, [experiment], running))  # in full first: closing changes the filter
    closed = [run for run in found if not kinds or run.data.tags.get(TAG_KIND) in kinds]
    for run in closed:
        close_interrupted(mlflow, run.info.run_id)
    return closed


def tracking_stop(err: BaseException | None) -> TrackingUnreachable | None:
    """The tracking stop in an exception's chain, if any: a resumed Tune raises it wrapped in its own error."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, TrackingUnreachable):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _save_best(ctx: SearchContext, reference: TunedReference, best: BestTrial, register: str | None) -> SavedModel:
    """The answer's model: its trial trained once more, its weights kept (registered as ``register`` if given)."""
    spec, trial = ctx.spec, best.trial
    drop = in_budget_unit(best.drop, spec.budget.relative, signed=True)
    facts = [
        ("search", f"{spec.name}, MLflow run {ctx.parent}"),
        ("reference", reference.describe()),
        ("search's score", f"{best.val_score:.4f} on seed {trial.training.seed} (the best of the search's trials)"),
        ("drop", f"{drop} (tolerance {in_budget_unit(spec.budget.tolerance)})"),
    ]
    folder = spec.storage / spec.name / "model"
    metrics = {
        "drop": best.drop,
        "tolerance": spec.budget.tolerance,
        "selection_score": best.val_score,
    }
    return save_answer_model(ctx, trial, folder, ModelFacts(facts, metrics, {"answers": "search"}), register)


def open_search_store(spec: SearchSpec, resume: bool, say: Say) -> Store:
    """The MLflow experiment and the search's parent run (the same one again on resume)."""
    tracking_uri = spec.resolved_tracking_uri()
    server = tracking_uri.startswith(("http://", "https://"))
    local = None if server else (spec.storage / "mlartifacts").as_uri()
    with store_lock(spec.storage):  # creating the SQLite stores is one process's job at a time
        mlflow = open_store(tracking_uri, spec.tracking_patience_s)  # every driver call rides out an outage
        experiment = experiment_id(mlflow, spec.name, local)
        optuna.storages.RDBStorage(study_url(spec))
    experiment_path = f"{spec.ray_storage.rstrip('/')}/{spec.name}"
    # A search killed before Tune started (in its reference sweep, say) has a parent run but no Tune state:
    # it is continued all the same, its trials started afresh.
    continuing = resume and parent_run_marker(spec).exists()
    restoring = continuing and tune.Tuner.can_restore(experiment_path)
    if resume and not continuing:
        say(f"nothing to resume at {spec.storage / spec.name}: starting a new search")
    parent = open_search_run(spec, mlflow, experiment, continuing)
    say(f"search {spec.name}: MLflow {tracking_uri} (experiment {experiment}, parent run {parent})")
    # The link opens the runs table on the columns that read a search (MLflow keeps columns per browser).
    view_key, view = search_view()
    mlflow.set_experiment_tag(experiment, view_key, view)  # the same tag on every start
    say(f"search {spec.name}: watch it in {ui_link(tracking_uri, experiment, view_key)}")
    if continuing:
        close_interrupted_jobs(spec, mlflow, experiment, say)
    return Store(tracking_uri, mlflow, experiment, parent, experiment_path, restoring)


def spool_path(spec: SearchSpec) -> Path:
    """The durable spool of the search's trial records (:mod:`prunetune.search.spool`)."""
    return spec.storage / spec.name / "mlflow-spool.jsonl"


def close_interrupted_jobs(spec: SearchSpec, mlflow: TrackingClient, experiment: str, say: Say) -> None:
    """On resume: the reference or scratch job the killed driver was waiting for is closed as interrupted
    (it is trained again; an open run would otherwise stay RUNNING for ever)."""
    for run in close_running_runs(spec, mlflow, experiment, (KIND_REFERENCE, KIND_SCRATCH, KIND_RECHECK, KIND_MODEL)):
        say(f"{run.data.tags[TAG_KIND]} run {run.info.run_id} was interrupted with the driver: closed, trained again")
