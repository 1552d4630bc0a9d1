"""Ray Tune, in one place: Ray's start, the tuner (trainable, searcher, scheduler) and the one Tune callback the
search registers, which hands Tune's events to prunetune's own listeners.

The listeners (:class:`~prunetune.search.tracking.TrialRecorder`, :class:`~prunetune.search.progress.Progress`,
:class:`~prunetune.search.disk.DropFinishedCheckpoints`) are plain objects with Tune's hook names; they import no
Ray. This module and :mod:`.searcher` subclass Tune's classes, so they import Ray when they are imported: the
runner imports this module when a search starts, and a light command (``--help``, ``strategies``, ``report``)
loads no Ray.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from prunetune.search.context import Say
from prunetune.search.decide import TunedReference
from prunetune.search.searcher import BudgetSearch
from prunetune.search.shared import SharedWork
from prunetune.search.space import OBJECTIVE, warm_start_line
from prunetune.search.spec import SearchSpec, ray_address
from prunetune.search.study import study_name, study_url
from prunetune.search.trainable import run_trial
from ray.tune import Callback

from prunetune import stops
from prunetune.libs import optuna, ray, tune
from prunetune.records import LayerScores

__all__ = ["TuneEvents", "build_tuner", "start_ray", "stop_ray", "trial_folder_name"]


class TuneEvents(Callback):
    """The search's Tune callback: each of Tune's events below, with Tune's arguments, goes to every
    listener that has a method of that name, in the listeners' order. Tune pickles it with its experiment, and
    the listeners with it; a resumed search runs the listeners it pickled."""

    def __init__(self, *listeners: object) -> None:
        self.listeners = listeners

    def _tell(self, hook: str, *args: Any, **info: Any) -> None:
        for listener in self.listeners:
            method = getattr(listener, hook, None)
            if method is not None:
                method(*args, **info)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._tell("on_step_begin", iteration, trials, **info)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._tell("on_trial_start", iteration, trials, trial, **info)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self._tell("on_trial_result", iteration, trials, trial, result, **info)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._tell("on_trial_complete", iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._tell("on_trial_error", iteration, trials, trial, **info)

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        self._tell("on_checkpoint", iteration, trials, trial, checkpoint, **info)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._tell("on_trial_recover", iteration, trials, trial, **info)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._tell("on_experiment_end", trials, **info)


def start_ray(spec: SearchSpec) -> list[dict[str, float]]:
    """Start Ray (a local one, or join the spec's cluster), unless this process has; the live nodes' resources."""
    if not ray.is_initialized():
        address = ray_address(spec)
        # Trials must see the same data folder and cache as the driver, wherever they run; Ray's workers do not
        # start in the driver's directory, so a relative folder is made absolute here.
        env = {
            k: os.path.abspath(os.environ[k]) for k in ("PRUNETUNE_DATA_DIR", "PRUNETUNE_CACHE_DIR") if k in os.environ
        }
        env |= {k: os.environ[k] for k in ("HF_HUB_OFFLINE",) if k in os.environ}
        runtime_env = {"env_vars": env} if env else None
        # Ray's own warnings at start (token authentication on a local cluster, say) only with -v: the terminal
        # shows the search. Its errors always.
        level = logging.WARNING if logging.getLogger().isEnabledFor(logging.INFO) else logging.ERROR
        if address is None:
            ray.init(include_dashboard=False, runtime_env=runtime_env, logging_level=level)
        else:
            ray.init(address=address, runtime_env=runtime_env, logging_level=level)
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]


def stop_ray() -> None:
    """Ray shut down after a stop: this driver's tasks and trials cancelled on every node. As it shuts down, Ray's
    core worker logs each job it cancels as failed (``task_manager.cc`` lines, straight to file descriptor 2);
    after a stop they repeat what the stop line says, so they are not shown."""
    if ray.is_initialized():
        with stops.native_stderr_quiet():
            ray.shutdown()


def trial_folder_name(trial: Any) -> str:
    """A trial's folder: its short id and strategy (Ray's default is 100 characters of config values)."""
    return f"{trial.trial_id}-{trial.config['trial']['drop']['strategy']}"


def build_tuner(
    spec: SearchSpec,
    *,
    experiment_path: str,
    resuming: bool,
    parent_run: str,
    experiment: str,
    reference: TunedReference,
    scores: LayerScores,
    num_layers: int,
    shared: SharedWork | None,
    recorded: dict[str, dict[str, float]],
    listeners: list[object],
    say: Say,
    tolerances: tuple[float, ...] = (),
) -> tuple[tune.Tuner, BudgetSearch | None]:
    """Tune's experiment, and prunetune's searcher when new (a resumed experiment restores its own, with the Optuna
    state). ``recorded``: the trials MLflow holds as finished, which a resumed Tune must not train again."""
    # The data travel as a SharedWork (a reference): trials read the same single copy as the baselines,
    # once per trial process.
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
    if resuming:
        restored = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        return restored, None
    searcher = BudgetSearch(
        spec,
        num_layers,
        scores,
        anchor_lr=reference.learning_rate,  # space.learning_rate_scale multiplies the tuned reference's
        storage=optuna.storages.RDBStorage(study_url(spec)),
        study_name=study_name(spec, parent_run),
        links={"mlflow_search_run_id": parent_run, "mlflow_experiment_id": experiment},
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
            callbacks=[TuneEvents(*listeners)],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # only the last epoch's state
            verbose=0,
        ),
    )
    return tuner, searcher
