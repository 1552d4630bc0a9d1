"""Every trial an MLflow run: a parent run per search, a child run per trial, logged from the driver.

Logging from the driver (a Tune callback) rather than inside trials means a killed trial can
never leave a run RUNNING, and the driver decides each trial's final status. Each record is first written
to a durable spool under the search's folder (:mod:`prunetune.search.spool`), then delivered by one
background thread (``log_batch``, one round trip per epoch) so a slow or absent tracking server never stalls
the Tune loop; :meth:`TrialRecorder.flush` waits for them. Not MLflow's own async logging
(``synchronous=False``): it keeps an undelivered batch in memory only, and the ordering of a run's closing
after its metrics is ours to keep either way. MLflow does the batching (``log_batch`` splits by its limits).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunetune.search.results import TuneResults, each
from prunetune.search.spool import LogToRun, OpenRun, Spool, SpoolRecord
from prunetune.search.store import TrackingClient, TrackingUnreachable, paged_runs, unreachable, with_retries
from prunetune.search.trainable import ALREADY_RECORDED, DERIVED, REPORTED

from prunetune import stops
from prunetune.config import TrialConfig
from prunetune.libs import mlflow_entities, mlflow_tracking, optuna
from prunetune.records import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    KIND_TRIAL,
    PARENT,
    PLACEMENT_TAGS,
    RUNNING,
    TAG_CHECKPOINT_EPOCH,
    TAG_KEPT,
    TAG_KIND,
    TAG_OPTUNA_TRIAL,
    TAG_RETRIES,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    closing_metrics,
    final_value,
    runs_where,
    trial_status,
)

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput, Run

__all__ = ["TrialRecorder", "close_interrupted", "log_params_and_metrics", "recorded_results"]


log = logging.getLogger(__name__)


def trial_params(trial_dict: dict[str, Any]) -> dict[str, str]:
    """A trial's config as its run's params (flat, as strings)."""
    return dict(TrialConfig.from_dict(trial_dict).to_flat())


def log_params_and_metrics(
    mlflow: TrackingClient,
    run_id: str,
    params: dict[str, str],
    metrics: dict[str, float],
    step: int = 0,
    tags: dict[str, str] | None = None,
) -> None:
    """One ``log_batch`` (MLflow splits it into requests within its own limits)."""
    now, entities = int(time.time() * 1000), mlflow_entities
    mlflow.log_batch(
        run_id,
        metrics=[entities.Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float))],
        params=[entities.Param(k, v[:6000]) for k, v in params.items()],  # MLflow refuses a value over 6,000 chars
        tags=[entities.RunTag(k, v) for k, v in (tags or {}).items()],
    )


class _Worker:
    """One background thread delivering the spool's records in order, each retried through an outage
    (:func:`with_retries`). Once the patience is spent it stops delivering (``unreachable``): the records
    stay in the spool for the next driver, and the search stops cleanly, resumable."""

    def __init__(self, deliver: Callable[[SpoolRecord], None], spool: Spool, patience_s: float, uri: str) -> None:
        self.deliver, self.spool, self.patience_s, self.uri = deliver, spool, patience_s, uri
        self.unreachable = False
        self.tasks: queue.Queue[tuple[int, SpoolRecord]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="prunetune-mlflow", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            seq, record = self.tasks.get()
            try:
                if not self.unreachable:
                    self._deliver(seq, record)
            finally:
                self.tasks.task_done()

    def _deliver(self, seq: int, record: SpoolRecord) -> None:
        try:
            with_retries(lambda: self.deliver(record), self.patience_s, self.uri)
        except TrackingUnreachable:
            self.unreachable = True
            log.error("MLflow did not answer for %.0f s: stopping the search", self.patience_s)
            return
        except Exception:  # refused by MLflow: it never will be delivered, and a record must not kill the search
            log.exception("MLflow refused a record: %s", record)
        self.spool.delivered(seq)

    def submit(self, seq: int, record: SpoolRecord) -> None:
        self.tasks.put((seq, record))

    def flush(self) -> None:
        self.tasks.join()


class TrialRecorder:
    """Records each trial as a child run of the search's parent run, told Tune's events by the search's Tune
    callback (:class:`prunetune.search.tuner.TuneEvents`).

    No MLflow call runs in a callback: each record is written to the search's durable spool and queued, in
    order, to the worker thread, which looks a trial's run id up when it delivers. So a tracking outage never
    raises inside Tune; if it outlasts the patience, the next Tune step raises :class:`TrackingUnreachable`
    and the search stops with its state resumable; and what a dead driver had not delivered, the next one
    delivers (:meth:`replay`)."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        parent_run_id: str,
        search_name: str,
        spool_path: Path,
        patience_s: float = 600.0,
        inputs: list[dict[str, Any]] | None = None,
        study: tuple[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.search_name = search_name
        self.spool_path = spool_path
        self.patience_s = patience_s
        self.run_ids: dict[str, str | None] = {}  # filled by the worker as it delivers; None: no run
        self.opened: set[str] = set()  # trials whose run is queued to be found or created
        self.retries: dict[str, int] = {}
        # Per trial, the last epoch its run holds: counted as they are delivered, read from MLflow for a run
        # this driver did not create. An epoch trained again (a retry, a resumed search) is not logged twice.
        self.recorded_epochs: dict[str, int] = {}
        self.inputs = inputs or []  # the search's data, recorded as each trial's dataset inputs
        self.study = study  # (Optuna storage URL, study name): each trial there gets its MLflow run id
        self._worker: _Worker | None = None
        self._client: TrackingClient | None = None
        self._optuna: tuple[optuna.storages.RDBStorage, int] | None = None  # the study's storage and id, once

    # Tune pickles callbacks with the experiment state: keep threads and clients out of it.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_worker", "_client", "_optuna")} | {
            "_worker": None,
            "_client": None,
            "_optuna": None,
        }

    @property
    def worker(self) -> _Worker:
        if self._worker is None:
            self._worker = _Worker(self._deliver, Spool(self.spool_path), self.patience_s, self.tracking_uri)
        return self._worker

    @property
    def unreachable(self) -> bool:
        return self._worker is not None and self._worker.unreachable

    @property
    def mlflow(self) -> TrackingClient:
        """The recorder's own client (made on first use: Tune pickles the recorder, and a client is not sent)."""
        if self._client is None:
            self._client = mlflow_tracking.MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def replay(self) -> int:
        """Queue what an earlier driver of this search spooled but never delivered; returns how many."""
        pending = self.worker.spool.pending()
        for seq, record in pending:
            self.worker.submit(seq, record)
        return len(pending)

    def _record(self, record: SpoolRecord) -> None:
        self.worker.submit(self.worker.spool.append(record), record)

    def _deliver(self, record: SpoolRecord) -> None:
        """One spooled record into MLflow: a trial's run found or created (:class:`OpenRun`), or a batch of metrics
        and tags, optionally closing the run (:class:`LogToRun`)."""
        if isinstance(record, OpenRun):
            self._open_run(record)
            return
        run_id = record.run or (self._run_of(record.trial) if record.trial is not None else None)
        if run_id is None:  # the trial never started: nothing was recorded
            return
        metrics = record.metrics
        epoch = record.step if record.epoch and record.trial is not None else 0
        if epoch and record.trial is not None and epoch <= self.recorded_epochs.get(record.trial, 0):
            metrics = {}  # an epoch a retry or a resumed search trained again: MLflow has it already
        log_params_and_metrics(self.mlflow, run_id, {}, metrics, record.step, record.tags)
        if epoch and metrics and record.trial is not None:  # counted once delivered: a failed attempt is retried
            self.recorded_epochs[record.trial] = epoch
        if record.end:
            self.mlflow.set_terminated(run_id, record.end)

    def _run_of(self, trial_id: str) -> str | None:
        """The trial's run. One this driver did not create (a resumed search's, or a run a record spooled by
        an earlier driver belongs to) is looked up, with the last epoch it already holds."""
        if trial_id not in self.run_ids:
            found = self._find_run(trial_id)
            self.run_ids[trial_id] = None if found is None else found.info.run_id
        return self.run_ids[trial_id]

    def _open_run(self, record: OpenRun) -> None:
        """Find the trial's run, else create it. Looked up afresh on every attempt: a create whose answer was
        lost (the server died after committing it) is found by its retry, not made twice; and a run found
        without its params (that attempt died before logging them) gets them."""
        trial_id = record.trial
        if self.run_ids.get(trial_id) is not None:
            return
        run = self._find_run(trial_id)
        if run is None:
            run = self.mlflow.create_run(self.experiment, run_name=record.name, tags=record.tags)
        if not run.data.params:
            log_params_and_metrics(self.mlflow, run.info.run_id, record.params, {})
            if record.inputs:
                self.mlflow.log_inputs(run.info.run_id, datasets=[dataset_input(d) for d in record.inputs])
            self._link_study(record.tags.get(TAG_OPTUNA_TRIAL, ""), run.info.run_id)
        self.run_ids[trial_id] = run.info.run_id

    def _link_study(self, number: str, run_id: str) -> None:
        """The Optuna trial gets its MLflow run id as a user attribute (optuna-dashboard shows it), through the
        storage's public API. A trial that already finished (its run was opened late, after an outage) can no
        longer be changed: it keeps the search's run id and its Ray trial id, which the run is tagged with."""
        if self.study is None or not number.isdigit():
            return
        url, name = self.study
        try:
            if self._optuna is None:  # opened and looked up once per driver, not once per trial
                storage = optuna.storages.RDBStorage(url)
                self._optuna = storage, storage.get_study_id_from_name(name)
            storage, study_id = self._optuna
            trial = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
            storage.set_trial_user_attr(trial, "mlflow_run_id", run_id)
            if self.tracking_uri.startswith(("http://", "https://")):  # a link the dashboard's user can open
                link = f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment}/runs/{run_id}"
                storage.set_trial_user_attr(trial, "mlflow_run", link)
        except (KeyError, RuntimeError) as err:  # no such trial, or finished
            log.info("Optuna trial %s not linked to its run: %s", number, err)

    def _open(self, trial_id: str, config: dict[str, Any]) -> None:
        """Queue finding the trial's run again (after a resume: no trial is recorded twice), else creating it."""
        if trial_id in self.opened:
            return
        self.opened.add(trial_id)
        trial = config["trial"]
        tags = {
            PARENT: self.parent_run_id,
            TAG_KIND: KIND_TRIAL,
            TAG_TRIAL: trial_id,
            TAG_SEARCH: self.search_name,
            TAG_OPTUNA_TRIAL: str(config.get("optuna_trial", "")),
            TAG_STATUS: RUNNING,
        }
        self._record(OpenRun(trial_id, trial_run_name(trial, trial_id), tags, trial_params(trial), self.inputs))

    def _log(
        self,
        trial_id: str,
        metrics: dict[str, float] | None = None,
        step: int = 0,
        tags: dict[str, str] | None = None,
        end: str | None = None,
    ) -> None:
        """Queue metrics and tags for the trial's run, after its opening; ``end`` closes the run."""
        self._record(LogToRun(trial=trial_id, metrics=metrics or {}, step=step, tags=tags or {}, end=end))

    def _log_epoch(self, trial_id: str, metrics: dict[str, float], step: int) -> None:
        """An epoch's metrics: delivered unless the trial's run already holds that epoch."""
        self._record(LogToRun(trial=trial_id, metrics=metrics, step=step, epoch=True))

    def _find_run(self, trial_id: str) -> Run | None:
        """The trial's run in MLflow (None: none yet), noting the last epoch it holds (:attr:`recorded_epochs`)."""
        found = self.mlflow.search_runs(
            [self.experiment],
            filter_string=runs_where(trial=trial_id, parent=self.parent_run_id),
            max_results=1,
        )
        if not found:
            return None
        steps = [m.step for m in self.mlflow.get_metric_history(found[0].info.run_id, "val_score")]
        self.recorded_epochs[trial_id] = max(steps, default=0)
        return found[0]

    def stopped(self) -> TrackingUnreachable:
        return unreachable(self.tracking_uri, self.patience_s)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self.unreachable:
            raise self.stopped()  # out of Tune's loop, its experiment state saved: --resume continues it

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._open(trial.trial_id, trial.config)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if result.get(ALREADY_RECORDED):
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self._open(trial.trial_id, trial.config)
        metrics = {k: float(v) for k, v in result.items() if k in _METRICS and isinstance(v, (int, float))}
        self._log_epoch(trial.trial_id, metrics, step)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if (trial.last_result or {}).get(ALREADY_RECORDED):
            return  # closed by the driver that trained it
        self._finish(trial.trial_id, trial.config, trial.last_result or {}, error=False)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial.trial_id, trial.config, trial.last_result or {}, error=True)

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        """Tune has registered the trial's checkpoint: a retry now continues from this epoch."""
        epoch = str(int((trial.last_result or {}).get("epoch", 0)))
        self._open(trial.trial_id, trial.config)
        self._log(trial.trial_id, tags={TAG_CHECKPOINT_EPOCH: epoch})

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """The trial's process died and it is queued again (``max_failures``)."""
        self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1
        self._open(trial.trial_id, trial.config)
        self._log(trial.trial_id, tags={TAG_RETRIES: str(self.retries[trial.trial_id])})

    def _finish(self, trial_id: str, config: dict[str, Any], result: dict[str, Any], *, error: bool) -> None:
        # No opening queued: a trial that never started has no run to close.
        status = FAILED if error else trial_status(config["trial"]["training"]["epochs"], int(result.get("epoch", 0)))
        end = "FAILED" if error else "FINISHED"
        if status != COMPLETE and not error and stops.requested():  # cut short by a signal, not by ASHA
            status, end = INTERRUPTED, "KILLED"
        tags = {TAG_STATUS: status, TAG_KEPT: json.dumps(config["trial"].get("kept_layers"))}
        tags |= {tag: str(result[key]) for key, tag in PLACEMENT_TAGS.items() if key in result}
        metrics = {k: float(v) for k, v in closing_metrics(result).items()}
        self._log(trial_id, metrics, int(result.get("epoch", 0)), tags, end)

    def settle(self, results: TuneResults) -> int:
        """Close the trial runs a killed driver left open; call after ``fit`` (nothing runs any more).

        Tune restores a search from its last snapshot of the experiment (taken every few seconds),
        so a trial can be open in MLflow yet finished in Tune (its closing was still queued), or
        unknown to Tune (started after the snapshot; the resumed search runs another in its place).
        The first is closed from Tune's result; the second as ``interrupted`` (MLflow: KILLED).
        After a stop signal, a trial Tune cut short is closed as interrupted (:meth:`_finish`). Returns how many
        runs Tune lost."""
        self.flush()
        finished = {
            r.metrics["trial_id"]: (r.config, r.metrics, r.error)
            for r in each(results)
            if r.metrics and "trial_id" in r.metrics and r.config is not None
        }
        still_open = runs_where("RUNNING", parent=self.parent_run_id, kind=KIND_TRIAL)
        # Listed in full before closing any: pages are offsets into a filter the closing changes.
        listing = lambda: list(paged_runs(self.mlflow, [self.experiment], still_open))  # noqa: E731
        interrupted = 0
        for run in with_retries(listing, self.patience_s, self.tracking_uri):
            trial_id = run.data.tags.get(TAG_TRIAL, "")
            if trial_id in finished:
                config, metrics, error = finished[trial_id]
                self.run_ids[trial_id] = run.info.run_id
                self._finish(trial_id, config, metrics, error=error is not None)
            else:
                self._record(interrupted_record(run.info.run_id))
                interrupted += 1
        self.flush()
        if self.unreachable:
            raise self.stopped()
        return interrupted

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.flush()

    def flush(self) -> None:
        if self._worker is not None:
            self._worker.flush()


