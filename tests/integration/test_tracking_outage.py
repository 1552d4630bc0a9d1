"""A tracking server that goes away: the trial recorder's records wait, in order, in a durable spool, and are
delivered when it answers again, by the same driver or, if it died, by the next one; past the patience the
recorder says so, for the search to stop cleanly. The driver's own calls ride out an outage too. A real `mlflow server`
process is killed and restarted on the same port and store; the recorder is driven through Tune's callback
hooks with plain trial objects (what Tune passes: an id, a config, the last result)."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient
from prunetune.search.spec import load_spec
from prunetune.search.store import TrackingUnreachable, client, experiment_id
from prunetune.search.tracking import TrialRecorder

from prunetune.records import KIND_SEARCH, TAG_KIND
from tests.helpers import free_port, stop_server
from tests.helpers import start_mlflow_server as start_server

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


def a_search(tmp_path: Path, name: str) -> tuple[subprocess.Popen, str, MlflowClient, str, str]:
    """A real server with a search's experiment and parent run: (server, uri, client, experiment, parent)."""
    port = free_port()
    server = start_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, name)
    parent = mlflow.create_run(experiment, tags={TAG_KIND: KIND_SEARCH}).info.run_id
    return server, uri, mlflow, experiment, parent


def a_trial(trial_id: str, epochs: int = 2) -> SimpleNamespace:
    spec = load_spec(None, {"trial.kept_layers": "[0, 5]", "trial.training.epochs": epochs})
    return SimpleNamespace(trial_id=trial_id, config={"trial": spec.trial.to_dict()}, last_result={})


def epoch(trial: SimpleNamespace, number: int, score: float) -> dict[str, float]:
    result = {"epoch": number, "val_score": score, "drop": 0.68 - score, "feasible": True, "layers_dropped": 4}
    trial.last_result = result
    return result


