"""Opening the MLflow store of a search: checked to answer before anything runs. Light: no Ray imported."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prunetune.errors import PrunetuneError
from prunetune.lazy import lazy

if TYPE_CHECKING:
    from mlflow import tracking as mlflow_tracking
else:
    mlflow_tracking = lazy("mlflow.tracking")

PAGE_SIZE = 1000  # runs per search_runs round trip


class TrackingError(PrunetuneError, RuntimeError):
    """The MLflow tracking store cannot be reached or used."""


def client(tracking_uri: str, timeout_s: float = 15.0) -> Any:
    """An MlflowClient, checked to answer now (an unreachable server fails here, before any trial)."""
    check_answers(tracking_uri, timeout_s)
    return mlflow_tracking.MlflowClient(tracking_uri=tracking_uri)


def check_answers(tracking_uri: str, timeout_s: float = 15.0) -> None:
    """A tracking server that does not answer its health check is refused; a local store is not touched
    (opening one creates its tables, which a search refused for other reasons must not leave behind)."""
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


def experiment_id(mlflow: Any, name: str, local_artifacts: str | None = None) -> str:
    """The experiment ``name``, created if new; with a local store its artifacts go to ``local_artifacts``
    (MLflow's default, ./mlruns of whatever directory the driver runs in, scatters them)."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=local_artifacts))


def paged_runs(
    mlflow: Any, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None
) -> Iterator[Any]:
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