def trial_run_name(trial: dict[str, Any], trial_id: str) -> str:
    """A trial run's name: its strategy and what it dropped by (``top-drop2-…``, ``contribution-t0.93-…``)."""
    drop = trial["drop"]
    if drop.get("count") is not None:
        how = f"drop{drop['count']}"
    elif drop.get("threshold") is not None:
        how = f"t{drop['threshold']:.3g}"
    else:
        how = f"kept{len(trial.get('kept_layers') or ())}"
    return f"{drop['strategy']}-{how}-{trial_id}"


def recorded_results(mlflow: TrackingClient, experiment: str, parent_run_id: str) -> dict[str, dict[str, float]]:
    """Trial id -> final result, of the search's trials MLflow holds as finished: what a resumed Tune, whose
    snapshot may predate their end, must not train again (:data:`ALREADY_RECORDED`)."""
    query = runs_where("FINISHED", parent=parent_run_id, kind=KIND_TRIAL)
    results = {}
    for run in paged_runs(mlflow, [experiment], query):
        metrics = run.data.metrics
        epoch = final_value(metrics, "epoch")
        if TAG_TRIAL in run.data.tags and epoch is not None:
            results[run.data.tags[TAG_TRIAL]] = {k: metrics[k] for k in _METRICS if k in metrics} | {"epoch": epoch}
    return results


def dataset_input(described: dict[str, Any]) -> DatasetInput:
    """One of :func:`prunetune.search.shared.dataset_inputs` as MLflow's entity: the run's Dataset column."""
    entities = mlflow_entities
    dataset = entities.Dataset(
        described["name"],
        described["digest"],
        "prunetune",
        json.dumps({"source": described["source"], "split": described["split"]}),
        profile=json.dumps({"num_rows": described["rows"]}),
    )
    return entities.DatasetInput(dataset, tags=[entities.InputTag("mlflow.data.context", described["split"])])


def interrupted_record(run_id: str) -> LogToRun:
    """Closing a run as interrupted (MLflow: KILLED), its metrics so far kept."""
    return LogToRun(run=run_id, tags={TAG_STATUS: INTERRUPTED}, end="KILLED")


def close_interrupted(mlflow: TrackingClient, run_id: str) -> None:
    """Close a run whose job died with its driver: its metrics so far stay, it never counts as a result."""
    mlflow.set_tag(run_id, TAG_STATUS, INTERRUPTED)
    mlflow.set_terminated(run_id, "KILLED")


_METRICS = tuple(k for k in (*REPORTED, *DERIVED) if k != "epoch")  # the epoch is the step