@pytest.fixture(autouse=True)
def _prompt_client(monkeypatch) -> None:
    """A search's client retries each request twice itself (store.client); the recorder retries on top.
    Here MLflow's own retries are off, so the test waits on the recorder's schedule alone."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def test_records_made_while_the_server_is_down_are_delivered_when_it_is_back(tmp_path) -> None:
    server, uri, mlflow, experiment, parent = a_search(tmp_path, "outage")
    port = int(uri.rsplit(":", 1)[1])
    recorder = TrialRecorder(uri, experiment, parent, "outage", tmp_path / "spool.jsonl", patience_s=120)
    trial = a_trial("t1")
    recorder.on_trial_start(0, [], trial)
    recorder.on_trial_result(0, [], trial, epoch(trial, 1, 0.61))
    recorder.flush()

    stop_server(server)  # down for the second epoch and the trial's end
    recorder.on_trial_result(0, [], trial, epoch(trial, 2, 0.66))
    recorder.on_trial_complete(0, [], trial)
    recorder.on_step_begin(0, [])  # nothing raised in Tune's loop while within the patience
    time.sleep(3)
    server = start_server(tmp_path, port)
    try:
        recorder.flush()
        run_id = recorder.run_ids["t1"]
        assert run_id is not None and not recorder.unreachable
        history = mlflow.get_metric_history(run_id, "val_score")
        assert sorted((m.step, m.value) for m in history) == [(1, 0.61), (2, 0.66)]  # nothing lost
        run = mlflow.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["final_val_score"] == 0.66
    finally:
        stop_server(server)


def test_a_server_gone_past_the_patience_stops_the_search_in_one_line(tmp_path) -> None:

    server, uri, _, experiment, parent = a_search(tmp_path, "gone")
    stop_server(server)
    recorder = TrialRecorder(uri, experiment, parent, "gone", tmp_path / "spool.jsonl", patience_s=3)
    trial = a_trial("t1")
    recorder.on_trial_start(0, [], trial)
    recorder.on_trial_result(0, [], trial, epoch(trial, 1, 0.61))
    recorder.flush()  # returns once the patience is spent
    assert recorder.unreachable
    with pytest.raises(TrackingUnreachable, match="did not answer for 3 s: the search stopped.*--resume"):
        recorder.on_step_begin(0, [])


def test_records_a_driver_could_not_deliver_before_it_died_are_delivered_by_the_next(tmp_path) -> None:
    server, uri, mlflow, experiment, parent = a_search(tmp_path, "died")
    port = int(uri.rsplit(":", 1)[1])
    spool = tmp_path / "spool.jsonl"
    stop_server(server)
    first = TrialRecorder(uri, experiment, parent, "died", spool, patience_s=2)
    trial = a_trial("t1")
    first.on_trial_start(0, [], trial)
    first.on_trial_result(0, [], trial, epoch(trial, 1, 0.61))
    first.on_trial_result(0, [], trial, epoch(trial, 2, 0.66))
    first.on_trial_complete(0, [], trial)
    first.flush()
    assert first.unreachable and spool.exists()  # the driver stops here; its records are on disk only

    server = start_server(tmp_path, port)
    try:
        second = TrialRecorder(uri, experiment, parent, "died", spool, patience_s=60)  # the --resume driver
        assert second.replay() == 4  # the run's opening, two epochs, its closing
        second.flush()
        runs = mlflow.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
        assert len(runs) == 1
        history = mlflow.get_metric_history(runs[0].info.run_id, "val_score")
        assert sorted((m.step, m.value) for m in history) == [(1, 0.61), (2, 0.66)]
        assert runs[0].info.status == "FINISHED" and runs[0].data.metrics["final_val_score"] == 0.66
        assert not spool.exists()  # all delivered: the spool is emptied
        assert TrialRecorder(uri, experiment, parent, "died", spool).replay() == 0
    finally:
        stop_server(server)


def test_the_drivers_own_calls_wait_out_an_outage(tmp_path) -> None:
    """The reference, baselines and re-checks log through this client: a restart of the server costs nothing."""
    server, uri, _, experiment, _ = a_search(tmp_path, "driver")
    port = int(uri.rsplit(":", 1)[1])
    mlflow = client(uri, patience_s=120)
    stop_server(server)
    restarted: list[subprocess.Popen] = []
    back = threading.Timer(3, lambda: restarted.append(start_server(tmp_path, port)))
    back.start()
    try:
        run = mlflow.create_run(experiment, tags={TAG_KIND: "reference"})  # sent while the server is away
        back.join()
        assert mlflow.get_run(run.info.run_id).data.tags[TAG_KIND] == "reference"
    finally:
        back.join()
        for proc in restarted:
            stop_server(proc)


def test_the_drivers_calls_give_up_in_one_line_past_the_patience(tmp_path) -> None:
    server, uri, _, experiment, _ = a_search(tmp_path, "driver-gone")
    mlflow = client(uri, patience_s=2)
    stop_server(server)
    with pytest.raises(TrackingUnreachable, match="did not answer for 2 s.*--resume"):
        mlflow.create_run(experiment)


class DroppingProxy:
    """Between a client and a real `mlflow server`: forwards every request, but for the first ``times`` requests
    whose path ends with ``drop`` it lets the server commit and then closes the connection without the reply,
    as a server that dies (or a network that fails) right after its commit does."""

    def __init__(self, upstream: str, drop: str, times: int = 1) -> None:
        import http.server

        proxy = self
        self.dropped = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = urllib.request.Request(upstream + self.path, data=body or None, method=self.command)
                for key in ("Content-Type", "Authorization"):
                    if self.headers.get(key):
                        request.add_header(key, self.headers[key])
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, payload, kind = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as err:
                    status, payload, kind = err.code, err.read(), err.headers.get("Content-Type")
                if self.path.split("?")[0].endswith(drop) and proxy.dropped < times:
                    proxy.dropped += 1  # committed upstream; the reply never reaches the client
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("drop", ["/runs/create", "/experiments/create"])
def test_a_create_the_server_committed_but_whose_reply_was_lost_is_made_once(tmp_path, drop) -> None:
    port = free_port()
    server = start_server(tmp_path, port)
    proxy = DroppingProxy(f"http://127.0.0.1:{port}", drop)
    try:
        mlflow = client(f"http://127.0.0.1:{proxy.port}", patience_s=60)  # the driver's retrying client
        experiment = experiment_id(mlflow, "made-once")
        run = mlflow.create_run(experiment, run_name="the-reference", tags={TAG_KIND: KIND_SEARCH})
        assert proxy.dropped == 1, "the reply was dropped once, and the call retried"
        direct = MlflowClient(f"http://127.0.0.1:{port}")
        assert [e.name for e in direct.search_experiments()].count("made-once") == 1
        runs = direct.search_runs([experiment])
        assert [r.info.run_id for r in runs] == [run.info.run_id], "one run, and the one the caller holds"
    finally:
        proxy.close()
        stop_server(server)
