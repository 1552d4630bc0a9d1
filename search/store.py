"""Opening the MLflow store of a search: checked to answer before anything runs. Light: no Ray imported."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from prunetune.errors import PrunetuneError
from prunetune.libs import mlflow_tracking
from prunetune.records import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, TAG_REQUEST, runs_where

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput, Experiment, Metric, Param, Run, RunTag
    from mlflow.store.entities.paged_list import PagedList

__all__ = [
    "PAGE_SIZE", "RetryingClient", "SHARED_VIEW_PREFIX", "TrackingClient", "TrackingError", "TrackingUnreachable",
    "check_answers", "check_tracking_uri", "client", "experiment_id", "open_store", "paged_runs", "search_lock",
    "shared_view_state", "store_lock", "transient", "ui_link", "unreachable", "with_retries"
]  # fmt: skip


log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # runs per search_runs round trip

# What MLflow raises while a server is away or restarting, or a local store is busy: worth waiting out.
# Anything else (a request MLflow refuses, a bug) is raised at once: retrying cannot help.
_TRANSIENT = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


def transient(err: Exception) -> bool:
    return isinstance(err, OSError) or getattr(err, "error_code", None) in _TRANSIENT


class TrackingError(PrunetuneError, RuntimeError):
    """The MLflow tracking store cannot be reached or used."""


class TrackingUnreachable(TrackingError):
    """The tracking server did not answer for the search's ``tracking_patience_s``."""


def unreachable(tracking_uri: str, patience_s: float) -> TrackingUnreachable:
    return TrackingUnreachable(
        f"the MLflow tracking server {tracking_uri} did not answer for {patience_s:.0f} s: the search "
        "stopped, its state kept. Start the server, then run the same command with --resume"
    )


def with_retries(call: Callable[[], Any], patience_s: float, tracking_uri: str) -> Any:
    """``call()``, retried with backoff (1 s doubling to 30 s) while the server does not answer, for up to
    ``patience_s``; then :class:`TrackingUnreachable`. Only :func:`transient` failures are retried."""
    failing_since, delay = None, 1.0
    while True:
        try:
            result = call()
        except Exception as err:
            if not transient(err):
                raise
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                log.warning("MLflow does not answer; retrying for up to %.0f s (%s)", patience_s, err)
            if now - failing_since > patience_s:
                raise unreachable(tracking_uri, patience_s) from None
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        else:
            if failing_since is not None:
                log.warning("MLflow answers again after %.0f s", time.monotonic() - failing_since)
            return result


class TrackingClient(Protocol):
    """The calls prunetune makes of MLflow's ``MlflowClient``, typed as MLflow types them: what the driver and the
    analysis are handed (an ``MlflowClient``, or a :class:`RetryingClient` around one), so that mypy checks them."""

    @property
    def tracking_uri(self) -> str: ...

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run: ...
    def get_run(self, run_id: str) -> Run: ...
    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None: ...
    def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None: ...
    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any: ...
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool | None = None,
    ) -> Any: ...
    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput] | None = None) -> None: ...
    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None: ...
    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str: ...
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...
    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        run_view_type: int = 1,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]: ...
    def get_experiment(self, experiment_id: str) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def search_experiments(
        self,
        view_type: int = 1,
        max_results: int | None = 1000,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
    ) -> PagedList[Experiment]: ...
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str: ...
    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None: ...


class RetryingClient:
    """An MlflowClient whose every call goes through :func:`with_retries`: the driver's own records
    (reference, baselines, re-checks, the search's run) survive a tracking outage as the trials' do."""

    def __init__(self, inner: Any, patience_s: float, tracking_uri: str) -> None:
        self._inner, self._patience_s, self._uri = inner, patience_s, tracking_uri

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def retried(*args: Any, **kwargs: Any) -> Any:
            return with_retries(lambda: method(*args, **kwargs), self._patience_s, self._uri)

        return retried

    def create_run(self, experiment_id: str, **kwargs: Any) -> Any:
        """A run made once, even when the server commits it and its reply is lost (a retried create would make a
        second): the create carries a fresh token (:data:`TAG_REQUEST`), and every retry first looks for it."""
        token = uuid.uuid4().hex
        kwargs["tags"] = {**(kwargs.get("tags") or {}), TAG_REQUEST: token}
        attempts = 0

        def create_once() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                made = self._inner.search_runs([experiment_id], runs_where(request=token), max_results=1)
                if made:
                    return made[0]
            return self._inner.create_run(experiment_id, **kwargs)

        return with_retries(create_once, self._patience_s, self._uri)


def client(tracking_uri: str, timeout_s: float = 15.0, patience_s: float = 0.0) -> TrackingClient:
    """An MlflowClient, checked to answer now (an unreachable server fails here, before any trial); with
    ``patience_s``, its calls are retried through an outage of up to that long."""
    check_answers(tracking_uri, timeout_s)
    inner: TrackingClient = mlflow_tracking.MlflowClient(tracking_uri=tracking_uri)
    # A RetryingClient forwards every call of the inner client unchanged (through __getattr__), so it is one.
    return cast("TrackingClient", RetryingClient(inner, patience_s, tracking_uri)) if patience_s > 0 else inner


def open_store(tracking_uri: str, patience_s: float) -> TrackingClient:
    """The search's client, under :func:`store_lock`. A local SQLite store left half-created (by a start that
    died while MLflow made its tables, or by two starts at once before the lock existed) is moved aside and
    made anew when it holds no run; one that holds runs and cannot be opened is left as it is, and the error
    names the fix."""
    path = _sqlite_path(tracking_uri)
    if path is not None and _half_created(path):
        aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
        os.replace(path, aside)  # before MLflow opens it: it keeps an engine per file for the process's life
        log.warning("the MLflow store %s was left half-created and held no run: moved to %s", path, aside)
    try:
        mlflow = client(tracking_uri, patience_s=patience_s)
        mlflow.search_experiments(max_results=1)  # MLflow opens (creates, upgrades) a SQL store lazily
        return mlflow
    except Exception as err:
        if path is None or isinstance(err, PrunetuneError):
            raise
        raise TrackingError(
            f"the MLflow store {path} cannot be opened ({str(err).splitlines()[0]}); it was left as it is: "
            f"back it up, then run `mlflow db upgrade sqlite:///{path}`, or move it aside to start a new one"
        ) from None


def _sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :]) if tracking_uri.startswith(prefix) else None


def _half_created(path: Path) -> bool:
    """An SQLite store whose table creation never finished (a leftover ``_alembic_tmp_`` table, or no schema
    version) and that holds no run: nothing in it to keep."""
    import sqlite3

    if not path.exists():
        return False
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return False  # an empty file: MLflow makes its tables in it
        leftover = any(name.startswith("_alembic_tmp_") for name in tables)
        versioned = "alembic_version" in tables and db.execute("SELECT count(*) FROM alembic_version").fetchone()[0]
        runs = "runs" in tables and db.execute("SELECT count(*) FROM runs").fetchone()[0]
    return (leftover or not versioned) and not runs


# The stores MLflow's tracking client opens: a server, Databricks, a folder, or a database (a driver may follow:
# postgresql+psycopg2://).
TRACKING_SCHEMES = ("http", "https", "databricks", "file", "sqlite", "postgresql", "mysql", "mssql")
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_tracking_uri(tracking_uri: str) -> None:
    """A store MLflow cannot open is refused in one line, before anything is made: an unknown scheme (``ftp://``),
    or a local SQLite path that holds something other than a database."""
    scheme = tracking_uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in tracking_uri else "file"
    if scheme not in TRACKING_SCHEMES and not (len(scheme) == 1 and tracking_uri[1:3] == ":\\"):  # C:\ on Windows
        raise TrackingError(
            f"tracking_uri {tracking_uri}: MLflow cannot keep runs at a {scheme}:// address; give "
            "sqlite:///path/to/mlflow.db, http(s)://host:port of an `mlflow server`, or a folder"
        )
    path = _sqlite_path(tracking_uri)
    if path is not None and path.is_dir():
        raise TrackingError(f"tracking_uri {tracking_uri}: {path} is a folder; name the database file in it")
    if path is not None and path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as handle:
            if handle.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise TrackingError(
                    f"tracking_uri {tracking_uri}: {path} is not an SQLite database; give the mlflow.db a search "
                    "made (in its storage_path), or a new file name for a new store"
                )


def check_answers(tracking_uri: str, timeout_s: float = 15.0) -> None:
    """A store MLflow cannot open (:func:`check_tracking_uri`), or a tracking server that does not answer its
    health check, is refused; a local store is not touched (opening one creates its tables, which a search
    refused for other reasons must not leave behind)."""
    check_tracking_uri(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s) as answer:
                answer.read()
        except OSError as err:
            raise TrackingError(
                f"the MLflow tracking server {tracking_uri} does not answer ({err}); start it "
                "(mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000) "
                "or fix tracking_uri"
            ) from None
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


@contextlib.contextmanager
def store_lock(folder: Path) -> Iterator[None]:
    """One process at a time creates or upgrades the local stores under ``folder`` (MLflow's and Optuna's
    SQLite files): two searches started together on a new storage_path both ran MLflow's table creation,
    failed, and left an mlflow.db every later search failed on."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".store.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD: dict[Path, Any] = {}  # the search locks this process holds (a max-drop holds its search's lock too)


@contextlib.contextmanager
def search_lock(folder: Path, name: str) -> Iterator[None]:
    """Only one driver at a time runs search ``name`` in this storage: a second one would share its Ray
    results folder, its Optuna study and its parent run. It is refused in one line, naming the other's pid."""
    path = (folder / f".{name}.lock").resolve()
    if path in _HELD:  # this process already holds it (max-drop runs its own search)
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "another process"
        handle.close()
        raise TrackingError(
            f"search {name} is already running in {folder} (pid {other}): wait for it, or give this one "
            "another name (--set name=...)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _HELD[path] = handle
    try:
        yield
    finally:
        del _HELD[path]
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def experiment_id(mlflow: TrackingClient, name: str, local_artifacts: str | None = None) -> str:
    """The experiment ``name``, created if new, tagged to open on its runs in MLflow's UI; with a local store
    its artifacts go to ``local_artifacts`` (MLflow's default, ./mlruns of whatever directory the driver runs
    in, scatters them)."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None and found.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND:
        return str(found.experiment_id)
    if found is None:
        try:
            experiment = str(mlflow.create_experiment(name, artifact_location=local_artifacts))
        except Exception as err:  # a retried create whose first try the server committed (its reply lost)
            if getattr(err, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            made = mlflow.get_experiment_by_name(name)
            if made is None:  # deleted between the two calls
                raise
            experiment = str(made.experiment_id)
    else:
        experiment = str(found.experiment_id)  # made by an older prunetune: opened in the GenAI view
    mlflow.set_experiment_tag(experiment, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment


# MLflow's UI (3.x) loads a runs view (columns shown, sort, filter) from the experiment tag
# ``mlflow.sharedViewState.<key>`` when the page's URL carries ``viewStateShareKey=<key>`` (its "Share" links).
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
SHARED_VIEW_PARAM = "viewStateShareKey"


def shared_view_state(
    metrics: list[str],
    tags: list[str],
    attributes: tuple[str, ...] = (),
    params: tuple[str, ...] = (),
    order_by: tuple[str, bool] | None = None,
) -> tuple[str, str]:
    """(experiment tag key, value) of an MLflow UI view whose runs table shows these columns: set the tag
    (``set_experiment_tag``) and open :func:`ui_link` with the key (the key's part after the prefix). The value is
    the UI state as plain JSON, which the UI accepts; what it leaves out (sort, filter, charts) takes the UI's
    defaults. ``attributes``: MLflow's own columns to keep (its default view shows Source, Models and Dataset; none
    here, so that the metrics fit beside MLflow's assistant panel). ``params``: run params to show, before the
    metrics. ``order_by``: (column, ascending) the runs are sorted by. Sorted by anything but the start time, the UI
    lists child runs flat instead of folded under their parent (its runs table nests only on the default sort
    or a date sort, with no filter); a view cannot unfold one run (MLflow 3.17 drops ``runsExpanded`` from a
    shared view).
    The key is a hash of the value: the same view, the same tag, set again on every start."""
    selected = [f"attributes.`{name}`" for name in attributes] + [f"params.`{name}`" for name in params]
    selected += [f"metrics.`{name}`" for name in metrics] + [f"tags.`{name}`" for name in tags]
    state: dict[str, Any] = {"selectedColumns": selected}
    if order_by is not None:
        state |= {"orderByKey": order_by[0], "orderByAsc": order_by[1]}
    value = json.dumps(state, separators=(",", ":"))
    share_key = "prunetune-" + hashlib.sha256(value.encode()).hexdigest()[:12]
    return SHARED_VIEW_PREFIX + share_key, value


def ui_link(tracking_uri: str, experiment: str, share_key: str | None = None) -> str:
    """Where the search's runs are in MLflow's UI. MLflow 3 opens an experiment in whichever view the browser
    last used (GenAI by default: traces, no runs) unless the link names one. ``share_key``: the view of
    :func:`shared_view_state` to open it in (its tag key, or the part after ``mlflow.sharedViewState.``)."""
    path = f"/#/experiments/{experiment}/runs?workflowType=machine_learning"
    if share_key:
        share_key = share_key.removeprefix(SHARED_VIEW_PREFIX)
        path += f"&{SHARED_VIEW_PARAM}={urllib.parse.quote(share_key, safe='')}"
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/") + path
    return f"`mlflow ui --backend-store-uri {tracking_uri}`, then http://127.0.0.1:5000{path}"


def paged_runs(
    mlflow: TrackingClient, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None
) -> Iterator[Run]:
    """Every matching run, a page (one round trip) at a time."""
    token = None
    while True:
        page = mlflow.search_runs(
            experiment_ids, filter_string=filter_string, max_results=PAGE_SIZE, order_by=order_by, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return
